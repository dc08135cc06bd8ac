#!/usr/bin/env python3
"""Build the project's image from its unmodified Dockerfile with podman, on a local base, and cache it.

Usage: hack/node-image.py [--print]   (as root; --print only prints the cached archive, or nothing)

No registry can be reached, so `FROM python:3.11-slim-bookworm` is a local look-alike: a debootstrap
of Debian bookworm (minbase) with python3, python3-venv, python3-pip and ca-certificates, `python` and
`pip` on PATH and the EXTERNALLY-MANAGED marker removed (the Dockerfile's pip installs into the
system interpreter, as on the official image). The Dockerfile's `pip wheel` reaches PyPI through the
host's pip settings: the host's CA bundle and a pip.conf with its index are mounted into the build.

Both are cached under ${GITJOB_WEBHOOK_CACHE:-~/.cache/gitjob-webhook}/node-images/:
- base-<release>-<recipe>.tar: the base's root filesystem, per Debian release and recipe;
- gitjob-webhook-<inputs>.tar: `podman save` of the image (docker-archive, named
  docker.io/library/gitjob-webhook:<version>, what the manifests' `gitjob-webhook:<version>` means to
  containerd), per content hash of the build's inputs (Dockerfile, .dockerignore, the files the
  Dockerfile copies, the base); with a .json next to it (image id, tag, build time).

podman runs with its storage in a scratch directory and, like debootstrap, inside a private mount
namespace over /run, /var/lib and /etc/containers, with chroot isolation and the host network: nothing
it writes (storage, locks, runtime state, cgroups, networks) outlives the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO

import cachedir

REPO = pathlib.Path(__file__).resolve().parent.parent
RELEASE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
BASE_RECIPE = 1  # bump when the base's recipe below changes
BASE_NAME = "docker.io/library/python:3.11-slim-bookworm"  # the Dockerfile's PYTHON_IMAGE default
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the Dockerfile's COPY lines take (with .dockerignore's allow-list): the image's inputs.
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "setup.cfg", "README.md")
CONTEXT_TREES = ("controller",)
KEEP_IMAGES = 2  # older archives are deleted: each is about 340 MB
PODMAN_CONF = """\
[containers]
# podman's default nofile limit (1048576) is above what this kind of VM allows (no CAP_SYS_RESOURCE).
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
# crun refuses hybrid cgroup layouts; runc is what the node runs too.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
"""
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'


class BuildError(Exception):
    """The build cannot start or failed; the message is the one line to print."""


def cache_root() -> pathlib.Path:
    """The node images' cache directory."""
    return cachedir.root() / "node-images"


def project_version() -> str:
    """The package version (`make image` tags the image with it; the manifests deploy it)."""
    source = (REPO / "controller" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "(.*)"', source, re.MULTILINE)
    if found is None:
        raise BuildError("node-image: controller/__init__.py has no __version__")
    return found.group(1)


def image_name() -> str:
    """The image's fully qualified name: what containerd calls `gitjob-webhook:<version>`."""
    return f"docker.io/library/gitjob-webhook:{project_version()}"


def base_key() -> str:
    """The base's cache key: the Debian release and the recipe."""
    recipe = hashlib.sha256(f"{RELEASE} {' '.join(BASE_PACKAGES)} {BASE_RECIPE}".encode()).hexdigest()
    return f"{RELEASE}-{recipe[:12]}"


def image_key() -> str:
    """A content hash of everything the image is built from (the pip resolution aside: dependency
    versions are whatever PyPI serves when the key changes)."""
    digest = hashlib.sha256(base_key().encode())
    paths = [REPO / name for name in CONTEXT_FILES]
    for tree in CONTEXT_TREES:
        paths += sorted(path for path in (REPO / tree).rglob("*") if path.is_file()
                        and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"))
    for path in paths:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def base_archive() -> pathlib.Path:
    """Where the base's root filesystem tar is cached."""
    return cache_root() / f"base-{base_key()}.tar"


def image_archive() -> pathlib.Path:
    """Where the image of the current inputs is cached."""
    return cache_root() / f"gitjob-webhook-{image_key()}.tar"


def cached_image() -> pathlib.Path | None:
    """The cached image archive of the current inputs, or None."""
    archive = image_archive()
    return archive if archive.is_file() and archive.with_suffix(".json").is_file() else None


def debian_mirror() -> str:
    """The Debian mirror apt uses (deb822 or one-line sources), or deb.debian.org."""
    configured = os.environ.get("GITJOB_WEBHOOK_DEBIAN_MIRROR")
    if configured:
        return configured
    for source in sorted(pathlib.Path("/etc/apt").glob("sources.list*")) + sorted(
            pathlib.Path("/etc/apt/sources.list.d").glob("*")):
        if not source.is_file():
            continue
        text = source.read_text(errors="replace")
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.MULTILINE) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+" + RELEASE + r"\s", text, re.MULTILINE)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def run(command: Sequence[str], log: pathlib.Path, what: str, stdin: IO[bytes] | None = None,
        env: Mapping[str, str] | None = None) -> None:
    """Run ``command`` with its output appended to ``log``; BuildError with the log's tail if it fails."""
    with open(log, "ab") as output:
        output.write(f"\n$ {' '.join(command)}\n".encode())
        output.flush()
        status = subprocess.run(list(command), stdout=output, stderr=subprocess.STDOUT, stdin=stdin,
                                env=env).returncode
    if status != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BuildError(f"node-image: {what} failed (exit status {status}); the end of {log}:\n{tail}")


