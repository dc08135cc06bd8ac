#!/usr/bin/env python3
"""Build containerd 2, its runc shim, ctr and the sandbox ("pause") image from tools/containerd.

Usage: hack/node-binaries.py

The node tests (tests/node) need a container runtime that Kubernetes 1.36+ accepts (containerd >= 2.0;
Debian bookworm has 1.6). containerd is a Go module like Kubernetes: tools/containerd pins it (go.mod
and go.sum committed) and this script builds its commands, statically (CGO_ENABLED=0, so no btrfs or
devmapper snapshotter, which the tests never use), into
${GITJOB_WEBHOOK_CACHE:-${XDG_CACHE_HOME:-~/.cache}/gitjob-webhook}/containerd/<version>/, once per
version. It also writes pause.tar there: a one-layer docker-archive of tools/containerd/pause, the
sandbox image, since no registry (registry.k8s.io/pause) can be reached.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import cachedir

MODULE_DIR = pathlib.Path(__file__).resolve().parent.parent / "tools" / "containerd"
CONTAINERD = "github.com/containerd/containerd/v2"
COMMANDS = {"containerd": f"{CONTAINERD}/cmd/containerd",
            "containerd-shim-runc-v2": f"{CONTAINERD}/cmd/containerd-shim-runc-v2",
            "ctr": f"{CONTAINERD}/cmd/ctr",
            "pause": "./pause"}
PAUSE_IMAGE = "localhost/gitjob-webhook/pause:1"
"""The sandbox image's name: containerd's `pinned_images.sandbox` in the node tests."""
# Measured on 2 cores with the Go build cache shared with tools/k8s (grpc, otel, k8s libraries).
COLD_MINUTES = 3


class BuildError(Exception):
    """A build cannot start or did not finish; the message is the one line to print."""


def containerd_version() -> str:
    """The containerd version tools/containerd/go.mod requires, e.g. ``v2.4.2``."""
    gomod = (MODULE_DIR / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(CONTAINERD)} (v\S+)", gomod, re.MULTILINE)
    if found is None:
        raise BuildError(f"node-binaries: {MODULE_DIR / 'go.mod'} requires no {CONTAINERD}")
    return found.group(1)


def cache_dir(version: str | None = None) -> pathlib.Path:
    """Where the binaries of ``version`` (default: the one go.mod requires) are kept."""
    return cachedir.root() / "containerd" / (version or containerd_version())


def usable(directory: pathlib.Path, version: str) -> bool:
    """Whether every binary and pause.tar are there and containerd reports ``version``."""
    if not all((directory / name).is_file() for name in (*COMMANDS, "pause.tar")):
        return False
    try:
        run = subprocess.run([str(directory / "containerd"), "--version"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0 and f" {version} " in f"{run.stdout} "


def build(name: str, version: str, target: pathlib.Path) -> None:
    """Build one command into ``target`` atomically."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    flags = "-s -w" if name == "pause" else f"-s -w -X {CONTAINERD}/version.Version={version}"
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=target.parent) as scratch:
        output = pathlib.Path(scratch) / name
        command = ["go", "build", "-mod=readonly", "-trimpath", "-ldflags", flags, "-o", str(output),
                   COMMANDS[name]]
        if subprocess.run(command, cwd=MODULE_DIR, env=env).returncode != 0:
            raise BuildError(f"node-binaries: building {name} {version} failed (go build's output above)")
        os.replace(output, target)


def _tar_member(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    archive.addfile(info, io.BytesIO(data))


def write_pause_image(binary: pathlib.Path, target: pathlib.Path) -> None:
    """A docker-archive (what `ctr images import` reads) holding one layer with /pause."""
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        _tar_member(layer, "pause", binary.read_bytes(), 0o755)
    layer_bytes = layer_buffer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/node-binaries.py"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [PAUSE_IMAGE],
                            "Layers": [layer_name]}]).encode()
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _tar_member(archive, config_name, config)
        _tar_member(archive, layer_name, layer_bytes)
        _tar_member(archive, "manifest.json", manifest)
    os.replace(partial, target)


def main() -> int:
    """Build what is missing; exit status 1 with one line on failure."""
    try:
        version = containerd_version()
        directory = cache_dir(version)
        if usable(directory, version):
            print(f"node-binaries: containerd {version} in {directory}")
            return 0
        if shutil.which("go") is None:
            raise BuildError(f"node-binaries: Go is needed to build containerd {version} (no go on PATH)")
        directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        print(f"node-binaries: building containerd {version}, its runc shim, ctr and pause (first build "
              f"takes about {COLD_MINUTES} minutes)...", flush=True)
        for name in COMMANDS:
            build(name, version, directory / name)
        write_pause_image(directory / "pause", directory / "pause.tar")
        print(f"node-binaries: ... done in {time.monotonic() - started:.0f} s", flush=True)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"node-binaries: containerd {version} in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
