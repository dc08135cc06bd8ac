"""gunicorn's threaded worker, except that a request is read whole before a thread serves it.

gthread hands a connection to a thread as soon as its first byte arrives, and the thread then
blocks reading the TLS handshake, headers and body: a client trickling one byte at a time holds the
thread for as long as it likes, and eight such clients stop a pod answering its probes. Here the
worker's main loop does that reading, non-blocking, for every connection at once: the TLS handshake,
then the bytes of the request until :class:`~controller.serving.framing.Scanner` says it is
complete. Only then does a thread run the application, on bytes already in memory.

Every request has one deadline for all of that (``--request-timeout``): past it the client gets 408
(or, before a byte of HTTP, a closed connection). A body over the listener's limit gets 413 as soon
as its length is known, before it is read; malformed framing gets 400; and the bytes held for
requests, arriving or waiting for a thread, are bounded per worker, beyond which a request gets 503.

Near gunicorn's connection cap (``worker_connections``), each new connection closes the oldest idle
one, kept alive or still arriving, so that idle connections cannot stop the worker accepting.

Complete requests wait for a thread in a queue rather than being turned away: a burst of pushes is
served in turn, and only a request finding ``--max-in-flight`` others queued or being served gets
503 with ``Retry-After``. Probes and metrics (``GET /healthz``, ``/readyz``, ``/metrics``) have
threads of their own, so a pod under a burst still answers its kubelet and Prometheus; at most two
scrapes are rendered at once (a third gets 503), so a flood of scrapes leaves a thread to the probes.
"""

from __future__ import annotations

import selectors
import signal
import socket
import ssl
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.http.errors import (ConfigurationProblem, ExpectationFailed, ForbiddenProxyRequest,
                                  InvalidResponseHeader, InvalidResponseHeaderName, LimitRequestHeaders,
                                  LimitRequestLine, ParseException, UnsupportedTransferCoding)
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from controller.logs import safe
from controller.serving.errors import render
from controller.serving.framing import Framing, Scanner

__all__ = ["RequestLimits", "BufferingWorker", "note_early_stops", "worker_class"]

_READ_SIZE = 64 * 1024
_READS_PER_EVENT = 16
_CHUNK_TO_PARSER = 256 * 1024
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 8 * 1024 * 1024
_SMALL_REQUEST = 1024 * 1024
_SMALL_RESERVE = 16 * 1024 * 1024
_PROBE_THREADS = 3
_MAX_SCRAPES = 2
"""Metrics scrapes answered at once (two Prometheus replicas); _PROBE_THREADS leaves one to probes."""
_CROWDED = 0.9
"""Above this share of worker_connections, each new connection closes the oldest idle one."""
_PARSE_ERRORS = ((LimitRequestLine, 414, "uri-too-long"), (LimitRequestHeaders, 431, "headers-too-large"),
                 (UnsupportedTransferCoding, 501, "not-implemented"),
                 (ExpectationFailed, 417, "expectation-failed"), (ForbiddenProxyRequest, 403, "forbidden"))
"""gunicorn's parser errors that are not a plain 400, with the status gunicorn gives them."""
_PROBE_PATHS = {b"/healthz": "probe", b"/readyz": "probe", b"/metrics": "scrape"}


@dataclass(frozen=True)
class RequestLimits:
    """What one listener accepts: the largest body, the deadline to receive a request, the bytes held."""

    max_body: int
    timeout: float
    buffer_budget: int
    """Bytes held at once for requests arriving or waiting for a thread, across the worker's connections
    (requests of up to 1 MiB may hold 16 MiB more: a few slow large uploads cannot lock them out)."""
    max_in_flight: int = 64
    """Requests (probes aside) queued for a thread or being served at once; one more gets 503."""


