"""Volume files as the kubelet writes them: its AtomicWriter layout, file modes and fsGroup ownership.

A Secret, ConfigMap or projected volume (the ServiceAccount token too) is a directory in which the
kubelet (pkg/volume/util/atomic_writer.go)

- writes every file into a timestamped directory ``..2026_11_30_16_37_12.<random>`` (mode 0755), each
  with its item's mode, else the volume's ``defaultMode``; files are root's unless a projected token
  has an ``fsUser`` (the one ``runAsUser`` every container shares);
- points ``..data`` at that directory (a relative symlink, swapped atomically on every update);
- makes each top-level name a symlink ``name -> ..data/name``: what the container opens;

and then, when the pod has an ``fsGroup`` (pkg/volume/volume_linux.go), walks the volume: every file
and directory (not the symlinks) gets group ``fsGroup`` and at least group read (``0440``, these
volumes are read-only; ``0660`` for an emptyDir); directories also setgid and group search.
The volume's directory itself is a tmpfs root for these volumes: mode 1777 before that walk.

TLS-reloading code sees exactly this: a stat of ``tls.crt`` follows two symlinks, and a rotation
changes ``..data``, never the file the path names.
"""

from __future__ import annotations

import datetime
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = "..data"
_READ_ONLY_MASK = 0o440
_READ_WRITE_MASK = 0o660
_SEARCH_MASK = 0o110
_EMPTY_DIR_MODE = 0o777  # pkg/volume/emptydir: the directory every container of the pod may write
_API_VOLUME_ROOT_MODE = 0o1777  # the tmpfs the kubelet mounts for a Secret, ConfigMap or projected volume


@dataclass(frozen=True)
class FileProjection:
    """One file of a volume: its bytes, its mode, and the owner the kubelet gives it (None: root)."""

    data: bytes
    mode: int
    owner: int | None = None


def write_api_volume(directory: Path, payload: Mapping[str, FileProjection], fs_group: int | None) -> None:
    """Write a Secret, ConfigMap or projected volume into ``directory`` (which must not exist)."""
    directory.mkdir()
    os.chmod(directory, _API_VOLUME_ROOT_MODE)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.")
    timestamped = directory / f"{stamp}{secrets.randbelow(10**9):09d}"
    timestamped.mkdir()
    os.chmod(timestamped, 0o755)  # what the kubelet sets, whatever the umask
    for relative, projection in sorted(payload.items()):
        target = timestamped / relative
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_bytes(projection.data)
        os.chmod(target, projection.mode)
        if projection.owner is not None:
            os.lchown(target, projection.owner, -1)
    # The swap the kubelet makes atomic: ..data_tmp, then rename over ..data.
    (directory / "..data_tmp").symlink_to(timestamped.name)
    os.rename(directory / "..data_tmp", directory / DATA_DIR)
    for top in sorted({relative.split("/", 1)[0] for relative in payload}):
        (directory / top).symlink_to(f"{DATA_DIR}/{top}")
    if fs_group is not None:
        set_volume_ownership(directory, fs_group, read_only=True)


def make_empty_dir(directory: Path, fs_group: int | None) -> None:
    """An emptyDir on the node's disk: mode 0777, and the pod's fsGroup when it has one."""
    directory.mkdir()
    os.chmod(directory, _EMPTY_DIR_MODE)
    if fs_group is not None:
        set_volume_ownership(directory, fs_group, read_only=False)


def set_volume_ownership(directory: Path, fs_group: int, read_only: bool) -> None:
    """The kubelet's SetVolumeOwnership: group fsGroup, group-readable, setgid directories; not symlinks."""
    mask = _READ_ONLY_MASK if read_only else _READ_WRITE_MASK
    paths = [directory] + sorted(directory.rglob("*"))
    for path in paths:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        os.chown(path, info.st_uid, fs_group)
        extra = mask | stat.S_ISGID | _SEARCH_MASK if stat.S_ISDIR(info.st_mode) else mask
        os.chmod(path, stat.S_IMODE(info.st_mode) | extra)
