"""Reading requests on the worker's main loop, non-blocking, for every connection at once.

The TLS handshake, then the bytes of the request until :class:`~controller.serving.framing.Scanner`
says it is complete; then the request is queued for a thread. Every request has one deadline for
all of that (``--request-timeout``): past it the client gets 408 (or, before a byte of HTTP, a
closed connection). A body over the listener's limit gets 413 as soon as its length is known, before
it is read; malformed framing gets 400; and the bytes held for requests, arriving or waiting for a
thread, are bounded per worker, beyond which a request gets 503.

Near gunicorn's connection cap (``worker_connections``), each new connection closes the idlest one
(kept alive or still arriving), so that idle connections cannot stop the worker accepting. A
connection closing after an answer lingers here too, reading what the client still sends, until the
client closes or a deadline: never in a blocking read.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import threading
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.config import Config
from gunicorn.workers.gthread import TConn

from controller.serving.arrivals import Arrival, BufferedUnreader, RequestLimits, plain_answer, probe_kind
from controller.serving.framing import Framing, Scanner

__all__ = ["PROBE_THREADS", "MainLoopReading"]

PROBE_THREADS = 3
"""Threads for probes and scrapes, apart from the application's."""
_MAX_SCRAPES = 2
"""Metrics scrapes answered at once (two Prometheus replicas); PROBE_THREADS leaves one to probes."""
_READ_SIZE = 64 * 1024
_READS_PER_EVENT = 16
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 8 * 1024 * 1024
_SMALL_REQUEST = 1024 * 1024
_SMALL_RESERVE = 16 * 1024 * 1024
_CROWDED = 0.9
"""Above this share of worker_connections, each new connection closes the oldest idle one."""


class MainLoopReading:
    """The reading half of `controller.serving.worker.BufferingWorker` (a mixin: the state is the
    worker's, the gthread machinery gunicorn's)."""

    cfg: Config
    limits: RequestLimits
    poller: selectors.BaseSelector
    nr_conns: int
    keepalived_conns: deque[TConn]
    reading: dict[TConn, Arrival]
    buffered: int
    in_flight: int
    scrapes: int
    counting: threading.Lock

    def enqueue_req(self, conn: TConn) -> None:
        raise NotImplementedError   # the worker's: queue a complete request for a thread

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
        state = Arrival(conn, time.monotonic() + self.limits.timeout, Scanner(self.limits.max_body),
                        handshaking, bytearray(ahead))
        self.buffered += len(ahead)
        self.reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_event, state))

    def _on_event(self, state: Arrival, _fileobj: Any) -> None:
        state.progress = time.monotonic()
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
        elif state.ended:
            self._drop(state)   # the client closed before its request was complete
        elif scan.expects_continue and not state.continued:
            state.continued = True
            self._send_quietly(state.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _handshake(self, state: Arrival) -> bool:
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

    def _receive(self, state: Arrival) -> bool:
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
                # The client closed its side: what it sent may still be a whole request (RFC 9112
                # allows the half-close), answered as any other; _on_event drops anything less.
                if not state.buffer:
                    self._drop(state)
                    return False
                state.ended = True
                return True
            if not self._room_for(len(state.buffer) + len(data), len(data)):
                self._refuse(state, 503, "unavailable", "too many requests are arriving at once; retry")
                return False
            state.buffer += data
            self.buffered += len(data)
        return True

    def _make_room(self) -> None:
        """Near the connection cap, a new connection costs the idlest one: the connection whose client
        sent something (or was accepted, or last got an answer, kept alive) longest ago. A flood of
        idle connections never stops the worker accepting, so a probe or a push still gets in, and
        a connection just accepted is never the one to go. gunicorn stops accepting at the cap itself.
        Complete requests never wait here.
        """
        while self.nr_conns > self.cfg.worker_connections * _CROWDED:
            arriving = min(self.reading.values(), key=lambda state: state.progress, default=None)
            # Kept-alive connections are in the order of their answers: the first is the idlest.
            kept = self.keepalived_conns[0] if self.keepalived_conns else None
            kept_since = kept.timeout - self.cfg.keepalive if kept is not None else 0.0
            if kept is not None and (arriving is None or kept_since <= arriving.progress):
                self.keepalived_conns.popleft()
                try:
                    self.poller.unregister(kept.sock)
                except (KeyError, ValueError, OSError):
                    pass
                self.nr_conns -= 1
                kept.close()
            elif arriving is not None:
                self._drop(arriving)
            else:
                return

    def _room_for(self, request_size: int, more: int) -> bool:
        """Whether ``more`` bytes of a request that would then hold ``request_size`` fit the budget."""
        budget = self.limits.buffer_budget
        if request_size <= _SMALL_REQUEST:
            budget += _SMALL_RESERVE
        return self.buffered + more <= budget

    def _dispatch(self, state: Arrival, end: int) -> None:
        """The request is complete: queue it, already in memory, for a thread (probes for their own)."""
        probe = probe_kind(state.buffer)
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
            conn.parser.unreader = BufferedUnreader(conn.sock)
        conn.parser.unreader.feed(memoryview(state.buffer)[:end])
        conn.pipelined = end < len(state.buffer)
        conn.initialized = conn.data_ready = conn.complete = True
        conn.sock.setblocking(True)
        self.enqueue_req(conn)

    def _refuse(self, state: Arrival, status: int, code: str, message: str) -> None:
        """Answer without serving the request, then close (best effort: the client may be gone).

        A client still sending its body would see the connection reset, and lose the answer, if it
        were closed at once: for a little while the rest is read and dropped ("lingering close").
        """
        self._send_quietly(state.conn.sock, plain_answer(status, code, message))
        if status in (408, 503) or state.handshaking:
            self._drop(state)
            return
        self.buffered -= len(state.buffer)
        state.buffer = bytearray()
        state.draining = _LINGER_BYTES
        state.deadline = min(state.deadline, time.monotonic() + _LINGER_SECONDS)

    def _drain(self, state: Arrival) -> None:
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

    def _drop(self, state: Arrival) -> None:
        if self.reading.get(state.conn) is not state:
            return   # already dropped: the connection must not be counted out twice
        conn = self._forget(state)
        self.nr_conns -= 1
        conn.close()

    def _forget(self, state: Arrival) -> TConn:
        conn = state.conn
        self.reading.pop(conn, None)
        self.buffered -= len(state.buffer)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        return conn

    def _watch(self, state: Arrival, writing: bool) -> None:
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

    def _linger(self, conn: TConn) -> None:
        """After the last answer on a connection: read and drop what the client still sends until it
        closes, on the poller, then close (so that it reads the answer rather than a reset)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        state = Arrival(conn, time.monotonic() + _LINGER_SECONDS, Scanner(0), False, draining=_LINGER_BYTES)
        self.reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_event, state))
