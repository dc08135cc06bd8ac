"""Running a listener under gunicorn: one ``BaseApplication`` per listener, built from Settings.

Worker model: by default one gthread worker with several threads. The receiver and the admission
server each hold watch-fed caches of GitRepos and Secrets; every extra worker process would open
its own watches and hold its own copy, for no gain on a workload that is I/O bound and short.
``--workers`` raises it when CPU is the limit; metrics then aggregate across workers through a
shared multiprocess directory created here before any worker forks.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from controller.logs import fields
from controller.serving.arrivals import RequestLimits
from controller.serving.worker import note_early_stops, worker_class
from controller.settings import Listen, Settings

log = logging.getLogger(__name__)

WSGIApp = Callable[..., Any]
# Same name as controller.metrics.MULTIPROC_ENV; not imported, because prometheus-client must not be
# imported in the arbiter before this variable is set (it picks its storage at import time).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ListenError(Exception):
    """The listen address cannot be bound (in use, not local, no permission)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def check_bindable(listen: Listen) -> None:
    """Fail early, with one clear line, when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((listen.host, listen.port))
    except OSError as error:
        raise ListenError(f"cannot listen on {listen}: {error.strerror or error}", error.errno) from None
    finally:
        probe.close()


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own messages (worker starts, timeouts) through the service's log format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
        self.error_log.propagate = True


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application whose workers build their Flask app with ``factory``."""

    def __init__(self, factory: Callable[[], WSGIApp], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            # Settings newer than the installed gunicorn (e.g. control_socket_disable, 25.1) are skipped.
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> WSGIApp:
        return self.factory()


def gunicorn_options(settings: Settings, listen: Listen, name: str, max_body: int,
                     ssl_context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """gunicorn settings for one listener, whose requests may carry at most ``max_body`` bytes."""
    limits = RequestLimits(max_body=max_body, timeout=settings.request_timeout,
                           buffer_budget=max(64 * 1024 * 1024, 2 * max_body + 1024 * 1024),
                           max_in_flight=settings.max_in_flight)
    options: dict[str, Any] = {
        "bind": [str(listen)],
        "workers": settings.workers,
        "worker_class": worker_class(limits),
        "threads": settings.threads,
        "graceful_timeout": max(1, round(settings.graceful_timeout)),
        # The worker heartbeat: a request never legitimately takes this long (patches give up at 8 s).
        "timeout": 30,
        "keepalive": 75,
        "proc_name": f"gitjob-webhook-{name}",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "logger_class": GunicornLogger,
        # The worker heartbeat file; /dev/shm avoids stalls on a read-only or slow root filesystem.
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "child_exit": _child_exit,
        "when_ready": _announce(name, settings, tls=ssl_context is not None),
        "post_fork": note_early_stops,
        "post_worker_init": _start_background,
        "worker_exit": _stop_background,
        # gunicorn ≥ 25.1 opens a control socket in $HOME: two listeners would fight over it, and
        # the container's root filesystem is read-only.
        "control_socket_disable": True,
    }
    if ssl_context is not None:
        options["certfile"] = settings.tls_cert
        options["keyfile"] = settings.tls_key
        options["ssl_context"] = lambda config, default_factory: ssl_context
    return options


def _announce(name: str, settings: Settings, tls: bool) -> Callable[[Arbiter], None]:
    """Log the address actually bound, once listening: with port 0, the kernel chose it."""
    def ready(server: Arbiter) -> None:
        for listener in server.LISTENERS:
            host, port = listener.sock.getsockname()[:2]
            log.info(f"{name} listening", extra=fields(address=str(Listen(host, port)), tls=tls,
                                                       workers=settings.workers, threads=settings.threads))
    return ready


def _start_background(worker: Any) -> None:
    # After the fork, in the worker: the caches' threads belong to the process that serves.
    from controller.serving.web import background
    background(worker.wsgi).start()


def _stop_background(server: Arbiter, worker: Any) -> None:
    from controller.serving.web import background
    if getattr(worker, "wsgi", None) is not None:
        background(worker.wsgi).stop()


def _child_exit(server: Arbiter, worker: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def prepare_multiprocess_metrics(workers: int) -> str | None:
    """With several workers, point prometheus-client at a fresh shared directory (before forking)."""
    if workers < 2:
        os.environ.pop(MULTIPROC_ENV, None)
        return None
    directory = tempfile.mkdtemp(prefix="gitjob-webhook-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def run(factory: Callable[[], WSGIApp], options: dict[str, Any]) -> None:
    """Serve until SIGTERM/SIGINT; gunicorn lets in-flight requests finish (graceful_timeout)."""
    directory = os.environ.get(MULTIPROC_ENV)
    try:
        GunicornServer(factory, options).run()
    finally:
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
