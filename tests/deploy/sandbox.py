"""The pod as the kubelet would run it, without a kubelet: a :class:`~deploy.pod_plan.PodPlan` in a sandbox.

:func:`run` starts the plan's container the way a kubelet and runc would: its volume files written
as the kubelet writes them (``kubelet_files``: the ``..data`` layout, modes, fsGroup), the root
filesystem read-only (bubblewrap: the host's top-level directories bound read-only on a tmpfs that
is itself made read-only, so mount points such as /certs can be made first), the user switched by
``setpriv`` with no capabilities and ``no_new_privs``, the pod's own PID, IPC, UTS and network
namespaces, and a ServiceAccount token of the real API server, reached through
``pod_network.Relay``. :class:`Pod` then probes it as the kubelet does, from inside its network
namespace to the pod's address, and execs in it as ``kubectl exec`` does.

It checks the pod's runtime conditions, not the image: the ``gitjob-webhook`` it runs is this
checkout's (``.venv/bin`` first on PATH, where the image has ``/opt/gitjob-webhook/bin``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from cluster.isolation import Cluster
from deploy import kubelet_files
from deploy.pod_network import NetworkNamespace, ProbeResult, Relay, http_get
from deploy.pod_plan import ContainerPlan, KeyToPath, PodPlan, PodRejected, Probe, Volume

TOKEN_SECONDS = 3607  # what the ServiceAccount admission plugin asks the kubelet to mint
SHM_BYTES = 64 * 1024 * 1024  # the runtime's /dev/shm for a pod


class ContainerExited(AssertionError):
    """The container stopped on its own: in a cluster, a restart and then CrashLoopBackOff."""


class PodSources(Protocol):
    """What the kubelet reads from the API server to fill the pod's volumes."""

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        """The Secret's data, or None when it does not exist."""

    def config_map(self, name: str) -> Mapping[str, bytes] | None:
        """The ConfigMap's data, or None when it does not exist."""

    def token(self, service_account: str, seconds: int) -> str:
        """A token for the ServiceAccount, from the TokenRequest API."""


class ClusterSources:
    """:class:`PodSources` from the test's real API server, each object read by name as the kubelet does."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def _get(self, resource: str, name: str) -> dict[str, str] | None:
        path = f"/api/v1/namespaces/{self.namespace}/{resource}/{name}"
        got = self.cluster.control_plane.request("GET", path)
        if got.status_code == 404:
            return None
        got.raise_for_status()
        data: dict[str, str] = got.json().get("data") or {}
        return data

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        """The Secret's data, decoded."""
        data = self._get("secrets", name)
        return None if data is None else {key: base64.b64decode(value) for key, value in data.items()}

    def config_map(self, name: str) -> Mapping[str, bytes] | None:
        """The ConfigMap's data; kube-root-ca.crt is published first, as the controller manager would."""
        if name == "kube-root-ca.crt":
            root_ca = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                       "data": {"ca.crt": self.cluster.control_plane.ca_file.read_text()}}
            made = self.cluster.control_plane.request(
                "POST", f"/api/v1/namespaces/{self.namespace}/configmaps", root_ca)
            if made.status_code not in (201, 409):
                raise AssertionError(f"publishing kube-root-ca.crt: {made.status_code} {made.text}")
        data = self._get("configmaps", name)
        return None if data is None else {key: value.encode() for key, value in data.items()}

    def token(self, service_account: str, seconds: int) -> str:
        """Minted by the TokenRequest API (the kubelet also binds it to the Pod; no Pod exists here)."""
        kubeconfig = self.cluster.service_account_kubeconfig(self.namespace, service_account, seconds)
        token: str = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        return token


def _missing(volume: Volume, what: str) -> PodRejected:
    return PodRejected(f'MountVolume.SetUp failed for volume "{volume.name}" : {what}')


