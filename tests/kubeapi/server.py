"""The HTTP layer: TLS, bearer-token auth, routing of discovery and REST paths, test hooks, and
JSON/chunked responses over HTTP/1.1 (`ThreadingHTTPServer`, daemon threads)."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import yaml

from . import discovery, errors, patches, watch
from .admission import ADMIN, UserInfo
from .api import Api, Context
from .hooks import Hooks, RequestRecord
from .resources import ResourceType, lookup

_PUBLIC = {"/version", "/healthz", "/livez", "/readyz"}
_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.I)


class Route:
    """A REST path resolved to its resource (or a discovery document)."""

    def __init__(
        self, rt: ResourceType, namespace: str | None, name: str | None, subresource: str | None
    ) -> None:
        self.rt, self.namespace, self.name, self.subresource = rt, namespace, name, subresource


def _discovery(path: str) -> dict[str, Any] | None:
    segs = [s for s in path.split("/") if s]
    doc: dict[str, Any] | None = None
    if path == "/version":
        doc = discovery.version()
    elif path in ("/healthz", "/livez", "/readyz"):
        doc = {"status": "ok"}
    elif segs == ["api"]:
        doc = discovery.core_versions()
    elif segs == ["api", "v1"]:
        doc = discovery.resource_list("", "v1")
    elif segs == ["apis"]:
        doc = discovery.group_list()
    elif len(segs) == 2 and segs[0] == "apis":
        doc = discovery.group(segs[1])
    elif len(segs) == 3 and segs[0] == "apis":
        doc = discovery.resource_list(segs[1], segs[2])
    elif segs == ["openapi", "v3"]:
        doc = discovery.openapi_index()
    elif segs[:2] == ["openapi", "v3"] and segs[2:] == ["api", "v1"]:
        doc = discovery.openapi_document("", "v1")
    elif segs[:2] == ["openapi", "v3"] and len(segs) == 5 and segs[2] == "apis":
        doc = discovery.openapi_document(segs[3], segs[4])
    else:
        return None
    if doc is None:
        raise errors.not_found_path()
    return doc


def route(path: str) -> Route | None:
    """Resolve a resource path; None for non-resource paths, 404 ApiError for unknown resources."""
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 3 and segs[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", segs[2:]
    elif len(segs) >= 4 and segs[0] == "apis":
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and lookup(group, version, rest[2]) is not None:
        namespace, rest = rest[1], rest[2:]
    rt = lookup(group, version, rest[0])
    if rt is None or len(rest) > 3 or (namespace is not None and not rt.namespaced):
        raise errors.not_found_path()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and not (sub == "status" and rt.has_status):
        raise errors.not_found_path()
    if name is not None and rt.namespaced and namespace is None:
        raise errors.not_found_path()
    return Route(rt, namespace, name, sub)


def _warning_header(text: str) -> str:
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "EmulatorHTTPServer"

    # -- plumbing ----------------------------------------------------------------------------------
    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        self.server.track(self.request, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, code: int, body: Any, headers: dict[str, str] | None = None, warnings: list[str] | None = None
    ) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for w in warnings or []:
            self.send_header("Warning", _warning_header(w))
        self.end_headers()
        self.wfile.write(data)

    # -- verbs -------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        emu = self.server
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip() or None
        raw = self._read_body()
        parsed: Any = None
        if raw:
            try:
                parsed = yaml.safe_load(raw) if content_type == patches.APPLY else json.loads(raw)
            except (ValueError, yaml.YAMLError):
                parsed = None
        user: UserInfo | None = None
        code, answer, headers, warnings = 500, None, {}, []  # type: ignore[var-annotated]
        try:
            user = self._authenticate(path)
            seconds = emu.hooks.delay_for(method, path)
            if seconds:
                emu.stopping.wait(seconds)
            failure = emu.hooks.failure_for(method, path)
            if failure is not None:
                raise failure
            ctx = Context(user=user or ADMIN, field_manager=query.get("fieldManager"))
            warnings = ctx.warnings
            result = self._dispatch(
                method,
                path,
                query,
                content_type,
                raw,
                parsed,
                ctx,
                lambda: emu.hooks.record(
                    RequestRecord(
                        method, path, query, content_type, 200, parsed, user.username if user else None
                    )
                ),
            )
            if result is None:  # a watch: already recorded and streamed
                return
            code, answer = result
        except errors.ApiError as exc:
            code, answer, headers = exc.code, exc.body, exc.headers
        except Exception as exc:  # noqa: BLE001 - never drop a connection on an emulator bug
            code, answer = 500, errors.internal(f"emulator error: {exc!r}").body
        # Log before answering, so a client that got its response always finds it in the log.
        emu.hooks.record(
            RequestRecord(method, path, query, content_type, code, parsed, user.username if user else None)
        )
        self._send_json(code, answer, headers, warnings if code < 400 else None)

    def _authenticate(self, path: str) -> UserInfo | None:
        tokens = self.server.tokens
        if not tokens:
            return None
        m = _BEARER.match(self.headers.get("Authorization") or "")
        user = tokens.get(m.group(1)) if m else None
        if user is None and path not in _PUBLIC:
            raise errors.unauthorized()
        return user

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        content_type: str | None,
        raw: bytes,
        parsed: Any,
        ctx: Context,
        record_watch: Callable[[], None],
    ) -> tuple[int, Any] | None:
        api = self.server.api
        r = route(path)
        if r is None:
            doc = _discovery(path)
            if doc is None:
                raise errors.not_found_path()
            if method != "GET":
                raise errors.method_not_allowed()
            return 200, doc
        if method in ("POST", "PUT") and raw and content_type not in ("application/json", None):
            raise errors.ApiError(
                415,
                "the body of the request was in an unknown format - accepted media "
                "types include: application/json, application/yaml",
                details={},
            )
        if method in ("POST", "PUT") and parsed is None:
            raise errors.bad_request("the request body could not be decoded as a JSON object")
        rt, ns, name, sub = r.rt, r.namespace, r.name, r.subresource
        if name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1"):
                    self._watch(watch.WatchRequest(rt, ns, query), record_watch)
                    return None
                return 200, api.list(
                    rt,
                    ns,
                    query.get("labelSelector"),
                    query.get("fieldSelector"),
                    query.get("limit"),
                    query.get("continue"),
                )
            if method == "POST" and (ns is not None or not rt.namespaced):
                return 201, api.create(rt, ns, parsed, ctx)
            if method == "DELETE" and (ns is not None or not rt.namespaced):
                return 200, api.delete_collection(
                    rt, ns, query.get("labelSelector"), query.get("fieldSelector"), ctx
                )
            raise errors.method_not_allowed()
        if method == "GET":
            return 200, api.get(rt, ns, name)
        if method == "PUT":
            return 200, api.update(rt, ns, name, parsed, ctx, sub)
        if method == "PATCH":
            return api.patch(rt, ns, name, content_type or "", raw, ctx, sub)
        if method == "DELETE" and sub is None:
            return 200, api.delete(rt, ns, name, parsed, ctx)
        raise errors.method_not_allowed()

    def _watch(self, req: watch.WatchRequest, record: Callable[[], None]) -> None:
        record()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        entry = self.server.add_watch(self.request)
        try:
            clean = watch.stream(
                req, self.server.api.store, self.wfile.write, self.request, lambda: entry.cut
            )
        except (OSError, ValueError):
            clean = False
        finally:
            self.server.remove_watch(entry)
        if not clean:
            self.close_connection = True


class _WatchEntry:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.cut = False


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, api: Api, hooks: Hooks, tokens: dict[str, UserInfo], tls: ssl.SSLContext | None
    ) -> None:
        self.api, self.hooks, self.tokens, self.tls = api, hooks, tokens, tls
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._watches: set[_WatchEntry] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client went away, TLS handshake refused, …: nothing to report

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._lock:
            (self._conns.add if alive else self._conns.discard)(sock)

    def add_watch(self, sock: socket.socket) -> _WatchEntry:
        entry = _WatchEntry(sock)
        with self._lock:
            self._watches.add(entry)
        return entry

    def remove_watch(self, entry: _WatchEntry) -> None:
        with self._lock:
            self._watches.discard(entry)

    def cut_watches(self) -> int:
        with self._lock:
            entries = list(self._watches)
            self._watches.clear()
        for entry in entries:
            entry.cut = True
            _hard_shutdown(entry.sock)
        with self.api.store.cond:
            self.api.store.cond.notify_all()
        return len(entries)

    def close_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            _hard_shutdown(sock)

    def wait_idle_watches(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._watches:
                    return
            time.sleep(0.01)


def _hard_shutdown(sock: socket.socket) -> None:
    """Shut the TCP connection down under any TLS layer: no close_notify, no terminating chunk."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
