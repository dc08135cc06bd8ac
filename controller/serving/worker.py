"""gunicorn's threaded worker, except that a request is read whole before a thread serves it.

gthread hands a connection to a thread as soon as its first byte arrives, and the thread then
blocks reading the TLS handshake, headers and body: a client trickling one byte at a time holds the
thread for as long as it likes, and eight such clients stop a pod answering its probes. Here the
worker's main loop does that reading, non-blocking, for every connection at once
(`controller.serving.reading`). Only then does a thread run the application, on bytes already in
memory.

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
import threading
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

from controller.logs import fields, safe
from controller.serving.arrivals import (Arrival, RequestLimits, is_client_error, parse_error_status,
                                         plain_answer)
from controller.serving.reading import PROBE_THREADS, MainLoopReading

__all__ = ["BufferingWorker", "note_early_stops", "worker_class"]


class BufferingWorker(MainLoopReading, ThreadWorker):  # type: ignore[misc]
    """A gthread worker whose threads only ever see complete requests (see the module docstring)."""

    limits = RequestLimits(max_body=25 * 1024 * 1024, timeout=10.0, buffer_budget=64 * 1024 * 1024)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading = {}
        self.buffered = 0
        """Bytes held for requests arriving, queued or being served."""
        self.in_flight = 0
        self.scrapes = 0
        self.counting = threading.Lock()
        self.probe_pool: futures.ThreadPoolExecutor | None = None

    def get_thread_pool(self) -> futures.ThreadPoolExecutor:
        self.probe_pool = futures.ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="probe")
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

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """As gthread's, except that an event for a connection closed earlier in the same batch (to
        make room) is skipped, and a client connection whose callback fails (a bug) is closed and
        logged: either used to end the worker and reset every other connection it held."""
        try:
            events = self.poller.select(timeout)
        except InterruptedError:
            return
        for key, _ in events:
            if not self._still_registered(key):
                continue
            target = getattr(key.data, "args", (None,))[0]
            conn = target.conn if isinstance(target, Arrival) else target
            try:
                key.data(key.fileobj)
            except Exception as error:
                if not isinstance(conn, TConn):
                    raise   # the listener or the worker's own pipe: gunicorn restarts the worker
                self.log.error("closed a connection whose event failed", exc_info=error)
                self._close_broken(conn)

    def _still_registered(self, key: selectors.SelectorKey) -> bool:
        try:
            return self.poller.get_key(key.fileobj) is key
        except (KeyError, ValueError):   # unregistered, or closed (a closed socket has no descriptor)
            return False

    def _close_broken(self, conn: TConn) -> None:
        """Close a connection the main loop owns (only those are on the poller), counted out once."""
        state = self.reading.get(conn)
        if state is not None:
            self._drop(state)
            return
        if conn in self.keepalived_conns:
            self.keepalived_conns.remove(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        if conn.sock.fileno() != -1:   # a closed socket was counted out by whoever closed it
            self.nr_conns -= 1
            conn.close()

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
        self._linger(conn)

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """A request gunicorn's parser refused, answered as JSON like every other answer (gunicorn's
        own is HTML), with what the client sent cut short in the answer and the log."""
        if not is_client_error(exc):
            super().handle_error(req, client, addr, exc)   # the application's fault, or ours: a 500
            return
        status, code = parse_error_status(exc)
        problem = safe(str(exc), 200) or type(exc).__name__
        # What the client sent goes in a field, never in the message: a text log quotes fields.
        self.log.warning("refused a malformed request", extra=fields(
            remote=str((addr or ("?",))[0]), status=status, problem=problem))
        try:
            client.sendall(plain_answer(status, code, f"the request is malformed: {problem}"))
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

    def handle_request(self, req: Any, conn: TConn) -> Any:
        if getattr(conn, "pipelined", False):
            req.must_close = True   # the bytes after this request were not kept: the answer says close
        # A client that does not read its answer holds this thread until the deadline, not for ever
        # (gunicorn writes on a blocking socket with no timeout).
        conn.sock.settimeout(self.limits.timeout)
        try:
            return super().handle_request(req, conn)
        except TimeoutError:
            self.log.warning("closed a connection whose client did not read its answer", extra=fields(
                remote=str((conn.client or ("?",))[0]), seconds=self.limits.timeout))
            return False

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        # Bytes after the request (a pipelined one) were not kept: close rather than lose them silently.
        return bool(keepalive and not getattr(conn, "pipelined", False)
                    and super()._keepalive_after(conn, keepalive))


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


def worker_class(limits: RequestLimits) -> type[BufferingWorker]:
    """A worker class for one listener's limits (gunicorn instantiates the class it is given)."""
    return type("BufferingWorker", (BufferingWorker,), {"limits": limits})
