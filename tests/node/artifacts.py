"""What the node runs, from the machine-wide caches: Kubernetes' node binaries (hack/k8s-binaries.py),
containerd 2 and the sandbox image (hack/node-binaries.py), and the project's image
(hack/node-image.py). Missing pieces are built once, by those scripts, whose output is the progress.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cluster import binaries
from support import scripts

NODE_COMPONENTS = (*binaries.CONTROL_PLANE, "kubelet", "kube-controller-manager", "kube-scheduler",
                   "kube-proxy")
# Host tools the node needs; all are Debian packages.
HOST_TOOLS = {"runc": "runc", "ip": "iproute2", "iptables": "iptables", "ip6tables": "iptables",
              "nft": "nftables", "unshare": "util-linux", "nsenter": "util-linux", "podman": "podman",
              "debootstrap": "debootstrap"}
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")


class Unavailable(Exception):
    """The node cannot run on this machine, or a piece could not be built; the message says why."""


@dataclass(frozen=True)
class Artifacts:
    """The cached pieces of one node."""

    kubernetes: binaries.Binaries
    containerd_dir: pathlib.Path
    containerd_version: str
    pause_archive: pathlib.Path
    pause_image: str
    image_archive: pathlib.Path
    image: dict[str, Any]  # name, id, size, key, base, seconds (hack/node-image.py)

    def containerd(self, name: str) -> pathlib.Path:
        """``containerd``, ``ctr`` or ``containerd-shim-runc-v2``."""
        return self.containerd_dir / name


def missing_prerequisites() -> list[str]:
    """Why this machine cannot run the node (root, Debian packages), or nothing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the node tests need root (bridge, iptables, cgroups, mount namespaces)")
    packages = sorted({package for tool, package in HOST_TOOLS.items() if shutil.which(tool) is None}
                      | {"containernetworking-plugins" for plugin in CNI_PLUGINS
                         if not (pathlib.Path("/usr/lib/cni") / plugin).is_file()})
    if packages:
        problems.append(f"missing Debian packages: apt-get install {' '.join(packages)}")
    return problems


def _build(script: str, progress: Callable[[str], None] | None) -> list[str]:
    returncode, lines = scripts.run(script, progress=progress)
    if returncode != 0:
        raise Unavailable("\n".join(lines[-30:]) or f"hack/{script}.py exited with {returncode}")
    return lines


def ensure(progress: Callable[[str], None] | None = None) -> Artifacts:
    """Every piece, built first where missing; Unavailable when the machine or a build fails."""
    problems = missing_prerequisites()
    if problems:
        raise Unavailable("; ".join(problems))
    try:
        kubernetes = binaries.ensure(NODE_COMPONENTS, progress)
    except binaries.BinariesUnavailable as error:
        raise Unavailable(str(error)) from None
    node_binaries = scripts.load("node-binaries")
    version = node_binaries.containerd_version()
    directory: pathlib.Path = node_binaries.cache_dir(version)
    if not node_binaries.usable(directory, version):
        _build("node-binaries", progress)
    node_image = scripts.load("node-image")
    archive = node_image.cached_image()
    if archive is None:
        _build("node-image", progress)
        archive = node_image.cached_image()
        if archive is None:
            raise Unavailable("hack/node-image.py built no image")
    details = json.loads(archive.with_suffix(".json").read_text())
    return Artifacts(kubernetes, directory, version, directory / "pause.tar", node_binaries.PAUSE_IMAGE,
                     archive, details)