def in_private_mounts(arguments: Sequence[str], log: pathlib.Path, what: str) -> None:
    """Run this script with ``arguments`` in a private mount namespace (its mounts die with it)."""
    run(["unshare", "--mount", "--propagation", "private", "--", sys.executable, __file__, *arguments],
        log, what)


def build_base(scratch: pathlib.Path, log: pathlib.Path) -> None:
    """debootstrap the base into scratch/rootfs, make it python:3.11-slim-like, tar it into the cache."""
    rootfs = scratch / "rootfs"
    run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", RELEASE, str(rootfs),
         debian_mirror()], log, f"debootstrap of Debian {RELEASE}")
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*",
                    "usr/share/man/*", "usr/share/locale/*", "usr/share/info/*"):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    # PEP 668: Debian marks its interpreter externally managed; the official image's is not.
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = rootfs / "usr/local/bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    partial = scratch / "base.tar"
    run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."], log,
        "tar of the base")
    os.replace(partial, base_archive())


def pip_settings(scratch: pathlib.Path) -> list[str]:
    """`podman build -v` arguments giving the build's pip the host's index and CA bundle."""
    candidates = (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                  "/etc/ssl/certs/ca-certificates.crt")
    bundle = next((pathlib.Path(value) for value in candidates
                   if value and pathlib.Path(value).is_file()), None)
    lines = ["[global]"]
    for key in ("index-url", "extra-index-url", "trusted-host"):
        value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if not value:
            got = subprocess.run([sys.executable, "-m", "pip", "config", "get", f"global.{key}"],
                                 capture_output=True, text=True)
            value = got.stdout.strip() if got.returncode == 0 else ""
        if value:
            lines.append(f"{key} = {value}")
    volumes: list[str] = []
    if bundle is not None:
        lines.append("cert = /etc/ssl/certs/ca-certificates.crt")
        volumes += ["-v", f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro"]
    pip_conf = scratch / "pip.conf"
    pip_conf.write_text("\n".join(lines) + "\n")
    return [*volumes, "-v", f"{pip_conf}:/etc/pip.conf:ro"]


def build_image_inside(scratch: pathlib.Path, log: pathlib.Path) -> None:
    """In the private mount namespace: podman import the base, build, save into the cache."""
    (scratch / "var-lib").mkdir()
    etc = scratch / "etc-containers"
    if pathlib.Path("/etc/containers").is_dir():
        shutil.copytree("/etc/containers", etc, symlinks=True)
    else:
        etc.mkdir()
    (etc / "policy.json").write_text(POLICY)
    # The host's /etc/containers, /var/lib and /run are hidden, so podman's locks, blob cache,
    # network state and runc state stay in this namespace (and the scratch directory).
    run(["mount", "-t", "tmpfs", "tmpfs", "/run"], log, "mounting /run")
    run(["mount", "--bind", str(scratch / "var-lib"), "/var/lib"], log, "mounting /var/lib")
    if not pathlib.Path("/etc/containers").is_dir():
        raise BuildError("node-image: /etc/containers is missing (apt-get install podman)")
    run(["mount", "--bind", str(etc), "/etc/containers"], log, "mounting /etc/containers")
    conf = scratch / "containers.conf"
    conf.write_text(PODMAN_CONF)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    podman = ["podman", "--root", str(scratch / "storage"), "--runroot", "/run/podman",
              "--storage-driver", "overlay"]
    version = project_version()
    with open(base_archive(), "rb") as base:
        run([*podman, "import", "--change", f"ENV=PATH={BASE_PATH}", "--change", "ENV=LANG=C.UTF-8",
             "--change", 'CMD=["python3"]', "-", BASE_NAME],
            log, "podman import of the base", stdin=base, env=env)
    # The tags of `make image`, plus the fully qualified name containerd resolves the manifests' to.
    run([*podman, "build", "--pull=never", "--isolation", "chroot", "--network", "host",
         *pip_settings(scratch), "-t", "gitjob-webhook:dev", "-t", f"gitjob-webhook:{version}",
         "-t", image_name(), "-f", str(REPO / "Dockerfile"), str(REPO)], log, "podman build", env=env)
    partial = scratch / "image.tar"
    run([*podman, "save", "--format", "docker-archive", "-o", str(partial), image_name()], log, "podman save",
        env=env)
    inspect = subprocess.run([*podman, "image", "inspect", image_name()], capture_output=True, text=True,
                             env=env)
    details = json.loads(inspect.stdout)[0] if inspect.returncode == 0 else {}
    (scratch / "image.json").write_text(json.dumps({
        "name": image_name(), "id": details.get("Id", ""), "size": details.get("Size", 0),
        "key": image_key(), "base": base_key(),
    }))
    subprocess.run([*podman, "system", "reset", "--force"], capture_output=True, env=env)


def prune() -> None:
    """Keep the newest KEEP_IMAGES image archives (each is about 340 MB)."""
    archives = sorted(cache_root().glob("gitjob-webhook-*.tar"), key=lambda path: path.stat().st_mtime)
    for old in archives[:-KEEP_IMAGES]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)


