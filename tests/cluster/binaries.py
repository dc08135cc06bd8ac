"""Where the Kubernetes and etcd binaries are: the per-version cache hack/k8s-binaries.py builds into.

The cache location and the version come from that script (which reads tools/k8s/go.mod), so the
tests and `make k8s-binaries` can never disagree about either.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from support import scripts

BUILDER = "k8s-binaries"
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
    return scripts.load(BUILDER)


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
    returncode, lines = scripts.run(BUILDER, components, progress)
    found = cached(components)
    if returncode != 0 or found is None:
        reason = lines[-1] if lines else f"hack/{BUILDER}.py exited with {returncode}"
        raise BinariesUnavailable(f"the real control plane needs {', '.join(components)}: {reason} "
                                  f"(run `make k8s-binaries`)")
    return found
