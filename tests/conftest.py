"""Fixtures every test folder shares: fixture payloads, development certificates, free ports."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from controller import certs
from support import service
from support.paths import PROVIDER_FIXTURES

# The API-server emulator's fixtures (emulator, kube_client, kubeconfig_path, kubectl) for every folder.
pytest_plugins = ["kubeapi.fixtures"]


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A CA and serving certificate for localhost, made once per test session."""
    directory = tmp_path_factory.mktemp("certs")
    names = certs.service_names("gitjob-webhook-admission", "cattle-fleet-system")
    certs.ensure_certificates(str(directory), names)
    return directory


@pytest.fixture
def payload() -> "PayloadReader":
    """Read a provider fixture's exact bytes: ``payload("github/push.json")``."""
    return PayloadReader()


class PayloadReader:
    """Callable returning the bytes of a fixture under tests/fixtures/providers."""

    def __call__(self, relative: str) -> bytes:
        return (PROVIDER_FIXTURES / relative).read_bytes()


@pytest.fixture(autouse=True)
def _no_service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit the developer's GITJOB_WEBHOOK_* variables or kubeconfig."""
    for name in list(os.environ):
        if name.startswith("GITJOB_WEBHOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("KUBECONFIG", raising=False)


@pytest.fixture
def run_service(tmp_path: pathlib.Path) -> Iterator:
    """Start ``gitjob-webhook ...`` processes (``run_service("serve", "receiver", ...)``); each is
    stopped (SIGTERM, then waited for) at the end of the test."""
    started: list[service.Service] = []

    def run(*arguments: str, env: dict[str, str] | None = None) -> service.Service:
        log_path = str(tmp_path / f"service-{len(started)}.log")
        started.append(service.start(arguments, log_path, env))
        return started[-1]

    yield run
    for process in started:
        process.stop()
