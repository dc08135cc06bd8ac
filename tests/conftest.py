"""Fixtures every test folder shares: payloads, development certificates, the service as a process."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from controller.certs import issue as certs
from support import service
from support.paths import EXAMPLE_GITREPOS, PROVIDER_FIXTURES
from support.terminal import ANNOUNCEMENTS, announce

# The real control plane: etcd and kube-apiserver, the cluster view of one test, the fault proxy.
pytest_plugins = ["cluster.fixtures"]

RunService = Callable[..., service.Service]

OFFLINE_EXAMPLE = ("--store", "offline", "--gitrepos", str(EXAMPLE_GITREPOS))
"""Flags that serve the example offline store (the default of the start helpers below)."""

Reporting = Generator[None, pytest.TestReport, pytest.TestReport]
_SERVICES = pytest.StashKey[list[service.Service]]()
_LOG_TAIL_LINES = 80


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Reporting:
    """A failing test's report ends with what each service it started logged last: a flaky failure
    in CI can then be told apart (a worker that died, a request refused and why) from its one run."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        services: list[service.Service] = item.stash.get(_SERVICES, [])
        for number, started in enumerate(services):
            tail = started.log().splitlines()[-_LOG_TAIL_LINES:]
            report.sections.append((f"service {number} log (last {len(tail)} lines)", "\n".join(tail)))
    return report


@pytest.hookimpl(optionalhook=True)  # a run with -p no:xdist has no such hook
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, on the controller: print what a finished worker announced (the control plane's
    and the node's versions), which its own terminal-less session could not."""
    lines = node.workeroutput.get(ANNOUNCEMENTS, [])
    if lines:   # after the progress dots, which xdist writes without ending the line
        announce(node.config, "\n" + "\n".join(lines))


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A CA and serving certificate for localhost, made once per test session."""
    directory = tmp_path_factory.mktemp("certs")
    names = certs.service_names("gitjob-webhook-admission", "cattle-fleet-system")
    certs.ensure_certificates(str(directory), names)
    return directory


class PayloadReader:
    """Callable returning the bytes of a fixture under tests/fixtures/providers."""

    def __call__(self, relative: str) -> bytes:
        return (PROVIDER_FIXTURES / relative).read_bytes()


@pytest.fixture
def payload() -> PayloadReader:
    """Read a provider fixture's exact bytes: ``payload("github/push.json")``."""
    return PayloadReader()


@pytest.fixture(autouse=True)
def _no_service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit the developer's GITJOB_WEBHOOK_* variables or kubeconfig."""
    for name in list(os.environ):
        if name.startswith("GITJOB_WEBHOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("KUBECONFIG", raising=False)


@pytest.fixture
def run_service(tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> Iterator[RunService]:
    """Start ``gitjob-webhook ...`` processes (``run_service("serve", "receiver", ...)``); each is
    stopped (SIGTERM, then waited for) at the end of the test, and its log ends a failing test's report."""
    started: list[service.Service] = []
    request.node.stash[_SERVICES] = started

    def run(*arguments: str, env: dict[str, str] | None = None) -> service.Service:
        log_path = str(tmp_path / f"service-{len(started)}.log")
        started.append(service.start(arguments, log_path, env))
        return started[-1]

    yield run
    for process in started:
        process.stop()


@pytest.fixture
def start_receiver(run_service: RunService) -> Callable[..., service.Service]:
    """Start ``serve receiver`` on a port the kernel picks, with extra flags; returns it ready.

    Without ``--store`` among the flags it serves the example offline store.
    """
    def start(*flags: str, env: dict[str, str] | None = None) -> service.Service:
        store = () if "--store" in flags else OFFLINE_EXAMPLE
        started = run_service("serve", "receiver", "--listen", "127.0.0.1:0", *store, *flags, env=env)
        started.receiver = "http://" + service.listening(started, "receiver")
        service.wait_ready(started.receiver, started)
        return started
    return start


@pytest.fixture
def start_admission(run_service: RunService, dev_certs: pathlib.Path) -> Callable[..., service.Service]:
    """Start ``serve admission`` on a port the kernel picks; returns it ready.

    It serves the session's dev certificates unless the flags name others (then ``ca_file`` is the
    CA that verifies them), and the example offline store unless the flags name a ``--store``.
    """
    def start(*flags: str, env: dict[str, str] | None = None, ca_file: str = "") -> service.Service:
        store = () if "--store" in flags else OFFLINE_EXAMPLE
        tls = () if "--tls-cert" in flags else ("--tls-cert", str(dev_certs / "tls.crt"),
                                                "--tls-key", str(dev_certs / "tls.key"))
        started = run_service("serve", "admission", "--listen", "127.0.0.1:0", *store, *tls, *flags, env=env)
        started.admission = "https://" + service.listening(started, "admission")
        started.ca_file = ca_file or str(dev_certs / "ca.crt")
        service.wait_ready(started.admission, started, verify=started.ca_file)
        return started
    return start
