#!/usr/bin/env python3
"""Build the Kubernetes and etcd binaries the tests run, from tools/k8s, into a per-version cache.

Usage: hack/k8s-binaries.py [COMPONENT ...]   (default: kube-apiserver etcd kubectl)

A component is `etcd` or the name of any `k8s.io/kubernetes/cmd/<name>` command. The binaries land
in ${GITJOB_WEBHOOK_CACHE:-${XDG_CACHE_HOME:-~/.cache}/gitjob-webhook}/k8s/<version>/, outside the
clone, so every checkout and CI run on the machine shares one build. The Kubernetes version is the
one tools/k8s/go.mod requires; nothing else names it.
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
from collections.abc import Sequence

import cachedir

MODULE_DIR = pathlib.Path(__file__).resolve().parent.parent / "tools" / "k8s"
DEFAULT_COMPONENTS = ("kube-apiserver", "etcd", "kubectl")
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
# Measured on 2 cores with an empty Go build cache (modules already downloaded); with a warm build
# cache each takes seconds, and kubectl and etcd reuse much of what kube-apiserver compiled.
COLD_MINUTES = {"kube-apiserver": 8, "etcd": 2, "kubectl": 3}


class BuildError(Exception):
    """A build cannot start or did not finish; the message is the one line to print."""


def go_mod() -> str:
    """The text of tools/k8s/go.mod."""
    return (MODULE_DIR / "go.mod").read_text()


def kubernetes_version(gomod: str | None = None) -> str:
    """The k8s.io/kubernetes version tools/k8s/go.mod requires, e.g. ``v1.37.2``."""
    found = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", gomod or go_mod(), re.MULTILINE)
    if found is None:
        raise BuildError(f"k8s-binaries: {MODULE_DIR / 'go.mod'} requires no k8s.io/kubernetes version")
    return found.group(1)


def cache_dir(version: str | None = None) -> pathlib.Path:
    """Where the binaries of ``version`` (default: the one go.mod requires) are kept."""
    return cachedir.root() / "k8s" / (version or kubernetes_version())


def package(component: str) -> str:
    """The Go package whose main is ``component``."""
    return ETCD_PACKAGE if component == "etcd" else f"k8s.io/kubernetes/cmd/{component}"


def label(component: str, version: str) -> str:
    """``kube-apiserver v1.37.2``, ``etcd v3.7.0``: a component with the version it is built at."""
    return f"etcd v{etcd_version()}" if component == "etcd" else f"{component} {version}"


def version_command(component: str) -> list[str]:
    """Arguments that make ``component`` print its version (kubectl has no --version flag)."""
    return ["version", "--client"] if component == "kubectl" else ["--version"]


def etcd_version(gomod: str | None = None) -> str:
    """The etcd server version tools/k8s/go.mod requires, without the ``v``."""
    found = re.search(r"^\s*go\.etcd\.io/etcd/server/v3 v(\S+)", gomod or go_mod(), re.MULTILINE)
    if found is None:
        raise BuildError(f"k8s-binaries: {MODULE_DIR / 'go.mod'} requires no go.etcd.io/etcd/server/v3")
    return found.group(1)


def usable(binary: pathlib.Path, component: str, version: str) -> bool:
    """Whether ``binary`` exists, runs and reports the version go.mod asks for."""
    if not binary.is_file():
        return False
    try:
        run = subprocess.run([str(binary), *version_command(component)], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    expected = etcd_version() if component == "etcd" else version
    return run.returncode == 0 and expected in run.stdout


def parse_go_version(text: str) -> tuple[int, ...] | None:
    """(1, 26, 8) from ``go1.26.8`` or ``1.26.8``; None for a development toolchain."""
    found = re.fullmatch(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?\S*", text.strip())
    return tuple(int(part or 0) for part in found.groups()) if found else None


def check_go(component: str, version: str) -> None:
    """Fail with one line unless a Go at least as new as go.mod's `go` directive is on PATH."""
    directive = re.search(r"^go (\S+)$", go_mod(), re.MULTILINE)
    needed = parse_go_version(directive.group(1)) if directive else None
    if needed is None:
        raise BuildError(f"k8s-binaries: {MODULE_DIR / 'go.mod'} has no go directive")
    found = "no go on PATH"
    if shutil.which("go"):
        run = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True,
                             env={**os.environ, "GOTOOLCHAIN": "local"})
        found = run.stdout.strip() or "a go that does not run"
        have = parse_go_version(found)
        new_enough = found.startswith("devel") if have is None else have >= needed
        if run.returncode == 0 and new_enough:
            return
    wanted = ".".join(map(str, needed[:3] if needed[2] else needed[:2]))
    raise BuildError(f"k8s-binaries: Go {wanted} or newer is needed to build {label(component, version)} "
                     f"(found {found}); install it or put it on PATH")


def ldflags(component: str, version: str) -> str:
    """Linker flags: stripped, and for Kubernetes the version stamps its own build would set."""
    flags = ["-s", "-w"]
    if component == "etcd":
        return " ".join(flags)  # etcd's version is a variable of its own module, already right
    major, minor = version.removeprefix("v").split(".")[:2]
    stamps = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
              "buildDate": release_date()}
    for package_path in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package_path}.{key}={value}" for key, value in stamps.items()]
    return " ".join(flags)


def release_date() -> str:
    """When k8s.io/kubernetes at the required version was published: a fixed, honest build date."""
    template = '{{.Time.Format "2006-01-02T15:04:05Z"}}'
    run = subprocess.run(["go", "list", "-mod=readonly", "-m", "-f", template, "k8s.io/kubernetes"],
                         cwd=MODULE_DIR, capture_output=True, text=True,
                         env={**os.environ, "GOTOOLCHAIN": "local"})
    return run.stdout.strip() if run.returncode == 0 and run.stdout.strip() else "1970-01-01T00:00:00Z"


def build(component: str, version: str, target: pathlib.Path) -> float:
    """Build ``component`` into ``target`` (atomically); return the seconds it took."""
    started = time.monotonic()
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    with tempfile.TemporaryDirectory(prefix=f".{component}-", dir=target.parent) as scratch:
        output = pathlib.Path(scratch) / component
        command = ["go", "build", "-mod=readonly", "-trimpath", "-ldflags", ldflags(component, version),
                   "-o", str(output), package(component)]
        if subprocess.run(command, cwd=MODULE_DIR, env=env).returncode != 0:
            raise BuildError(f"k8s-binaries: building {label(component, version)} failed "
                             "(go build's output above)")
        # The rename is atomic: an interrupted build leaves a scratch directory, never a half binary.
        os.replace(output, target)
    return time.monotonic() - started


def main(argv: Sequence[str]) -> int:
    """Build every missing component; exit status 1 with one line on failure."""
    components = list(argv) or list(DEFAULT_COMPONENTS)
    try:
        version = kubernetes_version()
        directory = cache_dir(version)
        directory.mkdir(parents=True, exist_ok=True)
        missing = [name for name in components if not usable(directory / name, name, version)]
        if missing:
            check_go(missing[0], version)
        for name in missing:
            print(f"k8s-binaries: building {label(name, version)} (first build takes about "
                  f"{COLD_MINUTES.get(name, 5)} minutes)...", flush=True)
            seconds = build(name, version, directory / name)
            print(f"k8s-binaries: ... done in {seconds:.0f} s", flush=True)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"k8s-binaries: {', '.join(components)} {version} in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