def _payload(volume: Volume, plan: PodPlan, sources: PodSources) -> dict[str, kubelet_files.FileProjection]:
    """The files of a ``files`` volume; PodRejected, in the kubelet's words, when a source is missing."""
    files: dict[str, kubelet_files.FileProjection] = {}
    for source in volume.sources:
        if source.kind == "token":
            # projected.go: the token is the fsUser's, mode 0600 once there is an fsUser or fsGroup.
            mode = 0o600 if plan.fs_user is not None or plan.fs_group is not None else volume.default_mode
            token = sources.token(plan.service_account, TOKEN_SECONDS).encode()
            files[source.path] = kubelet_files.FileProjection(token, mode, plan.fs_user)
            continue
        if source.kind == "field":
            value = {"metadata.namespace": plan.namespace, "metadata.name": plan.name}[source.name]
            files[source.path] = kubelet_files.FileProjection(value.encode(), volume.default_mode)
            continue
        data = sources.secret(source.name) if source.kind == "secret" else sources.config_map(source.name)
        if data is None:
            if not source.optional:
                raise _missing(volume, f'{source.kind.lower()} "{source.name}" not found')
            continue
        for item in source.items if source.items is not None else [KeyToPath(k, k) for k in sorted(data)]:
            if item.key in data:
                mode = item.mode if item.mode is not None else volume.default_mode
                files[item.path] = kubelet_files.FileProjection(data[item.key], mode)
            elif not source.optional:
                raise _missing(volume, f'{source.kind.lower()} "{source.name}" has no key {item.key!r}')
    return files


