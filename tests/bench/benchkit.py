"""Shared tools of the benchmarks: statistics, tables, signed deliveries, RSS, and a load generator.

The load generator runs its clients in separate processes (``spawn``), each with a few threads and
one ``http.client`` keep-alive connection per thread, so that the clients' own GIL does not cap the
rate they can send at.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import platform
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Protocol

GITHUB_SECRET = "bench-secret"


# --- statistics and tables -------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    """Milliseconds, three significant-ish decimals."""
    value = seconds * 1000
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def us(seconds: float) -> str:
    """Microseconds."""
    value = seconds * 1e6
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


@dataclass
class Section:
    """One benchmark's part of BENCHMARKS.md: a title, notes, a table and target verdicts."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[tuple[str, str, bool]] = field(default_factory=list)  # (target, measured, met)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def target(self, name: str, measured: str, met: bool) -> None:
        self.targets.append((name, measured, met))

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        lines += [note if note.startswith(("-", "*")) else note for note in self.notes]
        if self.notes:
            lines.append("")
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("| " + " | ".join("---" for _ in self.columns) + " |")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.targets:
            lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
            lines += [
                f"| {name} | {measured} | {'yes' if met else '**no**'} |"
                for name, measured, met in self.targets
            ]
        return "\n".join(lines) + "\n"

    def print(self) -> None:
        print("\n" + self.markdown(), flush=True)


class Report(Protocol):
    """The ``report`` fixture: each benchmark registers its section of BENCHMARKS.md."""

    def section(self, key: str, title: str, columns: list[str]) -> Section:
        """A new section, written to BENCHMARKS.md at the end of the run."""


def machine_facts() -> list[str]:
    """CPU count and model, Python, gunicorn and Flask versions, kernel."""
    import flask  # noqa: F401  (version lookup only)
    import gunicorn
    from importlib.metadata import version

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), ""
            )
    except OSError:
        pass
    return [
        f"CPUs: {os.cpu_count()}" + (f" ({model})" if model else ""),
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"gunicorn {gunicorn.__version__}, Flask {version('flask')}",
        f"OS: {platform.system()} {platform.release()} {platform.machine()}",
    ]


# --- deliveries ------------------------------------------------------------------------------------


def commit_for(*parts: object) -> str:
    """A distinct, valid-looking 40-hex commit for these parts."""
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()


