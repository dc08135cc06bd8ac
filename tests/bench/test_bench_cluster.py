"""(b) delivery throughput, (d) memory, (e) propagation: the receiver under gunicorn on the API emulator."""

from __future__ import annotations

import http.client
import json
import resource
import time
from collections import Counter

import pytest
import requests

from benchkit import (
    GLOBAL_SECRET_OBJECT,
    LoadSpec,
    child_pids,
    client_processes,
    commit_for,
    cpu_seconds,
    github_push,
    gitrepo_object,
    ms,
    percentile,
    rss_kb,
    run_load,
    statuses_text,
)
from support import service
from support.waiting import free_port, wait_for

THROUGHPUT_GITREPOS = 100
THROUGHPUT_SECONDS = 8.0
CONCURRENCY = (1, 16, 64)
MEMORY_SIZES = (10_000, 100_000)
PROPAGATION_CREATES = 50
# All bench clients come from 127.0.0.1: the per-source rate limit would measure itself, not the receiver.
NO_RATE_LIMIT = ("--rate-limit", "1000000", "--rate-burst", "1000000")


def _receiver(run_service, kubeconfig_path: str, *extra: str, timeout: float = 120.0) -> service.Service:
    port = free_port()
    started = run_service(
        "serve",
        "receiver",
        "--listen",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        kubeconfig_path,
        *NO_RATE_LIMIT,
        *extra,
    )
    started.receiver = f"http://127.0.0.1:{port}"
    service.wait_ready(started.receiver, started, timeout=timeout)
    return started


def _bench_repo(number: int) -> str:
    return f"https://github.com/bench/repo-{number}"


@pytest.mark.timeout(600)
def test_delivery_throughput(report, emulator, kubeconfig_path, run_service):
    section = report.section(
        "b",
        "b. Delivery throughput: gunicorn receiver + API emulator",
        [
            "concurrency",
            "client processes",
            "deliveries",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "HTTP statuses",
            "errors",
            "receiver CPU ms/delivery",
            "emulator CPU ms/delivery",
            "PATCHes 2xx",
            "(GitRepo, commit) patched twice",
            "2xx delivery without its PATCH",
        ],
    )
    section.notes += [
        f"`serve receiver` (1 worker, 8 threads, rate limit off) against the in-process API emulator (TLS, "
        f"Python, same machine) holding {THROUGHPUT_GITREPOS} GitRepos and the global Secret. "
        "Each connection "
        f"sends signed GitHub pushes for {THROUGHPUT_SECONDS:g} s, each with its own commit and delivery id, "
        "to one GitRepo picked by hash: every delivery writes one status PATCH and queues one Event.",
        "Clients: `http.client` keep-alive connections in threads spread over spawned client processes "
        "(not in the pytest process, whose GIL the emulator needs).",
        "CPU per delivery: the receiver's gunicorn worker (/proc/<pid>/stat) and the pytest process (the "
        "emulator, plus the idle test thread) over the run, divided by the deliveries.",
        "Check: the emulator's request log must hold exactly one 2xx status PATCH per (GitRepo, commit) of "
        "every 2xx delivery, and none for anything else.",
    ]
    emulator.create(GLOBAL_SECRET_OBJECT)
    for number in range(THROUGHPUT_GITREPOS):
        emulator.create(gitrepo_object(f"bench-{number}", _bench_repo(number)))
    started = _receiver(run_service, kubeconfig_path)
    host, port = "127.0.0.1", int(started.receiver.rsplit(":", 1)[1])
    repos = tuple(_bench_repo(n) for n in range(THROUGHPUT_GITREPOS))
    failures = []
    worker = child_pids(started.process.pid)[0]
    for concurrency in CONCURRENCY:
        receiver_cpu, emulator_cpu = cpu_seconds(worker), _own_cpu()
        load = run_load(
            LoadSpec(
                host, port, "github-push", 0, THROUGHPUT_SECONDS, 0, 0, repos=repos, label=f"c{concurrency}"
            ),
            concurrency,
        )
        receiver_cpu, emulator_cpu = cpu_seconds(worker) - receiver_cpu, _own_cpu() - emulator_cpu
        patches = Counter()
        for record in emulator.requests:
            if record.method == "PATCH" and record.path.endswith("/status") and 200 <= record.status < 300:
                name = record.path.rsplit("/", 2)[-2]
                patches[(name, (record.body or {}).get("status", {}).get("webhookCommit"))] += 1
        delivered = {
            (f"bench-{repos.index(repo)}", commit)
            for repo, commit, status, _ in load.sent
            if 200 <= status < 300
        }
        twice = sum(1 for key, count in patches.items() if count > 1 and key in delivered)
        missing = sum(1 for key in delivered if patches[key] == 0)
        not_patched = [
            outcome for _, _, status, outcome in load.sent if status == 200 and outcome != "patched=1"
        ]
        errors = len(load.errors) + sum(c for s, c in load.statuses.items() if s != 200) + len(not_patched)
        section.add(
            concurrency,
            client_processes(concurrency),
            load.count,
            f"{load.rate:.0f}",
            ms(load.p(0.5)),
            ms(load.p(0.99)),
            statuses_text(load.statuses),
            errors,
            f"{receiver_cpu / load.count * 1000:.2f}",
            f"{emulator_cpu / load.count * 1000:.2f}",
            sum(1 for key in delivered if patches[key]),
            twice,
            missing,
        )
        print(
            f"  concurrency {concurrency}: {load.rate:.0f}/s p50 {ms(load.p(0.5))} ms "
            f"p99 {ms(load.p(0.99))} ms errors {errors}",
            flush=True,
        )
        if errors or twice or missing:
            failures.append(
                f"concurrency {concurrency}: {errors} errors ({load.errors[:3]} {not_patched[:3]}), "
                f"{twice} patched twice, {missing} without PATCH"
            )
    section.target(
        "zero errors, every patch applied exactly once", "; ".join(failures) or "all clean", not failures
    )
    section.print()
    assert not failures


