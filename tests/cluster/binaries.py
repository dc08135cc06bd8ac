"""Where the Kubernetes and etcd binaries are: the per-version cache hack/k8s-binaries.py builds into.

The cache location and the version come from that script (which reads tools/k8s/go.mod), so the
tests and `make k8s-binaries` can never disagree about either.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

BUILDER = pathlib.Path(__file__).resolve().parents[2] / "hack" / "k8s-binaries.py"
CONTROL_PLANE = ("kube-apiserver", "etcd", "kubectl")


class BinariesUnavailable(Exception):
    """The binaries are not in the cache and could not be built; the message says why."""


@dataclass(frozen=True)
class Binaries:
    """The cached binaries of one Kubernetes version."""

    directory: pathlib.Path
    version: str

    def path(self, component: str) -> pathlib.Path:
        """The binary of ``component`` (``kube-apiserver``, ``etcd``, ``kubectl``, ...)."""
        return self.directory / component


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_binaries", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kubernetes_version() -> str:
    """The Kubernetes version tools/k8s/go.mod pins, e.g. ``v1.37.2``."""
    return str(_builder().kubernetes_version())


def etcd_version() -> str:
    """The etcd server version tools/k8s/go.mod pins, without the ``v``."""
    return str(_builder().etcd_version())


def cached(components: Sequence[str] = CONTROL_PLANE) -> Binaries | None:
    """The cached binaries, or None while any of ``components`` is missing (no build is started)."""
    builder = _builder()
    version: str = builder.kubernetes_version()
    directory: pathlib.Path = builder.cache_dir(version)
    if all((directory / name).is_file() for name in components):
        return Binaries(directory, version)
    return None


def ensure(components: Sequence[str] = CONTROL_PLANE,
           progress: Callable[[str], None] | None = None) -> Binaries:
    """The cached binaries, built first by hack/k8s-binaries.py when missing (its lines go to
    ``progress``); raises BinariesUnavailable with the builder's last line when it fails."""
    found = cached(components)
    if found is not None:
        return found
    lines: list[str] = []
    with subprocess.Popen([sys.executable, str(BUILDER), *components], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as build:
        assert build.stdout is not None
        for line in build.stdout:
            lines.append(line.rstrip("\n"))
            if progress is not None:
                progress(lines[-1])
    found = cached(components)
    if build.returncode != 0 or found is None:
        reason = lines[-1] if lines else f"{BUILDER} exited with {build.returncode}"
        raise BinariesUnavailable(f"the real control plane needs {', '.join(components)}: {reason} "
                                  f"(run `make k8s-binaries`)")
    return found
