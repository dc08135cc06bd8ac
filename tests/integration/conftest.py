"""Fixtures that run the real service: gunicorn processes on free ports."""

from __future__ import annotations


import pytest

from support.paths import EXAMPLE_GITREPOS
from support import service
from support.waiting import free_port


@pytest.fixture
def receiver(run_service) -> service.Service:
    """A receiver on the example offline store, ready."""
    port = free_port()
    started = run_service("serve", "receiver", "--listen", f"127.0.0.1:{port}", "--store", "offline",
                          "--gitrepos", str(EXAMPLE_GITREPOS))
    started.receiver = f"http://127.0.0.1:{port}"
    service.wait_ready(started.receiver, started)
    return started


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
