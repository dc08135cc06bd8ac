"""What the test node changes on the host, made and unmade in one place.

The node needs root and touches host-wide state: a bridge (with the node's address and a route for
the Service range), iptables rules (kube-proxy's and the kubelet's KUBE-* chains, in both families,
and the nf_tables tables iptables-nft creates for them), a cgroup tree in every hierarchy, and
processes (containerd's shims and the containers outlive containerd). Everything else the node
writes stays in its private mount namespace (``MountNamespace``) or its state folder.

``HostLease`` serialises node sessions on the machine (a lock file) and records, before the first
change, what was there already, so that ``clean()`` can undo a crashed run's changes at the next
start as well as this run's at the end; ``leftovers()`` lists whatever is still there.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from support import scripts
from support.waiting import wait_for

NAME = "gitjob-webhook-node"
BRIDGE = "gjw-node0"  # interface names have at most 15 characters
POD_CIDR = ipaddress.ip_network("10.244.0.0/24")
NODE_IP = "10.244.0.1"  # the bridge's address: the node's, the API server's and the kubelet's
SERVICE_CIDR = ipaddress.ip_network("10.245.0.0/24")
KUBERNETES_SERVICE_IP = "10.245.0.1"
CHAIN_PREFIX = "KUBE-"
_FAMILIES = (("iptables", "ip"), ("ip6tables", "ip6"))
_TABLES = ("filter", "nat", "mangle", "raw")
LOCK_SECONDS = 420.0  # another session's node tests hold the machine for about two minutes


def cache_dir() -> pathlib.Path:
    """The node's host records live next to the binaries' cache, outside any test folder."""
    root: pathlib.Path = scripts.load("cachedir").root()
    return root / "node"


def _run(*command: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=check, timeout=60)


# cgroups ----------------------------------------------------------------------------------------

def cgroup_hierarchies() -> list[pathlib.Path]:
    """The mounted cgroup v1 hierarchies and the cgroup2 one (a hybrid layout has both)."""
    found = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] in ("cgroup", "cgroup2"):
            found.append(pathlib.Path(fields[0].split()[4]))
    return found


def _cgroup_dirs(relative: str) -> Iterator[pathlib.Path]:
    for hierarchy in cgroup_hierarchies():
        directory = hierarchy / relative.strip("/")
        if directory.is_dir():
            yield directory


def create_cgroup(relative: str) -> None:
    """Create ``relative`` (and its parents) in every hierarchy; cpuset children get their parent's
    CPUs and memory nodes, without which no task may join them."""
    for hierarchy in cgroup_hierarchies():
        path = hierarchy
        for part in pathlib.PurePosixPath(relative.strip("/")).parts:
            parent, path = path, path / part
            if not path.is_dir():
                path.mkdir()
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (path / name).is_file() and not (path / name).read_text().strip():
                    (path / name).write_text((parent / name).read_text())


def join_cgroup(relative: str) -> None:
    """Move the calling process into ``relative`` in every hierarchy (for a ``preexec_fn``)."""
    for directory in _cgroup_dirs(relative):
        with open(directory / "cgroup.procs", "w") as procs:
            procs.write("0")


def cgroup_processes(relative: str) -> set[int]:
    """Every process in the ``relative`` subtree, in any hierarchy."""
    pids: set[int] = set()
    for directory in _cgroup_dirs(relative):
        for procs in directory.rglob("cgroup.procs"):
            try:
                pids.update(int(pid) for pid in procs.read_text().split())
            except OSError:
                continue  # removed while walking
    return pids


def kill_cgroup(relative: str, timeout: float = 30.0) -> None:
    """SIGKILL every process of the subtree (shims, containers) and wait until it is empty."""
    def empty() -> bool:
        pids = cgroup_processes(relative)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids
    wait_for(empty, timeout=timeout, interval=0.2, message=f"the processes of cgroup {relative} to exit")


def remove_cgroup(relative: str) -> None:
    """rmdir the subtree, leaves first, in every hierarchy (a cgroup with processes stays)."""
    for directory in _cgroup_dirs(relative):
        for path in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(path)
        _rmdir(directory)


def _rmdir(path: pathlib.Path) -> None:
    try:
        path.rmdir()
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.EBUSY):
            raise


# network ----------------------------------------------------------------------------------------

def routes_overlapping() -> list[str]:
    """Routes of other interfaces into the pod or Service ranges (the node would shadow them)."""
    clashes = []
    for line in _run("ip", "-4", "route", "show").stdout.splitlines():
        destination, _, rest = line.partition(" ")
        if destination == "default" or f"dev {BRIDGE}" in rest:
            continue
        try:
            network = ipaddress.ip_network(destination, strict=False)
        except ValueError:
            continue
        if network.overlaps(POD_CIDR) or network.overlaps(SERVICE_CIDR):
            clashes.append(line)
    return clashes


def create_bridge() -> None:
    """The bridge the CNI plugin attaches pods to, with the node's address, made before the API server
    (which listens on it) starts. The Service range is routed to it, so that a packet to a ClusterIP
    kube-proxy has not programmed yet stays on the node instead of leaving by the default route."""
    _run("ip", "link", "add", BRIDGE, "type", "bridge", check=True)
    _run("ip", "addr", "add", f"{NODE_IP}/{POD_CIDR.prefixlen}", "dev", BRIDGE, check=True)
    _run("ip", "link", "set", BRIDGE, "up", check=True)
    _run("ip", "route", "add", str(SERVICE_CIDR), "dev", BRIDGE, "src", NODE_IP, check=True)


def bridge_exists() -> bool:
    """Whether the node's bridge is there."""
    return _run("ip", "link", "show", BRIDGE).returncode == 0


