"""Fixtures that run the real service: gunicorn processes on free ports."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support.paths import EXAMPLE_GITREPOS
from support import service
from support.waiting import free_port


@pytest.fixture
def start_receiver(run_service) -> Callable[..., service.Service]:
    """Start a receiver on the example offline store with extra flags; returns it ready."""
    def start(*flags: str) -> service.Service:
        port = free_port()
        started = run_service("serve", "receiver", "--listen", f"127.0.0.1:{port}", "--store", "offline",
                              "--gitrepos", str(EXAMPLE_GITREPOS), *flags)
        started.receiver = f"http://127.0.0.1:{port}"
        service.wait_ready(started.receiver, started)
        return started
    return start


@pytest.fixture
def receiver(start_receiver) -> service.Service:
    """A receiver on the example offline store, ready."""
    return start_receiver()


@pytest.fixture
def admission(run_service, dev_certs) -> service.Service:
    """An admission server on the example offline store with the session's dev certificates, ready."""
    port = free_port()
    started = run_service("serve", "admission", "--listen", f"127.0.0.1:{port}", "--store", "offline",
                          "--gitrepos", str(EXAMPLE_GITREPOS), "--tls-cert", str(dev_certs / "tls.crt"),
                          "--tls-key", str(dev_certs / "tls.key"))
    started.admission = f"https://127.0.0.1:{port}"
    started.ca_file = str(dev_certs / "ca.crt")
    service.wait_ready(started.admission, started, verify=started.ca_file)
    return started
