"""(f) Hostile deliveries: what a request nobody signed costs the receiver before it is refused."""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import yaml

from bench.benchkit import Report, gitrepo_object
from support.service import child_pids
from support import service

MiB = 1024 * 1024
REPO = "https://github.com/bench/hostile"
SECRET = {"apiVersion": "v1", "kind": "Secret",
          "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"},
          "stringData": {"github": "hostile-bench-secret", "bitbucket": "hook-uuid"}}
RSS_TARGET_MB = 64
TIME_TARGET_S = 2.0


def _github(size: int, shape: str) -> bytes:
    """A GitHub push of ``size`` bytes padded with many small objects (``objects``) or one string."""
    head = {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"html_url": REPO}}
    start = json.dumps(head)[:-1].encode() + b', "padding": '
    room = size - len(start) - 1
    if shape == "objects":
        item = b'{"b":1},'
        padding = b"[" + item * ((room - 3) // len(item)) + b"{}]"
    else:
        padding = b'"' + b"x" * (room - 2) + b'"'
    return start + padding + b"}"


def _bitbucket_refs(count: int) -> bytes:
    changes = [{"new": {"type": "branch", "name": f"b{n}", "target": {"hash": "a" * 40}}}
               for n in range(count)]
    repository = {"links": {"html": {"href": "https://bitbucket.org/bench/hostile"}}}
    return json.dumps({"push": {"changes": changes}, "repository": repository}).encode()


GITHUB = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
BITBUCKET = {"Content-Type": "application/json", "X-Event-Key": "repo:push", "X-Hook-UUID": "wrong-uuid"}


@dataclass(frozen=True)
class Case:
    name: str
    secret: bool   # the global Secret exists (every delivery must verify)
    headers: dict[str, str]
    body: Callable[[], bytes]


CASES = [
    Case("20 MiB push, no signature, Secret exists", True, GITHUB, lambda: _github(20 * MiB, "objects")),
    Case("20 MiB push, wrong signature", True, {**GITHUB, "X-Hub-Signature-256": "sha256=" + "0" * 64},
         lambda: _github(20 * MiB, "objects")),
    Case("20 MiB push of small objects, no Secret", False, GITHUB, lambda: _github(20 * MiB, "objects")),
    Case("15 MiB push of one string, no Secret (parsed)", False, GITHUB,
         lambda: _github(15 * MiB, "string")),
    Case("100k ref changes, wrong hook UUID, Secret exists", True, BITBUCKET,
         lambda: _bitbucket_refs(100_000)),
    Case("100k ref changes, no Secret", False, BITBUCKET, lambda: _bitbucket_refs(100_000)),
    Case("20 MiB Bitbucket body naming eventKey, no hook UUID, Secret exists", True,
         {"Content-Type": "application/json", "X-Event-Key": "repo:push"},
         lambda: b'{"a": [' + b'{"eventKey": 0},' * (20 * MiB // 16) + b'{}]}'),
]


def _peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))


def test_hostile_deliveries(report: Report, run_service: Callable[..., service.Service],
                            tmp_path: pathlib.Path) -> None:
    section = report.section("f", "f. Hostile deliveries: cost before authentication",
                             ["delivery", "body MB", "status", "answered in s", "worker peak RSS +MB"])
    section.notes += [
        "`serve receiver` (1 worker) on an offline store, started fresh per row; the worker's peak RSS "
        "(/proc VmHWM) after one ordinary delivery, then after the hostile one. Time is the client's, "
        "from the first byte sent to the whole answer, over loopback; the first large body a worker "
        "receives also pays for growing its heap.",
        "With the global Secret present, signatures are checked on the raw bytes before parsing; without "
        "any Secret the body is parsed only within the 16 MiB parse budget and 1000 ref changes.",
    ]
    worst_rss, worst_time = 0.0, 0.0
    for number, case in enumerate(CASES):
        store = tmp_path / f"store-{number}.yaml"
        objects = ([SECRET] if case.secret else []) + [gitrepo_object("app", REPO)]
        store.write_text(yaml.safe_dump_all(objects))
        started = run_service("serve", "receiver", "--listen", "127.0.0.1:0", "--store", "offline",
                              "--gitrepos", str(store), "--workers", "1")
        url = "http://" + service.listening(started, "receiver")
        service.wait_ready(url, started)
        worker, = child_pids(started.process.pid)
        requests.post(url, data=_github(2048, "string"), headers=GITHUB, timeout=30)   # imports, caches
        body = case.body()
        before = _peak_kb(worker)
        began = time.monotonic()
        answer = requests.post(url, data=body, headers=case.headers, timeout=60)
        took = time.monotonic() - began
        grew = (_peak_kb(worker) - before) / 1024
        started.stop()
        worst_rss, worst_time = max(worst_rss, grew), max(worst_time, took)
        section.add(case.name, f"{len(body) / MiB:.1f}", answer.status_code, f"{took:.2f}", f"{grew:.1f}")
        print(f"  {case.name}: {answer.status_code} in {took:.2f} s, +{grew:.1f} MB", flush=True)
    section.target(f"worker peak RSS grows < {RSS_TARGET_MB} MB for any row", f"{worst_rss:.1f} MB",
                   worst_rss < RSS_TARGET_MB)
    section.target(f"every row answered < {TIME_TARGET_S:.0f} s", f"{worst_time:.2f} s",
                   worst_time < TIME_TARGET_S)
    section.print()