def veths_on_bridge() -> list[str]:
    """Interfaces still enslaved to the bridge (pods' host-side veths)."""
    return _run("ip", "-o", "link", "show", "master", BRIDGE).stdout.splitlines() if bridge_exists() else []


def remove_bridge() -> None:
    """Delete the bridge (its address and the Service route go with it)."""
    if bridge_exists():
        _run("ip", "link", "del", BRIDGE, check=True)


def kube_chains() -> list[str]:
    """`family table chain` of every KUBE-* chain in iptables and ip6tables."""
    found = []
    for tool, family in _FAMILIES:
        for table in _TABLES:
            listing = _run(tool, "-w", "-t", table, "-S")
            for line in listing.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "-N" and parts[1].startswith(CHAIN_PREFIX):
                    found.append(f"{family} {table} {parts[1]}")
    return found


def remove_kube_chains() -> None:
    """Delete every rule that jumps to a KUBE-* chain, then flush and delete those chains."""
    for tool, _family in _FAMILIES:
        for table in _TABLES:
            listing = _run(tool, "-w", "-t", table, "-S")
            if listing.returncode != 0:
                continue
            lines = listing.stdout.splitlines()
            for line in lines:
                parts = shlex.split(line)  # comments are quoted: "kubernetes service portals"
                if parts[:1] == ["-A"] and not parts[1].startswith(CHAIN_PREFIX) and any(
                        word.startswith(CHAIN_PREFIX) for word in parts[2:]):
                    _run(tool, "-w", "-t", table, "-D", *parts[1:])
            chains = [line.split()[1] for line in lines
                      if line.startswith("-N ") and line.split()[1].startswith(CHAIN_PREFIX)]
            for chain in chains:
                _run(tool, "-w", "-t", table, "-F", chain)
            for chain in chains:
                _run(tool, "-w", "-t", table, "-X", chain)


def nft_tables() -> list[str]:
    """`family name` of every nf_tables table (iptables-nft keeps its tables there)."""
    listing = _run("nft", "list", "tables")
    return [line.removeprefix("table ").strip() for line in listing.stdout.splitlines()
            if line.startswith("table ")]


def _nft_table_empty(table: str) -> bool:
    listing = _run("nft", "list", "table", *table.split())
    body = [line.strip() for line in listing.stdout.splitlines()]
    # Only chain headers, base-chain hooks and braces: no rule, set or map.
    return listing.returncode == 0 and all(
        not line or line == "}" or line.startswith(("table ", "chain ", "type ", "policy "))
        for line in body)


# processes --------------------------------------------------------------------------------------

