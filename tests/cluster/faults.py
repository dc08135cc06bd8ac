"""FaultProxy: a TLS reverse proxy in front of the real API server that injects failures.

Clients talk to the proxy as they would to the server (same credentials; the proxy's certificate
is signed by the control plane's CA). Every request is forwarded as it came; responses are
streamed, so watches stay live. Tests inject answers the real server gives only under load or
during an outage — a 500 or 429 with Retry-After, a slow answer, watches cut mid-stream, a server
that cannot be reached — and read the request log.
"""

from __future__ import annotations

import http.client
import http.server
import json
import pathlib
import re
import socket
import socketserver
import ssl
import struct
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cluster.controlplane import ControlPlane

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "content-length"}
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests",
            500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy answered (status 0: the connection broke before an answer)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    user_agent: str


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    remaining: int | None  # None: for ever
    status: int = 0
    retry_after: int | None = None
    seconds: float = 0.0


def status_body(code: int, retry_after: int | None = None) -> bytes:
    """A metav1.Status, as the API server answers an error."""
    reason = _REASONS.get(code, "InternalError")
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": f"injected by FaultProxy: {reason}", "reason": reason, "code": code}
    if retry_after is not None:
        status["details"] = {"retryAfterSeconds": retry_after}
    return json.dumps(status).encode()


class FaultProxy:
    """A TLS reverse proxy on 127.0.0.1 in front of ``control_plane``; ``kubeconfig`` reaches the
    server through it as the admin."""

    def __init__(self, control_plane: ControlPlane, directory: pathlib.Path) -> None:
        self._upstream = ("127.0.0.1", control_plane.port)
        self._client_context = ssl.create_default_context(cafile=str(control_plane.ca_file))
        cert_file, key_file = control_plane.pki.authority.write(directory, "fault-proxy", ["127.0.0.1"])
        self._server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_context.load_cert_chain(cert_file, key_file)
        self._server_context.set_alpn_protocols(["http/1.1"])  # no HTTP/2: Go clients fall back
        self._lock = threading.Lock()
        self._failures: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._log: list[ProxiedRequest] = []
        self._streams: set[_Handler] = set()
        self._connections: set[socket.socket] = set()
        self._refusing = False
        self.stopped = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self.kubeconfig = control_plane.write_kubeconfig(directory / "fault-proxy.kubeconfig",
                                                         server=self.url)

    @property
    def url(self) -> str:
        """The proxy's base URL, to use instead of the API server's."""
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        """Start serving (in background threads)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and break every open connection."""
        self.stopped.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._break_connections()
        self._thread.join(timeout=10)

    def fail_next(self, method: str, path_regex: str, status: int, count: int = 1,
                  retry_after: int | None = None) -> None:
        """Answer the next ``count`` requests matching ``method`` (or ``*``) and ``path_regex`` (searched in
        the path, without the query) with a Status of code ``status`` instead of forwarding them."""
        with self._lock:
            self._failures.append(_Rule(method.upper(), re.compile(path_regex), count, status, retry_after))

    def delay(self, method: str, path_regex: str, seconds: float, count: int | None = None) -> None:
        """Hold matching requests ``seconds`` before forwarding them (``count`` times, or for ever)."""
        with self._lock:
            self._delays.append(_Rule(method.upper(), re.compile(path_regex), count, seconds=seconds))

    def cut_streams(self) -> int:
        """Break every response being streamed now (watches) without a proper end; returns how many."""
        with self._lock:
            streams = list(self._streams)
        for handler in streams:
            handler.cut()
        return len(streams)

    def refuse(self, refusing: bool = True) -> None:
        """While on, reset every connection, open or new: the server looks unreachable."""
        with self._lock:
            self._refusing = refusing
        if refusing:
            self._break_connections()

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear(self) -> None:
        """Forget injected faults and the request log."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._log.clear()

    def _take(self, rules: list[_Rule], method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in rules:
                if rule.method in ("*", method) and rule.pattern.search(path) \
                        and (rule.remaining is None or rule.remaining > 0):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def _record(self, record: ProxiedRequest) -> None:
        with self._lock:
            self._log.append(record)

    def _break_connections(self) -> None:
        self.cut_streams()  # also their upstream side, or an idle watch would hold a thread for ever
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _reset(connection)


def _reset(connection: socket.socket) -> None:
    """Close with RST rather than FIN, as a vanished server or a dropped route looks to a client."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[_Handler], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.proxy._lock:
            refusing = self.proxy._refusing
        if refusing:
            _reset(request)
        return not refusing

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in the accept loop.
        try:
            tls = self.proxy._server_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        with self.proxy._lock:
            self.proxy._connections.add(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            with self.proxy._lock:
                self.proxy._connections.discard(tls)
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client or a test hook broke the connection: nothing to report


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPSConnection | None = None
        self._cut = False

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is self.server.proxy.requests

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def cut(self) -> None:
        self._cut = True
        _reset(self.connection)
        upstream = self._upstream  # read once: the handler's own thread may replace it
        if upstream is not None and upstream.sock is not None:
            _reset(upstream.sock)

    def _proxy(self) -> None:
        proxy = self.server.proxy
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        body = self._read_body()
        delay = proxy._take(proxy._delays, self.command, parsed.path)
        if delay is not None and proxy.stopped.wait(delay.seconds):
            self.close_connection = True
            return
        status = 0
        try:
            failure = proxy._take(proxy._failures, self.command, parsed.path)
            if failure is not None:
                status = failure.status
                self._answer_failure(failure)
            else:
                status = self._forward(body)
        finally:
            proxy._record(ProxiedRequest(self.command, parsed.path, query, status,
                                         self.headers.get("User-Agent", "")))

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _answer_failure(self, rule: _Rule) -> None:
        payload = status_body(rule.status, rule.retry_after)
        self.send_response(rule.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if rule.retry_after is not None:
            self.send_header("Retry-After", str(rule.retry_after))
        self.end_headers()
        self.wfile.write(payload)

    def _upstream_response(self, body: bytes | None) -> http.client.HTTPResponse:
        headers = {key: value for key, value in self.headers.items() if key.lower() not in _HOP_BY_HOP}
        for attempt in range(2):
            if self._upstream is None:
                host, port = self.server.proxy._upstream
                self._upstream = http.client.HTTPSConnection(host, port, timeout=None,
                                                             context=self.server.proxy._client_context)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                return self._upstream.getresponse()
            except (OSError, http.client.HTTPException):
                # A kept-alive upstream connection may have been closed meanwhile: retry once, fresh.
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _forward(self, body: bytes | None) -> int:
        try:
            response = self._upstream_response(body)
        except (OSError, http.client.HTTPException):
            self.close_connection = True
            _reset(self.connection)  # the server is down: so is the proxy, to the client
            return 0
        streamed = response.getheader("Transfer-Encoding", "").lower() == "chunked"
        payload = b"" if streamed else response.read()
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        if streamed:
            self.send_header("Transfer-Encoding", "chunked")
        elif self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if streamed:
            self._stream(response)
        else:
            self.wfile.write(payload)
        return response.status

    def _stream(self, response: http.client.HTTPResponse) -> None:
        proxy = self.server.proxy
        with proxy._lock:
            proxy._streams.add(self)
        try:
            while data := response.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if not self._cut:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            self.close_connection = True
        finally:
            with proxy._lock:
                proxy._streams.discard(self)
        if self._cut:
            self.close_connection = True