@dataclass
class Pod:
    """A running sandbox: the container's PID 1 (a host PID), its network namespace, its output."""

    plan: PodPlan
    bwrap: subprocess.Popen[bytes]
    pid: int
    network: NetworkNamespace
    log_path: Path
    volume_dirs: Mapping[str, Path]
    started: float = field(default_factory=time.monotonic)

    def age(self) -> float:
        """Seconds since the container's command was let run."""
        return time.monotonic() - self.started

    def log(self) -> str:
        """What the container wrote to stdout and stderr (``kubectl logs``)."""
        return self.log_path.read_text(errors="replace")

    def exit_code(self) -> int | None:
        """The container's exit status, None while it runs."""
        return self.bwrap.poll()

    def processes(self) -> list[int]:
        """Host PIDs of every process in the container's PID namespace."""
        namespace = os.readlink(f"/proc/{self.pid}/ns/pid")
        found = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
            except OSError:  # gone meanwhile
                continue
        return sorted(found)

    def status(self, pid: int) -> dict[str, str]:
        """``/proc/PID/status`` as fields: Uid, Gid, Groups, CapEff, NoNewPrivs, ..."""
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}

    def exec(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """``kubectl exec``: the container's namespaces, user, groups and environment."""
        command = [_tool("nsenter"), f"--target={self.pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
                   "--", *_setpriv(self.plan.container), *argv]
        return subprocess.run(command, env=dict(self.plan.container.env), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def probe(self, probe: Probe) -> ProbeResult:
        """One probe from the kubelet's side: to the pod's address, inside its network namespace."""
        return http_get(self.network, self.plan.pod_ip, probe.port, probe.path, probe.scheme,
                        dict(probe.headers), probe.timeout)

    def volume_files(self) -> list[str]:
        """``PATH: uid:gid mode`` of each file the container sees in its API-data (``files``) volumes."""
        kinds = {volume.name: volume.kind for volume in self.plan.volumes}
        lines = []
        for mount in self.plan.container.mounts:
            if kinds[mount.volume] != "files":
                continue
            for entry in sorted(self.volume_dirs[mount.volume].iterdir()):
                if not entry.name.startswith(".."):
                    info = entry.stat()  # through the ..data symlinks, as the container opens it
                    lines.append(f"{mount.path}/{entry.name}: {info.st_uid}:{info.st_gid} "
                                 f"{stat.S_IMODE(info.st_mode):04o}")
        return lines

    def _diagnosis(self) -> str:
        container = self.plan.container
        return (f"--- container log ---\n{self.log()}"
                f"--- volume files as the kubelet wrote them (the container runs as {container.uid}:"
                f"{container.gid}, supplementary groups {list(container.groups)}) ---\n"
                + "\n".join(self.volume_files()))

    def _exited(self, when: str) -> ContainerExited:
        return ContainerExited(f"container {self.plan.container.name} exited with status {self.exit_code()} "
                               f"after {self.age():.1f} s, {when} (in a cluster: restarted, then "
                               f"CrashLoopBackOff)\n{self._diagnosis()}")

    def wait_ready(self, timeout: float) -> float:
        """Probe readiness until it passes successThreshold times in a row; returns the container's age."""
        probe = self.plan.container.readiness
        assert probe is not None, "the manifest has no readinessProbe"
        passed = 0
        last = ProbeResult(False, "not probed yet")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exit_code() is not None:
                raise self._exited("before its readiness probe passed")
            last = self.probe(probe)
            passed = passed + 1 if last.ok else 0
            if passed >= probe.success_threshold:
                return self.age()
            self._wait_exit(0.1)
        raise AssertionError(f"readiness probe not passing after {timeout} s: {last.detail}\n"
                             f"{self._diagnosis()}")

    def watch(self, until_age: float, interval: float = 0.25) -> int:
        """Probe readiness and liveness until the container is ``until_age`` seconds old, failing where the
        kubelet would act (failureThreshold failures in a row) or when it exits; returns the rounds."""
        container = self.plan.container
        probes = {name: probe for name, probe in (("readiness", container.readiness),
                                                  ("liveness", container.liveness)) if probe is not None}
        failures = dict.fromkeys(probes, 0)
        rounds = 0
        while self.age() < until_age:
            if self.exit_code() is not None:
                raise self._exited("while it was being watched")
            for name, probe in probes.items():
                result = self.probe(probe)
                failures[name] = 0 if result.ok else failures[name] + 1
                if failures[name] >= probe.failure_threshold:
                    raise AssertionError(f"{name} probe failed {failures[name]} times in a row: "
                                         f"{result.detail}\n{self._diagnosis()}")
            rounds += 1
            self._wait_exit(interval)
        return rounds

    def _wait_exit(self, seconds: float) -> None:
        # Between probes, wait on the container itself: an exit ends the wait at once.
        try:
            self.bwrap.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> int:
        """The kubelet's delete, without the preStop hook: SIGTERM to PID 1, SIGKILL after
        terminationGracePeriodSeconds. Returns the exit status."""
        if self.bwrap.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                return self.bwrap.wait(timeout=self.plan.grace_seconds)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
        return self.bwrap.wait()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: `make test-deps` installs it (Debian packages "
                                f"bubblewrap, util-linux, iproute2)")
    return found


def _setpriv(container: ContainerPlan) -> list[str]:
    """The runtime's switch to the container's user: uid, gid, groups, capabilities, no_new_privs.

    setpriv still holds root's capabilities when it execs (it keeps them across the uid change), so
    it execs ``env``, which then execs the container's command with none: as with runc, the command
    is found and opened with the container user's rights alone.
    """
    groups = [f"--groups={','.join(map(str, container.groups))}"] if container.groups else ["--clear-groups"]
    bounding = ",".join(["-all", *(f"+{capability}" for capability in container.capabilities)])
    no_new_privs = ["--no-new-privs"] if container.no_new_privs else []
    return [_tool("setpriv"), f"--reuid={container.uid}", f"--regid={container.gid}", *groups,
            "--inh-caps=-all", f"--bounding-set={bounding}", *no_new_privs, "--", _tool("env"), "--"]


def _root_filesystem(image_paths: Sequence[str]) -> list[str]:
    """bwrap arguments for the root: the host's top-level directories bound read-only on bwrap's tmpfs
    (made read-only once the mount points exist), the container's own /proc, /dev and /dev/shm, and an
    empty /run and /tmp, the image's, for volumes to be mounted on."""
    arguments = []
    for entry in sorted(os.listdir("/")):
        path = f"/{entry}"
        if entry in {"proc", "dev", "run", "tmp"}:
            continue
        if os.path.islink(path):
            arguments += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            arguments += ["--ro-bind", path, path]
    arguments += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(SHM_BYTES),
                  "--tmpfs", "/dev/shm", "--dir", "/run", "--dir", "/tmp"]
    return arguments + _expose(image_paths)


def _expose(image_paths: Sequence[str]) -> list[str]:
    """Let the container's user reach the image stand-in's directories where a host directory above them
    is closed to others (a 0700 /root): an empty read-only directory over it, with only them bound in."""
    closed: dict[Path, list[Path]] = {}
    for image_path in image_paths:
        real = Path(os.path.realpath(image_path))
        above = [p for p in reversed(real.parents) if p != Path("/") and not os.stat(p).st_mode & 0o001]
        if above:
            closed.setdefault(above[0], []).append(real)
    arguments: list[str] = []
    for directory, paths in closed.items():
        arguments += ["--perms", "0755", "--tmpfs", str(directory)]
        for path in paths:
            for between in reversed(path.parents):
                if directory in between.parents:
                    arguments += ["--perms", "0755", "--dir", str(between)]
            arguments += ["--ro-bind", str(path), str(path)]
        arguments += ["--remount-ro", str(directory)]
    return arguments


def _uncover(image_paths: Sequence[str]) -> list[str]:
    """An image stand-in's directory under /tmp or /run (a clone in /tmp) would be hidden by the
    container's own empty /tmp and /run and the volumes mounted there: bind it again, read-only, on top."""
    arguments: list[str] = []
    for image_path in image_paths:
        real = Path(os.path.realpath(image_path))
        if real.parts[1:2] not in (("tmp",), ("run",)):
            continue
        for between in list(reversed(real.parents))[2:]:
            arguments += ["--perms", "0755", "--dir", str(between)]
        arguments += ["--ro-bind", str(real), str(real)]
    return arguments


def _mounts(plan: PodPlan, volume_dirs: Mapping[str, Path]) -> list[str]:
    volumes = {volume.name: volume for volume in plan.volumes}
    arguments = []
    for mount in plan.container.mounts:
        volume = volumes[mount.volume]
        # The path as the container resolves it: /var/run is a link to /run, in the image as on the host.
        target = Path(os.path.realpath(mount.path))
        for parent in list(reversed(target.parents))[1:]:  # as the runtime makes them: 0755, not bwrap's 0700
            arguments += ["--perms", "0755", "--dir", str(parent)]
        if volume.kind == "emptyDir" and volume.medium == "Memory":
            size = ["--size", str(volume.size_bytes)] if volume.size_bytes else []
            arguments += ["--perms", "0777", *size, "--tmpfs", str(target)]
            continue
        read_only = mount.read_only or volume.kind == "files"
        arguments += ["--ro-bind" if read_only else "--bind", str(volume_dirs[mount.volume]), str(target)]
    return arguments


def _prepare_volumes(plan: PodPlan, sources: PodSources, root: Path) -> dict[str, Path]:
    directories = {}
    for volume in plan.volumes:
        if volume.kind == "emptyDir" and volume.medium == "Memory":
            continue  # a tmpfs made inside the sandbox
        directory = root / volume.name
        if volume.kind == "emptyDir":
            kubelet_files.make_empty_dir(directory, plan.fs_group)
        else:
            kubelet_files.write_api_volume(directory, _payload(volume, plan, sources), plan.fs_group)
        directories[volume.name] = directory
    return directories


@contextmanager
def run(plan: PodPlan, sources: PodSources) -> Iterator[Pod]:
    """Start the pod's container in the sandbox; on leaving, stop it and remove what was made on the host.

    The volumes live in a temporary directory; every mount is in the sandbox's mount namespace and the
    network namespace goes with its last process, so nothing else stays behind.
    """
    container = plan.container
    if os.geteuid() != 0:
        raise PermissionError("the pod sandbox needs root (setpriv changes the user, bwrap mounts)")
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="pod-sandbox-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        volume_dirs = _prepare_volumes(plan, sources, workdir)
        log_path = workdir / "container.log"
        status_read, status_write = os.pipe()
        block_read, block_write = os.pipe()
        cleanup.callback(_close_quietly, block_write)
        command = [_tool("bwrap"), "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                   "--unshare-cgroup-try", "--hostname", plan.name, "--as-pid-1", "--die-with-parent",
                   "--new-session", "--json-status-fd", str(status_write), "--block-fd", str(block_read),
                   *_root_filesystem(plan.image_paths), *_mounts(plan, volume_dirs),
                   *_uncover(plan.image_paths), "--remount-ro", "/",
                   "--chdir", container.workdir, *_setpriv(container), *container.argv]
        with open(log_path, "wb") as log:
            bwrap = subprocess.Popen(command, env=dict(container.env), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, pass_fds=(status_write, block_read))
        cleanup.callback(_kill, bwrap)  # --die-with-parent: the container goes with bwrap
        os.close(status_write)
        os.close(block_read)
        # Open until bwrap is gone: it writes the exit status there last, and a closed pipe would kill it.
        status = cleanup.enter_context(os.fdopen(status_read))
        started = status.readline()  # {"child-pid": N, ...} once the namespaces exist
        if not started:
            bwrap.wait(timeout=10)
            output = log_path.read_text(errors="replace")
            raise AssertionError(f"bwrap failed ({bwrap.returncode}):\n{output}")
        child = int(json.loads(started)["child-pid"])
        network = NetworkNamespace(child)
        cleanup.callback(network.close)
        network.run("ip", "address", "add", f"{plan.pod_ip}/32", "dev", "lo")
        cleanup.callback(Relay(network, plan.api, plan.api).close)
        pod = Pod(plan, bwrap, child, network, log_path, volume_dirs)
        cleanup.callback(pod.stop)
        os.write(block_write, b"run")  # the command starts now, its network in place
        pod.started = time.monotonic()
        yield pod


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