def github_push(
    repo_url: str, commit: str, delivery: str, branch: str = "main", secret: str = GITHUB_SECRET
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a signed GitHub push of ``branch`` to ``repo_url`` (html, clone, ssh URLs)."""
    path = repo_url.split("://", 1)[-1].split("/", 1)[1]
    host = repo_url.split("://", 1)[-1].split("/", 1)[0]
    body = json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": "0" * 39 + "1",
            "after": commit,
            "repository": {
                "full_name": path,
                "html_url": f"https://{host}/{path}",
                "clone_url": f"https://{host}/{path}.git",
                "ssh_url": f"git@{host}:{path}.git",
            },
            "pusher": {"name": "bench"},
            "commits": [{"id": commit, "message": "bench"}],
        }
    ).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature,
    }, body


def gitrepo_object(
    name: str, repo: str, namespace: str = "fleet-default", branch: str = "main", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"repo": repo, "branch": branch, **spec},
    }


# --- processes -------------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (kB)."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_with_argument(argument: str) -> int:
    """The one process with exactly this among its arguments (``--secure-port=PORT``, etcd's URL)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                arguments = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argument in arguments[1:]:
            found.append(int(entry))
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} processes with {argument!r} in their arguments: {found}")
    return found[0]


# --- the load generator ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    """What one client process does: ``threads`` keep-alive connections, each sending requests."""

    host: str
    port: int
    kind: str  # "github-push" | "post-body"
    start_at: float  # time.time() at which every thread begins (a shared start line)
    duration: float  # seconds each thread keeps sending
    threads: int
    process_index: int
    ca_file: str | None = None  # HTTPS when set
    path: str = "/"
    body: bytes = b""  # "post-body": the body sent every time
    repos: tuple[str, ...] = ()  # "github-push": repository URLs; request i goes to repos[hash % len]
    label: str = ""


@dataclass(frozen=True)
class Sent:
    """One GitHub push the load generator sent, and how it was answered."""

    repo: str
    commit: str
    status: int
    outcome: str  # the answer's summary, e.g. "patched=1"; "" when it has none (a 503 "busy")
    seconds: float


@dataclass
class LoadResult:
    latencies: list[float]
    statuses: dict[int, int]
    errors: list[str]
    sent: list[Sent]  # github-push only
    began: float
    ended: float


def _connection(spec: LoadSpec) -> http.client.HTTPConnection:
    if spec.ca_file:
        context = ssl.create_default_context(cafile=spec.ca_file)
        return http.client.HTTPSConnection(spec.host, spec.port, timeout=30, context=context)
    return http.client.HTTPConnection(spec.host, spec.port, timeout=30)


def _client_thread(spec: LoadSpec, thread: int, result: LoadResult, lock: threading.Lock) -> None:
    connection = _connection(spec)
    latencies: list[float] = []
    sent: list[Sent] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    delay = spec.start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    stop = time.perf_counter() + spec.duration
    sequence = 0
    while time.perf_counter() < stop:
        sequence += 1
        if spec.kind == "github-push":
            tag = f"{spec.label}-{spec.process_index}-{thread}-{sequence}"
            repo = spec.repos[int(hashlib.md5(tag.encode()).hexdigest(), 16) % len(spec.repos)]
            commit = commit_for(tag)
            headers, body = github_push(repo, commit, delivery=tag)
        else:
            headers, body = {"Content-Type": "application/json"}, spec.body
        started = time.perf_counter()
        try:
            connection.request("POST", spec.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            errors.append(f"{type(error).__name__}: {error}")
            connection.close()
            connection = _connection(spec)
            continue
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
        if spec.kind == "github-push":
            outcome = ""
            try:
                summary = json.loads(answer).get("summary") or {}
                outcome = ",".join(f"{k}={v}" for k, v in sorted(summary.items()) if v)
            except ValueError:
                outcome = "unparsable"
            sent.append(Sent(repo, commit, status, outcome, latencies[-1]))
    connection.close()
    with lock:
        result.latencies += latencies
        result.sent += sent
        result.errors += errors
        for status, count in statuses.items():
            result.statuses[status] = result.statuses.get(status, 0) + count


def client_process(spec: LoadSpec) -> LoadResult:
    """Entry point of one client process (module-level, so ``spawn`` can import it)."""
    result = LoadResult([], {}, [], [], time.time(), 0.0)
    lock = threading.Lock()
    workers = [
        threading.Thread(target=_client_thread, args=(spec, n, result, lock)) for n in range(spec.threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result.began = max(result.began, spec.start_at)
    result.ended = time.time()
    return result


@dataclass
class Load:
    """The merged outcome of every client process of one run."""

    latencies: list[float]
    statuses: dict[int, int]
    errors: list[str]
    sent: list[Sent]
    seconds: float

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)


def client_processes(concurrency: int) -> int:
    """Client processes for a number of connections: at most two per core, at least one."""
    return max(1, min(concurrency, 2 * (os.cpu_count() or 1)))


def run_load(base: LoadSpec, concurrency: int) -> Load:
    """Run ``concurrency`` keep-alive connections spread over a few client processes."""
    processes = client_processes(concurrency)
    shares = [concurrency // processes + (1 if n < concurrency % processes else 0) for n in range(processes)]
    start_at = time.time() + 1.5 + 0.2 * processes  # room for the interpreters to start
    specs = [
        LoadSpec(**{**base.__dict__, "threads": share, "process_index": n, "start_at": start_at})
        for n, share in enumerate(shares)
        if share
    ]
    with ProcessPoolExecutor(len(specs), mp_context=get_context("spawn")) as pool:
        results = list(pool.map(client_process, specs))
    merged = Load([], {}, [], [], max(r.ended for r in results) - start_at)
    for result in results:
        merged.latencies += result.latencies
        merged.errors += result.errors
        merged.sent += result.sent
        for status, count in result.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + count
    return merged


def statuses_text(statuses: dict[int, int]) -> str:
    return ", ".join(f"{status}×{count}" for status, count in sorted(statuses.items())) or "-"


def flatten(groups: Iterable[Iterable[Any]]) -> list[Any]:
    return [item for group in groups for item in group]