@pytest.mark.timeout(900)
def test_receiver_memory(report, emulator, kubeconfig_path, run_service):
    section = report.section(
        "d",
        "d. Memory: receiver RSS by GitRepos cached",
        [
            "GitRepos cached",
            "seed time s",
            "receiver ready s",
            "worker RSS MB",
            "arbiter RSS MB",
            "worker RSS over empty MB",
            "per 10k GitRepos MB",
        ],
    )
    section.notes += [
        "`serve receiver` against the API emulator seeded through `emulator.create` (the API's create path; "
        "GitRepos of ~320 bytes as stored, a few with branch and repo only). RSS from /proc/<pid>/status "
        "VmRSS, after `/readyz` reports the cache synced and one delivery was served (the worker holds the "
        "cache; the arbiter process is gunicorn's master). A fresh receiver per size. The reflector lists "
        "in pages of 500 (`limit`/`continue`), as from a real API server.",
    ]
    emulator.create(GLOBAL_SECRET_OBJECT)
    results: list[tuple[int, float, float, int, int]] = []
    seeded = 0
    for size in (0,) + MEMORY_SIZES:
        began = time.perf_counter()
        while seeded < size:
            emulator.create(
                gitrepo_object(
                    f"mem-{seeded}",
                    f"https://github.com/org-{seeded % 997}/repo-{seeded}",
                    namespace=("fleet-default", "fleet-local")[seeded % 2],
                )
            )
            seeded += 1
        seed_time = time.perf_counter() - began
        began = time.perf_counter()
        started = _receiver(run_service, kubeconfig_path, timeout=600)
        wait_for(
            lambda: f"({size} GitRepos)" in requests.get(started.receiver + "/readyz", timeout=5).text,
            timeout=300,
            message=f"{size} GitRepos cached",
        )
        ready = time.perf_counter() - began
        headers, body = github_push("https://github.com/org-1/repo-1", commit_for("mem", size), f"mem-{size}")
        assert requests.post(started.receiver, data=body, headers=headers, timeout=30).status_code == 200
        workers = child_pids(started.process.pid)
        assert len(workers) == 1, workers
        results.append((size, seed_time, ready, rss_kb(workers[0]), rss_kb(started.process.pid)))
        started.stop()
        print(f"  {size:,} GitRepos: worker RSS {rss_kb_mb(results[-1][3])} MB", flush=True)
    empty = results[0][3]
    for size, seed_time, ready, worker, arbiter in results:
        over = (worker - empty) / 1024
        section.add(
            f"{size:,}",
            f"{seed_time:.1f}",
            f"{ready:.1f}",
            rss_kb_mb(worker),
            rss_kb_mb(arbiter),
            f"{over:.1f}",
            f"{over / size * 10_000:.1f}" if size else "-",
        )
    at_max = results[-1][3] / 1024
    section.target("worker RSS ≤ 200 MB at 100k GitRepos", f"{at_max:.0f} MB", at_max <= 200)
    section.print()


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kb_mb(kb: int) -> str:
    return f"{kb / 1024:.1f}"


@pytest.mark.timeout(300)
def test_propagation(report, emulator, kubeconfig_path, run_service):
    section = report.section(
        "e",
        "e. Propagation: GitRepo created → receiver patches it",
        ["creates", "GitRepos cached", "p50 ms", "p99 ms", "max ms", "deliveries per create (mean)"],
    )
    section.notes += [
        "For each create: `emulator.create` of a GitRepo for a fresh repository, then signed pushes for that "
        "repository over one keep-alive connection, back to back, until one answers `patched: 1`; "
        "the time is "
        "from just before the create to that answer (watch event → receiver cache → match → PATCH). "
        "The receiver runs against the emulator with 1,000 other GitRepos cached.",
    ]
    emulator.create(GLOBAL_SECRET_OBJECT)
    for number in range(1000):
        emulator.create(gitrepo_object(f"other-{number}", f"https://github.com/other/repo-{number}"))
    started = _receiver(run_service, kubeconfig_path)
    connection = http.client.HTTPConnection("127.0.0.1", int(started.receiver.rsplit(":", 1)[1]), timeout=30)
    durations, attempts = [], []
    for number in range(PROPAGATION_CREATES):
        repo = f"https://github.com/fresh/repo-{number}"
        began = time.perf_counter()
        emulator.create(gitrepo_object(f"fresh-{number}", repo))
        tries = 0
        while True:
            tries += 1
            headers, body = github_push(repo, commit_for("fresh", number), f"fresh-{number}-{tries}")
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status == 200 and answer.get("summary", {}).get("patched") == 1:
                break
            assert response.status == 200, answer
            assert time.perf_counter() - began < 30, "a created GitRepo never matched"
        durations.append(time.perf_counter() - began)
        attempts.append(tries)
    connection.close()
    section.add(
        PROPAGATION_CREATES,
        "1,000",
        ms(percentile(durations, 0.5)),
        ms(percentile(durations, 0.99)),
        ms(max(durations)),
        f"{sum(attempts) / len(attempts):.1f}",
    )
    section.print()