class _BufferedUnreader(SocketUnreader):  # type: ignore[misc]
    """Serves gunicorn's parser the request the worker already read; the socket only after that."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._view: memoryview | None = None
        self._offset = 0

    def feed(self, view: memoryview) -> None:
        """The bytes of the next request, complete."""
        self._view, self._offset = view, 0

    def chunk(self, size_hint: int | None = None) -> bytes:
        view = self._view
        if view is None:
            return bytes(super().chunk(size_hint))
        # Bounded pieces: gunicorn's unreader copies what it is given, so one piece never holds a body.
        size = min(max(size_hint or 0, 8192), _CHUNK_TO_PARSER)
        piece = bytes(view[self._offset:self._offset + size])
        self._offset += len(piece)
        if self._offset >= len(view):
            self._view = None   # releases the request's buffer
        return piece


@dataclass
class _Reading:
    """A connection whose request is still arriving."""

    conn: TConn
    deadline: float
    scanner: Scanner
    handshaking: bool
    buffer: bytearray = field(default_factory=bytearray)
    continued: bool = False
    writing: bool = False
    draining: int = 0
    """After an early answer: bytes still to read and drop, so the client gets to read the answer."""


class BufferingWorker(ThreadWorker):  # type: ignore[misc]
    """A gthread worker whose threads only ever see complete requests (see the module docstring)."""

    limits = RequestLimits(max_body=25 * 1024 * 1024, timeout=10.0, buffer_budget=64 * 1024 * 1024)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading: dict[TConn, _Reading] = {}
        self.buffered = 0
        """Bytes held for requests arriving, queued or being served."""
        self.in_flight = 0
        self.scrapes = 0
        self.counting = threading.Lock()
        self.probe_pool: futures.ThreadPoolExecutor | None = None

    def get_thread_pool(self) -> futures.ThreadPoolExecutor:
        self.probe_pool = futures.ThreadPoolExecutor(max_workers=_PROBE_THREADS, thread_name_prefix="probe")
        pool: futures.ThreadPoolExecutor = super().get_thread_pool()
        return pool

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self.probe_pool is not None:
                self.probe_pool.shutdown(wait=False)

    def handle_quit(self, sig: int, frame: Any) -> None:
        if self.probe_pool is not None:
            self.probe_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    def init_signals(self) -> None:
        """As gthread, but Ctrl-C is the arbiter's to handle: it reaches the whole process group, and a
        worker quitting on it while the arbiter also stops it could hang in the thread pool. A stop
        the arbiter asked for while this worker was booting (see :func:`note_early_stops`) is obeyed
        now: the run loop never starts."""
        super().init_signals()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if _stopped_while_booting:
            self.alive = False

    def enqueue_req(self, conn: TConn) -> None:
        """Every path to a thread (accept, keep-alive, deferral) comes here: read first, then serve."""
        if getattr(conn, "complete", False):
            conn.complete = False
            probe = conn.probe
            pool = self.probe_pool if probe and self.probe_pool is not None else self.tpool
            served = pool.submit(self.handle, conn)
            served.add_done_callback(partial(self._answered, conn))
            return
        self._start_reading(conn)

    def _answered(self, conn: TConn, done: futures.Future[Any]) -> None:
        """In the thread that answered: the request no longer counts as in flight (at once, or a
        client that sends its next request on a new connection could find its last one counted)."""
        if conn.probe != "probe":
            with self.counting:
                if conn.probe == "scrape":
                    self.scrapes -= 1
                else:
                    self.in_flight -= 1
        self.method_queue.defer(self._served, conn, done)

    def _served(self, conn: TConn, done: futures.Future[Any]) -> None:
        """Back on the main loop once a thread answered: release what the request held."""
        self.buffered -= conn.held
        conn.held = 0
        self.finish_request(conn, done)

    def finish_request(self, conn: TConn, done: futures.Future[Any]) -> None:
        """As gunicorn's, except that a connection closing after its answer lingers on the poller.

        gunicorn lingers in a blocking read of up to 2 s, on the main loop: fifty clients that asked
        for ``Connection: close`` and then kept their socket open stalled every other connection,
        probes too, for over a minute.
        """
        if done.cancelled() or done.exception() is not None or done.result() is not False:
            super().finish_request(conn, done)
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        state = _Reading(conn, time.monotonic() + _LINGER_SECONDS, Scanner(0), False, draining=_LINGER_BYTES)
        self.reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_event, state))

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """A request gunicorn's parser refused, answered as JSON like every other answer (gunicorn's
        own is HTML), with what the client sent cut short in the answer and the log."""
        if not isinstance(exc, ParseException) or isinstance(
                exc, (InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem)):
            super().handle_error(req, client, addr, exc)   # the application's fault, or ours: a 500
            return
        status, code = next(((status, code) for kind, status, code in _PARSE_ERRORS if isinstance(exc, kind)),
                            (400, "malformed"))
        problem = safe(str(exc), 200) or type(exc).__name__
        self.log.warning(f"refused a malformed request from {(addr or ('?',))[0]}: {problem}")
        body = render(status, code, f"the request is malformed: {problem}")
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            client.sendall(head.encode() + body)
        except OSError:
            pass

    def murder_pending(self) -> None:
        """Also answer requests that missed their deadline (called by the main loop every second)."""
        super().murder_pending()
        now = time.monotonic()
        for state in [state for state in self.reading.values() if now >= state.deadline]:
            if state.handshaking or state.draining or not state.buffer:
                self._drop(state)
            else:
                self._refuse(state, 408, "request-timeout", f"the request did not arrive within "
                             f"{self.limits.timeout:g} s (--request-timeout)")

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        # Bytes after the request (a pipelined one) were not kept: close rather than lose them silently.
        return bool(keepalive and not getattr(conn, "pipelined", False)
                    and super()._keepalive_after(conn, keepalive))

    def _start_reading(self, conn: TConn) -> None:
        if not conn.initialized:
            self._make_room()
        # A kept-alive connection's parser may hold bytes it read ahead: they start this request.
        ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        handshaking = False
        if not conn.initialized and self.cfg.is_ssl:
            try:
                conn.sock = gunicorn_sock.ssl_wrap_socket(conn.sock, self.cfg)
            except (OSError, ssl.SSLError):
                self.nr_conns -= 1
                conn.close()
                return
            handshaking = True
        conn.sock.setblocking(False)
        state = _Reading(conn, time.monotonic() + self.limits.timeout, Scanner(self.limits.max_body),
                         handshaking, bytearray(ahead))
        self.buffered += len(ahead)
        self.reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_event, state))

    def _on_event(self, state: _Reading, _fileobj: Any) -> None:
        if state.draining:
            self._drain(state)
            return
        if state.handshaking and not self._handshake(state):
            return
        if not self._receive(state):
            return
        scan = state.scanner.scan(state.buffer)
        if scan.framing is Framing.COMPLETE:
            self._dispatch(state, scan.end)
        elif scan.framing is Framing.TOO_LARGE:
            self._refuse(state, 413, "payload-too-large", scan.reason)
        elif scan.framing is Framing.MALFORMED:
            self._refuse(state, 400, "malformed", scan.reason)
        elif scan.expects_continue and not state.continued:
            state.continued = True
            self._send_quietly(state.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _handshake(self, state: _Reading) -> bool:
        """Advance the TLS handshake; True once it is done."""
        try:
            state.conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(state, writing=False)
            return False
        except ssl.SSLWantWriteError:
            self._watch(state, writing=True)
            return False
        except (ssl.SSLError, OSError):
            self._drop(state)
            return False
        state.handshaking = False
        self._watch(state, writing=False)
        return True

    def _receive(self, state: _Reading) -> bool:
        """Read what the socket has; False when the connection ended or was refused."""
        for _ in range(_READS_PER_EVENT):
            try:
                data = state.conn.sock.recv(_READ_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return True
            except (ssl.SSLError, OSError):
                self._drop(state)
                return False
            if not data:
                self._drop(state)   # the client went away before its request was complete
                return False
            if not self._room_for(len(state.buffer) + len(data), len(data)):
                self._refuse(state, 503, "unavailable", "too many requests are arriving at once; retry")
                return False
            state.buffer += data
            self.buffered += len(data)
        return True

    def _make_room(self) -> None:
        """Near the connection cap, a new connection costs the oldest idle one (kept alive, or a
        request still arriving): a flood of idle connections never stops the worker accepting, so a
        probe or a push still gets in. gunicorn stops accepting at the cap itself."""
        while self.nr_conns > self.cfg.worker_connections * _CROWDED:
            if self.keepalived_conns:
                idle = self.keepalived_conns.popleft()
                try:
                    self.poller.unregister(idle.sock)
                except (KeyError, ValueError, OSError):
                    pass
                self.nr_conns -= 1
                idle.close()
            elif self.reading:
                # The oldest request still arriving (the earliest deadline); complete ones never wait here.
                self._drop(min(self.reading.values(), key=lambda state: state.deadline))
            else:
                return

    def _room_for(self, request_size: int, more: int) -> bool:
        """Whether ``more`` bytes of a request that would then hold ``request_size`` fit the budget."""
        budget = self.limits.buffer_budget
        if request_size <= _SMALL_REQUEST:
            budget += _SMALL_RESERVE
        return self.buffered + more <= budget

    def _dispatch(self, state: _Reading, end: int) -> None:
        """The request is complete: queue it, already in memory, for a thread (probes for their own)."""
        probe = _probe_kind(state.buffer)
        busy = ""
        with self.counting:
            if probe == "scrape":
                if self.scrapes >= _MAX_SCRAPES:
                    busy = f"{self.scrapes} metrics scrapes are being answered; retry"
                else:
                    self.scrapes += 1
            elif not probe:
                if self.in_flight >= self.limits.max_in_flight:
                    busy = f"{self.in_flight} requests are queued or being served (--max-in-flight); retry"
                else:
                    self.in_flight += 1
        if busy:
            self._refuse(state, 503, "unavailable", busy)
            return
        held = len(state.buffer)
        conn = self._forget(state)
        self.buffered += held   # still held, by the parser, until a thread has answered
        conn.held, conn.probe = held, probe
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.parser.unreader = _BufferedUnreader(conn.sock)
        conn.parser.unreader.feed(memoryview(state.buffer)[:end])
        conn.pipelined = end < len(state.buffer)
        conn.initialized = conn.data_ready = conn.complete = True
        conn.sock.setblocking(True)
        self.enqueue_req(conn)

    def _refuse(self, state: _Reading, status: int, code: str, message: str) -> None:
        """Answer without serving the request, then close (best effort: the client may be gone).

        A client still sending its body would see the connection reset, and lose the answer, if it
        were closed at once: for a little while the rest is read and dropped ("lingering close").
        """
        body = render(status, code, message)
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n")
        if status == 503:
            head += "Retry-After: 1\r\n"
        self._send_quietly(state.conn.sock, head.encode() + b"\r\n" + body)
        if status in (408, 503) or state.handshaking:
            self._drop(state)
            return
        self.buffered -= len(state.buffer)
        state.buffer = bytearray()
        state.draining = _LINGER_BYTES
        state.deadline = min(state.deadline, time.monotonic() + _LINGER_SECONDS)

    def _drain(self, state: _Reading) -> None:
        for _ in range(_READS_PER_EVENT):
            try:
                data = state.conn.sock.recv(_READ_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except (ssl.SSLError, OSError):
                data = b""
            state.draining -= len(data)
            if not data or state.draining <= 0:
                self._drop(state)
                return

    def _drop(self, state: _Reading) -> None:
        conn = self._forget(state)
        self.nr_conns -= 1
        conn.close()

    def _forget(self, state: _Reading) -> TConn:
        conn = state.conn
        self.reading.pop(conn, None)
        self.buffered -= len(state.buffer)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        return conn

    def _watch(self, state: _Reading, writing: bool) -> None:
        if writing != state.writing:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
            self.poller.modify(state.conn.sock, events, partial(self._on_event, state))
            state.writing = writing

    @staticmethod
    def _send_quietly(sock: socket.socket, data: bytes) -> None:
        # Non-blocking and best effort: an answer that does not fit the socket buffer, or a client
        # already gone, must never stall or end the worker's main loop.
        try:
            sock.send(data)
        except (ssl.SSLError, OSError):
            pass


_STOPS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)
_stopped_while_booting: list[int] = []


def note_early_stops(arbiter: Any, _worker: Any) -> None:
    """gunicorn's post_fork hook, in the new worker: a stop signal that arrives before the worker has
    its own handlers would run the arbiter's inherited one, which queues it where nobody looks, and the
    worker would then serve until the arbiter kills it a graceful timeout later (Ctrl-C during start-up
    hung for 20 s). Catch such signals, and those queued since the fork, until ``init_signals``."""
    while not arbiter.SIG_QUEUE.empty():
        caught = arbiter.SIG_QUEUE.get_nowait()
        if caught in _STOPS:
            _stopped_while_booting.append(caught)
    for stop in _STOPS:
        signal.signal(stop, lambda number, _frame: _stopped_while_booting.append(number))


def _probe_kind(request: bytearray) -> str:
    """``probe`` for ``GET /healthz`` or ``/readyz``, ``scrape`` for ``GET /metrics`` (any query), else
    "": what a kubelet or Prometheus asks, served by the probe threads."""
    line = bytes(request[:256]).split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3 or line[0] != b"GET":
        return ""
    return _PROBE_PATHS.get(line[1].split(b"?", 1)[0], "")


def worker_class(limits: RequestLimits) -> type[BufferingWorker]:
    """A worker class for one listener's limits (gunicorn instantiates the class it is given)."""
    return type("BufferingWorker", (BufferingWorker,), {"limits": limits})
