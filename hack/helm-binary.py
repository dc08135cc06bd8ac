#!/usr/bin/env python3
"""Build the helm the chart is linted, rendered and installed with, from tools/helm, into a cache.

Usage: hack/helm-binary.py            build when missing; the last line names the binary
       hack/helm-binary.py --path     only print where the binary is (or will be)

helm lands in ${GITJOB_WEBHOOK_CACHE:-${XDG_CACHE_HOME:-~/.cache}/gitjob-webhook}/helm/<version>/helm,
beside the Kubernetes binaries hack/k8s-binaries.py builds, and is skipped when it is there and
reports that version. The version is the one tools/helm/go.mod requires; nothing else names it.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import cachedir

MODULE_DIR = pathlib.Path(__file__).resolve().parent.parent / "tools" / "helm"
PACKAGE = "helm.sh/helm/v4/cmd/helm"
VERSION_VARIABLES = "helm.sh/helm/v4/internal/version"
# Measured on 2 cores with an empty Go build cache, modules already downloaded: 2 min 48 s (8 min
# while other builds kept the load at 6 to 11); downloading the modules first adds about 20 s.
COLD_MINUTES = 3


class BuildError(Exception):
    """The build cannot start or did not finish; the message is the one line to print."""


def go_mod() -> str:
    """The text of tools/helm/go.mod."""
    return (MODULE_DIR / "go.mod").read_text()


def helm_version(gomod: str | None = None) -> str:
    """The helm.sh/helm/v4 version tools/helm/go.mod requires, e.g. ``v4.3.1``."""
    found = re.search(r"^\s*(?:require\s+)?helm\.sh/helm/v4 (v\S+)", gomod or go_mod(), re.MULTILINE)
    if found is None:
        raise BuildError(f"helm-binary: {MODULE_DIR / 'go.mod'} requires no helm.sh/helm/v4 version")
    return found.group(1)


def binary_path(version: str | None = None) -> pathlib.Path:
    """Where helm ``version`` (default: the one go.mod requires) is kept."""
    return cachedir.root() / "helm" / (version or helm_version()) / "helm"


def usable(binary: pathlib.Path, version: str) -> bool:
    """Whether ``binary`` exists, runs and reports ``version``."""
    if not binary.is_file():
        return False
    try:
        run = subprocess.run([str(binary), "version", "--template", "{{.Version}}"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0 and run.stdout.strip() == version


def check_go(version: str) -> None:
    """Fail with one line unless a Go at least as new as go.mod's ``go`` directive is on PATH."""
    directive = re.search(r"^go (\d+)\.(\d+)", go_mod(), re.MULTILINE)
    needed = (int(directive.group(1)), int(directive.group(2))) if directive else (1, 0)
    found = "no go on PATH"
    if shutil.which("go"):
        run = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True,
                             env={**os.environ, "GOTOOLCHAIN": "local"})
        found = run.stdout.strip() or "a go that does not run"
        have = re.match(r"go(\d+)\.(\d+)", found)
        if run.returncode == 0 and (found.startswith("devel") or
                                    have is not None and (int(have.group(1)), int(have.group(2))) >= needed):
            return
    raise BuildError(f"helm-binary: Go {needed[0]}.{needed[1]} or newer is needed to build helm {version} "
                     f"(found {found}); install it or put it on PATH")


def build(version: str, target: pathlib.Path) -> float:
    """Build helm into ``target`` (atomically); return the seconds it took."""
    started = time.monotonic()
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    ldflags = (f"-s -w -X {VERSION_VARIABLES}.version={version} "
               f"-X {VERSION_VARIABLES}.gitTreeState=clean")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".helm-", dir=target.parent) as scratch:
        output = pathlib.Path(scratch) / "helm"
        command = ["go", "build", "-mod=readonly", "-trimpath", "-ldflags", ldflags, "-o", str(output),
                   PACKAGE]
        if subprocess.run(command, cwd=MODULE_DIR, env=env).returncode != 0:
            raise BuildError(f"helm-binary: building helm {version} failed (go build's output above)")
        # Atomic: an interrupted build leaves a scratch directory, never a half binary.
        os.replace(output, target)
    return time.monotonic() - started


def main(argv: list[str]) -> int:
    """Build helm when missing; print its path; exit status 1 with one line on failure."""
    if argv == ["--path"]:
        print(binary_path())
        return 0
    try:
        version = helm_version()
        target = binary_path(version)
        if not usable(target, version):
            check_go(version)
            print(f"helm-binary: building helm {version} (first build takes about {COLD_MINUTES} minutes)...",
                  flush=True)
            print(f"helm-binary: ... done in {build(version, target):.0f} s", flush=True)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"helm-binary: helm {version} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
