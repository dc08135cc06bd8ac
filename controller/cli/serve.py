"""``serve receiver|admission|all``: run a listener under gunicorn, or both as two children."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import subprocess
import sys
from functools import partial
from typing import Any

from controller.admission.reviews import MAX_REVIEW_BYTES
from controller.cli.errors import Failure, UsageError
from controller.logs import fields
from controller.serving import gunicorn
from controller.serving.tls import CertificateError, ReloadingContext
from controller.settings import DEFAULT_LISTEN, Settings, env_name
from controller.store import Store, StoreError
from controller.store.select import open_store

log = logging.getLogger("gitjob_webhook")


def run(listener: str, settings: Settings) -> int:
    """Run ``listener`` (``receiver``, ``admission`` or ``all``) until told to stop."""
    if listener == "all":
        return serve_all(settings)
    return serve_one(listener, settings)


def check_serving(listener: str, settings: Settings,
                  option: str = "--listen") -> tuple[Store, ReloadingContext | None]:
    """Everything that can be checked before forking: TLS files, the store, the port (named by
    ``option`` when it is in use).

    Returns the store (not started: its threads belong in the worker) and, for the admission
    listener, the reloading TLS context.
    """
    context = None
    if listener == "admission":
        if not settings.tls_cert or not settings.tls_key:
            raise UsageError("serve admission needs --tls-cert and --tls-key "
                             "(run `gitjob-webhook certs --out certs` for development ones)")
        try:
            context = ReloadingContext(settings.tls_cert, settings.tls_key)
        except CertificateError as error:
            raise UsageError(f"--tls-cert/--tls-key: {error}") from None
    try:
        store = open_store(settings, listener)
    except StoreError as error:
        raise UsageError(str(error)) from None
    try:
        gunicorn.check_bindable(settings.listen or DEFAULT_LISTEN[listener])
    except gunicorn.ListenError as error:
        hint = f" (another process holds it: stop that one, or choose another address with {option})" \
            if error.errno == errno.EADDRINUSE else ""
        raise Failure(f"{listener}: {error}{hint}") from None
    return store, context


def serve_one(listener: str, settings: Settings) -> int:
    """Run one listener under gunicorn until it is told to stop."""
    settings = settings.replace(listen=settings.listen or DEFAULT_LISTEN[listener])
    assert settings.listen is not None
    # Before anything imports prometheus-client: it chooses single- or multi-process storage at import.
    gunicorn.prepare_multiprocess_metrics(settings.workers)
    store, context = check_serving(listener, settings)
    log.info(f"store: {store.description}", extra=fields(listener=listener))

    def factory() -> Any:
        if listener == "receiver":
            from controller.receiver.app import create_app
            return create_app(settings, store)
        from controller.admission.app import create_app as create_admission_app
        return create_admission_app(settings, store)

    # Reviews are at most what the API server sends (3 MiB); deliveries at most --max-body-size.
    max_body = MAX_REVIEW_BYTES if listener == "admission" else settings.max_body_size
    gunicorn.run(factory, gunicorn.gunicorn_options(settings, settings.listen, listener, max_body,
                                                    context.front if context else None))
    return 0


def serve_all(settings: Settings) -> int:
    """Start ``serve receiver`` and ``serve admission`` as two children; stop both when one stops."""
    if settings.receiver_listen == settings.admission_listen and settings.receiver_listen.port != 0:
        raise UsageError(f"--receiver-listen and --admission-listen are the same address "
                         f"({settings.receiver_listen})")
    for name, listen in (("receiver", settings.receiver_listen), ("admission", settings.admission_listen)):
        store, _ = check_serving(name, settings.replace(listen=listen), option=f"--{name}-listen")
        store.stop()
    environment = dict(os.environ)
    environment.update(child_environment(settings))
    # The children are in sessions of their own, and stop with this process however it ends: Ctrl-C
    # reaches them from this process (gunicorn's quick stop), a closed terminal (SIGHUP, which
    # gunicorn takes as "reload") and SIGTERM as this process's SIGTERM (graceful), and a SIGKILL of
    # this process as the kernel's SIGTERM (PR_SET_PDEATHSIG).
    parent = os.getpid()
    children = {
        name: subprocess.Popen([sys.executable, "-m", "controller", "serve", name,
                                "--listen", str(listen)], env=environment, start_new_session=True,
                               preexec_fn=partial(_stop_with_parent, parent))
        for name, listen in (("receiver", settings.receiver_listen),
                             ("admission", settings.admission_listen))
    }

    def stop(signum: int, _frame: Any) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for stopping in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(stopping, stop)
    status = 0
    try:
        finished = _wait_any(list(children.values()))
        status = finished.returncode or 0
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=settings.graceful_timeout + 5)
            except subprocess.TimeoutExpired:
                child.kill()
    return status if status >= 0 else 0


def _stop_with_parent(parent: int) -> None:
    """In the child, before it runs: SIGTERM when the parent dies, or at once if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _wait_any(children: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Block until one child exits (children are few; os.wait reaps whichever ends first)."""
    while True:
        for child in children:
            if child.poll() is not None:
                return child
        try:
            pid, status = os.wait()
        except (ChildProcessError, InterruptedError):
            continue
        for child in children:
            if child.pid == pid:
                child.returncode = os.waitstatus_to_exitcode(status)
                return child


def child_environment(settings: Settings) -> dict[str, str]:
    """The settings that differ from the defaults, as ``GITJOB_WEBHOOK_*`` variables for a child."""
    defaults = Settings()
    variables = {}
    for name in Settings.__dataclass_fields__:
        value = getattr(settings, name)
        if name in ("listen", "receiver_listen", "admission_listen") or value == getattr(defaults, name):
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        variables[env_name(name)] = text
    return variables
