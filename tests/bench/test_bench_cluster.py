"""(b) delivery throughput, (d) memory, (e) propagation: the receiver under gunicorn against a real
kube-apiserver and etcd (the test harness's control plane, tests/cluster, on this machine)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable

import pytest
import requests

from bench.benchkit import (
    GITHUB_SECRET,
    LoadSpec,
    Report,
    client_processes,
    commit_for,
    cpu_seconds,
    github_push,
    gitrepo_object,
    ms,
    percentile,
    pid_with_argument,
    rss_kb,
    run_load,
    statuses_text,
)
from cluster.controlplane import ControlPlane
from cluster.isolation import Cluster
from support import service
from support.kube import Objects, StatusWatch, secret
from support.waiting import wait_for

THROUGHPUT_GITREPOS = 100
THROUGHPUT_SECONDS = 8.0
CONCURRENCY = (1, 16, 64)
MEMORY_SIZES = (10_000, 100_000)
SEED_CONNECTIONS = 8
PROPAGATION_CREATES = 50
PROPAGATION_OTHERS = 1000
# All bench clients come from 127.0.0.1: the per-source rate limit would measure itself, not the receiver.
NO_RATE_LIMIT = ("--rate-limit", "1000000", "--rate-burst", "1000000")
SHED_OR_PATCHED = {(200, "patched=1"), (503, "")}   # (status, summary): a 503 without one is "busy"
RunService = Callable[..., service.Service]


def api_server(plane: ControlPlane) -> str:
    """Which API server the figures come from, for the notes."""
    return (f"the real kube-apiserver {plane.apiserver_version()} and etcd {plane.etcd_version()} of the "
            "test harness (tests/cluster: local processes on this machine, etcd with --unsafe-no-fsync)")


def receiver_on(run_service: RunService, plane: ControlPlane, namespace: str, *extra: str,
                timeout: float = 120.0) -> service.Service:
    started = run_service("serve", "receiver", "--listen", "127.0.0.1:0", "--store", "kubernetes",
                          "--kubeconfig", str(plane.kubeconfig), "--namespace", namespace, *NO_RATE_LIMIT,
                          *extra)
    started.receiver = "http://" + service.listening(started, "receiver")
    service.wait_ready(started.receiver, started, timeout=timeout)
    return started


def delete_what_it_wrote(objects: Objects, namespace: str) -> None:
    """Thousands of GitRepos and Events: one request each kind, not one per object at clean-up."""
    objects.delete_all("GitRepo", namespace)
    objects.delete_all("Event", namespace)


def bench_repo(number: int) -> str:
    return f"https://github.com/bench/repo-{number}"


@pytest.mark.timeout(900)
def test_delivery_throughput(report: Report, cluster: Cluster, run_service: RunService,
                             request: pytest.FixtureRequest) -> None:
    plane = cluster.control_plane
    objects = Objects(plane)
    section = report.section(
        "b",
        "b. Delivery throughput: gunicorn receiver + real kube-apiserver",
        ["concurrency", "client processes", "deliveries answered", "HTTP statuses", "503 busy (shed)",
         "2xx/s", "2xx p50 ms", "2xx p99 ms", "errors", "receiver CPU ms/2xx", "kube-apiserver CPU ms/2xx",
         "etcd CPU ms/2xx", "status writes", "(GitRepo, commit) written twice",
         "2xx delivery without its write"],
    )
    section.notes += [
        f"API server: {api_server(plane)}. `serve receiver` with its defaults (1 worker, 8 threads; "
        "deliveries beyond the threads wait in the worker's queue, and only beyond 64 queued or served is "
        "one answered 503 busy) and the rate limit off, against "
        f"it, {THROUGHPUT_GITREPOS} GitRepos and the global Secret stored there. Each connection sends "
        f"signed GitHub pushes for {THROUGHPUT_SECONDS:g} s, each with its own commit and delivery id, to "
        "one GitRepo picked by hash: every delivery answered 2xx is one status PATCH (merge patch, /status) "
        "and one Event (a POST) on the API server.",
        "Clients: `http.client` keep-alive connections in threads spread over spawned client processes.",
        "Latencies and rates are of the deliveries answered 2xx. CPU: the receiver's gunicorn worker, "
        "kube-apiserver and etcd (/proc/<pid>/stat) over the run (503 answers included), divided by the "
        "deliveries answered 2xx. Receiver, API server, etcd and clients share the machine's cores.",
        "errors: failed connections, answers other than 200 and 503 busy, and 200s that did not patch. "
        "Check: a watch of the GitRepos (the server's own record of each write) must show exactly one write "
        "of each (GitRepo, commit) answered 2xx.",
    ]
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("bench")
    request.addfinalizer(lambda: delete_what_it_wrote(objects, namespace))
    objects.create(secret("gitjob-webhook", controller_namespace, github=GITHUB_SECRET))
    repos = tuple(bench_repo(n) for n in range(THROUGHPUT_GITREPOS))
    names = {repo: f"bench-{n}" for n, repo in enumerate(repos)}
    objects.create_all(gitrepo_object(names[repo], repo, namespace) for repo in repos)
    started = receiver_on(run_service, plane, controller_namespace)
    host, port = "127.0.0.1", int(started.receiver.rsplit(":", 1)[1])
    failures, shed_at = [], []
    worker = service.child_pids(started.process.pid)[0]
    apiserver, etcd = pid_with_argument(f"--secure-port={plane.port}"), pid_with_argument(plane.etcd_url)
    with StatusWatch(plane, namespace) as watch:
        for concurrency in CONCURRENCY:
            before = [cpu_seconds(pid) for pid in (worker, apiserver, etcd)]
            load = run_load(LoadSpec(host, port, "github-push", 0, THROUGHPUT_SECONDS, 0, 0, repos=repos,
                                     label=f"c{concurrency}"), concurrency)
            used = [cpu_seconds(pid) - was for pid, was in zip((worker, apiserver, etcd), before)]
            watch.wait_until_current(timeout=120)
            written = watch.writes()
            ok = [sent for sent in load.sent if 200 <= sent.status < 300]
            delivered = {(names[sent.repo], sent.commit) for sent in ok}
            shed = sum(1 for sent in load.sent if sent.status == 503 and not sent.outcome)
            twice = sum(1 for key in delivered if written[key] > 1)
            missing = sum(1 for key in delivered if written[key] == 0)
            wrong = [sent for sent in load.sent if (sent.status, sent.outcome) not in SHED_OR_PATCHED]
            errors = len(load.errors) + len(wrong)
            latencies = [sent.seconds for sent in ok]
            section.add(concurrency, client_processes(concurrency), load.count, statuses_text(load.statuses),
                        shed,
                        f"{len(ok) / load.seconds:.0f}", ms(percentile(latencies, 0.5)),
                        ms(percentile(latencies, 0.99)), errors,
                        *(f"{seconds / max(1, len(ok)) * 1000:.2f}" for seconds in used),
                        sum(1 for key in delivered if written[key]), twice, missing)
            print(f"  concurrency {concurrency}: {len(ok) / load.seconds:.0f} 2xx/s, {shed} shed (503 busy), "
                  f"2xx p50 {ms(percentile(latencies, 0.5))} ms p99 {ms(percentile(latencies, 0.99))} ms "
                  f"errors {errors}", flush=True)
            if errors or twice or missing:
                failures.append(f"concurrency {concurrency}: {errors} errors ({load.errors[:3]} "
                                f"{wrong[:3]}), {twice} written twice, {missing} without a write")
            if shed:
                shed_at.append(f"{shed} of {load.count} at concurrency {concurrency}")
    section.target("zero errors, every 2xx delivery written exactly once", "; ".join(failures) or "all clean",
                   not failures)
    section.target("no delivery shed (503 busy)", "; ".join(shed_at) or "none", not shed_at)
    section.print()
    assert not failures


@pytest.mark.timeout(1800)
def test_receiver_memory(report: Report, private_control_plane: ControlPlane,
                         run_service: RunService) -> None:
    plane = private_control_plane
    objects = Objects(plane)
    section = report.section(
        "d",
        "d. Memory: receiver RSS by GitRepos cached",
        ["GitRepos cached", "seed time s", "seeded/s", "receiver ready s", "worker RSS MB", "arbiter RSS MB",
         "worker RSS over empty MB", "per 10k GitRepos MB", "kube-apiserver RSS MB"],
    )
    section.notes += [
        f"API server: {api_server(plane)}, a control plane of this benchmark's own. GitRepos (branch and "
        f"repo, half in fleet-default, half in fleet-local) are created through the API: POSTs over "
        f"{SEED_CONNECTIONS} keep-alive connections at once, the seed time is theirs (the API server's "
        "create path, admission and etcd writes included; it is the bulk of this benchmark's run time).",
        "`serve receiver` is started fresh per size; ready = from its start to `/readyz` reporting the "
        "cache synced (the reflector lists in pages of 500, `limit`/`continue`). RSS from /proc/<pid>/status "
        "VmRSS after one delivery was served (the worker holds the cache; the arbiter process is gunicorn's "
        "master).",
    ]
    objects.create(secret("gitjob-webhook", "cattle-fleet-system", github=GITHUB_SECRET))
    apiserver = pid_with_argument(f"--secure-port={plane.port}")
    results: list[tuple[int, float, float, int, int, int]] = []
    seeded = 0
    for size in (0,) + MEMORY_SIZES:
        added = size - seeded
        began = time.perf_counter()
        objects.create_all((gitrepo_object(f"mem-{number}", f"https://github.com/org-{number % 997}/repo-"
                                           f"{number}", ("fleet-default", "fleet-local")[number % 2])
                            for number in range(seeded, size)), threads=SEED_CONNECTIONS)
        seed_time = time.perf_counter() - began
        seeded = max(seeded, size)
        print(f"  {size:,} GitRepos stored ({added:,} created in {seed_time:.1f} s)", flush=True)
        began = time.perf_counter()
        started = receiver_on(run_service, plane, "cattle-fleet-system", timeout=900)
        wait_for(lambda: f"({size} GitRepos)" in requests.get(started.receiver + "/readyz", timeout=5).text,
                 timeout=60, message=f"{size} GitRepos cached")
        ready = time.perf_counter() - began
        headers, body = github_push("https://github.com/org-1/repo-1", commit_for("mem", size), f"mem-{size}")
        assert requests.post(started.receiver, data=body, headers=headers, timeout=30).status_code == 200
        workers = service.child_pids(started.process.pid)
        assert len(workers) == 1, workers
        results.append((size, seed_time, ready, rss_kb(workers[0]), rss_kb(started.process.pid),
                        rss_kb(apiserver)))
        started.stop()
        print(f"  {size:,} GitRepos: ready in {ready:.1f} s, worker RSS {results[-1][3] / 1024:.1f} MB",
              flush=True)
    empty = results[0][3]
    previous = 0
    for size, seed_time, ready, worker, arbiter, server in results:
        over = (worker - empty) / 1024
        section.add(f"{size:,}", f"{seed_time:.1f}", f"{(size - previous) / seed_time:.0f}" if size else "-",
                    f"{ready:.1f}", f"{worker / 1024:.1f}", f"{arbiter / 1024:.1f}", f"{over:.1f}",
                    f"{over / size * 10_000:.1f}" if size else "-", f"{server / 1024:.0f}")
        previous = size
    at_max = results[-1][3] / 1024
    section.target("worker RSS ≤ 200 MB at 100k GitRepos", f"{at_max:.0f} MB", at_max <= 200)
    section.print()


@pytest.mark.timeout(300)
def test_propagation(report: Report, cluster: Cluster, run_service: RunService,
                     request: pytest.FixtureRequest) -> None:
    plane = cluster.control_plane
    objects = Objects(plane)
    section = report.section(
        "e",
        "e. Propagation: GitRepo created → receiver patches it",
        ["creates", "GitRepos cached", "p50 ms", "p99 ms", "max ms", "deliveries per create (mean)"],
    )
    section.notes += [
        f"API server: {api_server(plane)}. For each create: a POST of a GitRepo for a fresh repository to "
        "the API server, then signed pushes for that repository over one keep-alive connection, back to "
        "back, until one answers `patched: 1`; the time is from just before the create to that answer "
        "(create → watch event → receiver cache → match → status PATCH). The receiver has "
        f"{PROPAGATION_OTHERS:,} other GitRepos cached.",
    ]
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("bench")
    request.addfinalizer(lambda: delete_what_it_wrote(objects, namespace))
    objects.create(secret("gitjob-webhook", controller_namespace, github=GITHUB_SECRET))
    objects.create_all(gitrepo_object(f"other-{number}", f"https://github.com/other/repo-{number}", namespace)
                       for number in range(PROPAGATION_OTHERS))
    started = receiver_on(run_service, plane, controller_namespace)
    connection = http.client.HTTPConnection("127.0.0.1", int(started.receiver.rsplit(":", 1)[1]), timeout=30)
    durations, attempts = [], []
    for number in range(PROPAGATION_CREATES):
        repo = f"https://github.com/fresh/repo-{number}"
        began = time.perf_counter()
        objects.create(gitrepo_object(f"fresh-{number}", repo, namespace))
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
    section.add(PROPAGATION_CREATES, f"{PROPAGATION_OTHERS:,}", ms(percentile(durations, 0.5)),
                ms(percentile(durations, 0.99)), ms(max(durations)), f"{sum(attempts) / len(attempts):.1f}")
    section.print()
