"""Fixtures for the deployment checks: the manifests as kustomize renders them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import binaries
from support.paths import MANIFESTS


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIRECTORY`` with the real kubectl, as objects."""
    binary = binaries.ensure().path("kubectl")
    result = subprocess.run([str(binary), "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=60)
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


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of that kind and name."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} found"
    return matches[0]