def processes_using(marker: str) -> list[int]:
    """PIDs whose command line mentions ``marker`` (a node's state folder), but not this process."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command:
            found.append(int(entry.name))
    return found


# the lease ----------------------------------------------------------------------------------------

@dataclass
class HostRecord:
    """What was on the host before a node session changed it, and where that session kept its state."""

    state_dir: str
    socket_dir: str  # a short folder in /tmp: unix socket paths have at most 107 characters
    nft_tables: list[str]
    started: float

    def save(self, path: pathlib.Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: pathlib.Path) -> HostRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


class HostLease:
    """The machine's node slot: one node session at a time, and the record of what it changed."""

    def __init__(self) -> None:
        self.directory = cache_dir()
        self.record_file = self.directory / "host-record.json"
        self._lock: int | None = None
        self.record: HostRecord | None = None
        self._previous: HostRecord | None = None
        self.recovered: list[str] = []

    def acquire(self, timeout: float = LOCK_SECONDS) -> None:
        """Take the lock (waiting for another session's node to finish), then undo what a crashed
        session left behind, as its record says."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.directory / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)

        def locked() -> bool:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        try:
            wait_for(locked, timeout=timeout, interval=1.0, message="another test session's node to stop")
        except AssertionError:
            os.close(lock)
            raise
        self._lock = lock
        self._previous = HostRecord.load(self.record_file)
        left = leftovers(self._previous)
        if self._previous is not None or left:
            self.recovered = left or ["(a record, nothing else)"]
            clean(self._previous)

    def begin(self, state_dir: pathlib.Path, socket_dir: pathlib.Path) -> None:
        """Record the host as it is, before the first change (as it was before a crashed session, if
        that one's record is still there)."""
        baseline = self._previous.nft_tables if self._previous is not None else nft_tables()
        self.record = HostRecord(str(state_dir), str(socket_dir), baseline, time.time())
        self.record.save(self.record_file)

    def release(self) -> list[str]:
        """Undo this session's changes; return what could not be removed (empty when all is clean).
        Without the lock (another session's node is running) nothing is touched."""
        if self._lock is None:
            return []
        try:
            clean(self.record)
            left = leftovers(self.record)
            if not left:
                self.record_file.unlink(missing_ok=True)
            return left
        finally:
            if self._lock is not None:
                os.close(self._lock)  # closing the descriptor releases the lock
                self._lock = None


def clean(record: HostRecord | None) -> None:
    """Undo a node session's host changes: processes, cgroups, iptables, nf_tables tables, bridge.

    Idempotent, and it works from the record alone: a crashed session's processes are found by its
    cgroup and by its state folder on their command lines, its rules by their KUBE- prefix.
    """
    if record is not None:
        for pid in processes_using(record.state_dir) + processes_using(record.socket_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    kill_cgroup(NAME)
    remove_cgroup(NAME)
    remove_kube_chains()
    if record is not None:
        for table in nft_tables():
            if table not in record.nft_tables and _nft_table_empty(table):
                _run("nft", "delete", "table", *table.split())
    # The pods' veths went with their network namespaces (the node's mount namespace held them).
    wait_for(lambda: not veths_on_bridge(), timeout=30, interval=0.2, message="the pods' veths to go")
    remove_bridge()
    if record is not None:
        shutil.rmtree(record.socket_dir, ignore_errors=True)


def leftovers(record: HostRecord | None) -> list[str]:
    """Whatever a node session could have left on the host and is still there."""
    found = []
    if bridge_exists():
        found.append(f"interface {BRIDGE}")
    found += [f"iptables chain {chain}" for chain in kube_chains()]
    found += [f"cgroup {directory}" for directory in _cgroup_dirs(NAME)]
    if record is not None:
        found += [f"process {pid}" for pid in processes_using(record.state_dir)]
        found += [f"folder {record.socket_dir}"] if os.path.exists(record.socket_dir) else []
        found += [f"nf_tables table {table}" for table in nft_tables() if table not in record.nft_tables]
        found += [f"mount {line.split()[4]}" for line in
                  pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
                  if record.state_dir in line.split()[4]]
    return found


# the node's mount namespace -------------------------------------------------------------------

# The kubelet sets these to its preferred values unless protectKernelDefaults is on, in which case it
# refuses to start when they differ. They are machine-wide (not per namespace): a test must not change
# the panic behaviour of a shared CI machine, so the node's mount namespace shows the kubelet files
# with its values, and protectKernelDefaults makes it only read them.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
# Host directories the node's processes would otherwise write into: runtime state and locks (/run),
# CNI's result cache (/var/lib/cni) and the kubelet's /var/log/containers links.
PRIVATE_DIRECTORIES = ("/run", "/var/lib", "/var/log")


class MountNamespace:
    """A private mount namespace for containerd, the kubelet and kube-proxy.

    Every mount they make (container root filesystems, Secret tmpfs volumes, network namespace
    handles) exists only in it and goes when its last process exits; /run, /var/lib and /var/log are
    folders of the node's there. A ``sleep`` holds the namespace open between component restarts.
    """

    def __init__(self, directory: pathlib.Path, preexec: Callable[[], None]) -> None:
        self.directory = directory
        self._preexec = preexec
        self.holder: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Create the namespace and make its private directories and sysctl views."""
        own = os.readlink("/proc/self/ns/mnt")
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sleep", "infinity"],
            stdin=subprocess.DEVNULL, preexec_fn=self._preexec)
        pid = self.holder.pid
        wait_for(lambda: os.readlink(f"/proc/{pid}/ns/mnt") != own, timeout=10,
                 message="the node's mount namespace")
        for host_path in PRIVATE_DIRECTORIES:
            private = self.directory / host_path.strip("/").replace("/", "-")
            private.mkdir(parents=True, exist_ok=True)
            self.run("mount", "--bind", str(private), host_path)
        sysctls = self.directory / "sysctl"
        sysctls.mkdir(exist_ok=True)
        for name, value in KUBELET_SYSCTLS.items():
            view = sysctls / name.replace("/", ".")
            view.write_text(value + "\n")
            self.run("mount", "--bind", str(view), f"/proc/sys/{name}")

    def command(self, command: Sequence[str]) -> list[str]:
        """``command`` run in the namespace (nsenter execs it: the PID stays the command's)."""
        assert self.holder is not None
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--", *command]

    def run(self, *command: str) -> str:
        """Run a short command in the namespace; raise with its output if it fails."""
        done = _run(*self.command(command))
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} in the node's mount namespace: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        """Let the namespace go (it ends once the components and containers have exited too)."""
        if self.holder is not None and self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait()
        self.holder = None