def ensure() -> pathlib.Path:
    """The cached image archive, building the base and the image first when they are missing."""
    found = cached_image()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise BuildError("node-image: building the image needs root (debootstrap, podman, mount namespaces)")
    missing = [tool for tool in ("podman", "debootstrap", "unshare", "tar") if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"node-image: {', '.join(missing)} missing: apt-get install podman debootstrap")
    cache_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache_root()) as directory:
        scratch = pathlib.Path(directory)
        log = scratch / "build.log"
        try:
            if not base_archive().is_file():
                started = time.monotonic()
                print(f"node-image: debootstrap of Debian {RELEASE} for the base (about 2 minutes)...",
                      flush=True)
                in_private_mounts(["--base", str(scratch)], log, "the base")
                print(f"node-image: ... base done in {time.monotonic() - started:.0f} s", flush=True)
            started = time.monotonic()
            print(f"node-image: podman build of {image_name()} from the Dockerfile (about 1 minute)...",
                  flush=True)
            in_private_mounts(["--image", str(scratch)], log, "the image")
            details = json.loads((scratch / "image.json").read_text())
            details["seconds"] = round(time.monotonic() - started, 1)
            os.replace(scratch / "image.tar", image_archive())
            image_archive().with_suffix(".json").write_text(json.dumps(details, indent=1) + "\n")
            print(f"node-image: ... image done in {details['seconds']:.0f} s", flush=True)
        except BuildError:
            keep = cache_root() / "last-failed-build.log"
            if log.is_file():
                shutil.copyfile(log, keep)
            raise
    prune()
    return image_archive()


def main(argv: Sequence[str]) -> int:
    """Build what is missing and print the archive; exit status 1 with the reason on failure."""
    try:
        if argv and argv[0] in ("--base", "--image"):  # re-executed in the private mount namespace
            scratch = pathlib.Path(argv[1])
            if argv[0] == "--base":
                build_base(scratch, scratch / "build.log")
            else:
                build_image_inside(scratch, scratch / "build.log")
            return 0
        if argv and argv[0] == "--print":
            found = cached_image()
            if found is not None:
                print(found)
            return 0 if found is not None else 1
        print(f"node-image: {ensure()}")
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
