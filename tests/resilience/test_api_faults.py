"""Faults of the Kubernetes API during a burst of deliveries: nothing lost, nothing written twice."""

from __future__ import annotations

import base64
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kubernetes import client

from reskit import GLOBAL_SECRET, commit_for, gitrepo, global_secret, push_body, push_headers
from support import service
from support.waiting import free_port, wait_for

GITREPOS = 20
BURST = 200


def _repo(number: int) -> str:
    return f"https://github.com/burst/repo-{number}"


@pytest.fixture
def burst_receiver(emulator, kubeconfig_path, run_service):
    emulator.create(global_secret())
    for number in range(GITREPOS):
        emulator.create(gitrepo(f"burst-{number}", _repo(number)))
    port = free_port()
    started = run_service(
        "serve",
        "receiver",
        "--listen",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        kubeconfig_path,
        "--patch-deadline",
        "1",
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
        "--threads",
        "18",
        "--max-in-flight",
        "16",
    )
    started.receiver = f"http://127.0.0.1:{port}"
    service.wait_ready(started.receiver, started)
    return started


def _deliver(url: str, number: int, label: str, secret: str = GLOBAL_SECRET) -> tuple[str, str, int]:
    commit = commit_for(label, number)
    body = push_body(commit, _repo(number % GITREPOS))
    response = requests.post(
        url, data=body, headers=push_headers(body, f"{label}-{number}", secret), timeout=30
    )
    return f"burst-{number % GITREPOS}", commit, response.status_code


def _burst(url: str, label: str, during=None, secret: str = GLOBAL_SECRET) -> list[tuple[str, str, int]]:
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(_deliver, url, number, label, secret) for number in range(BURST)]
        if during is not None:
            during()
        return [future.result() for future in futures]


def _status_patches(emulator) -> Counter:
    """(GitRepo, commit) → number of 2xx status PATCHes in the emulator's request log."""
    applied: Counter = Counter()
    for record in emulator.requests:
        if record.method == "PATCH" and record.path.endswith("/status") and 200 <= record.status < 300:
            applied[
                (record.path.rsplit("/", 2)[-2], (record.body or {}).get("status", {}).get("webhookCommit"))
            ] += 1
    return applied


def _assert_nothing_lost_nothing_twice(emulator, results, answers=frozenset({200, 503})):
    assert {status for _, _, status in results} <= answers, Counter(status for _, _, status in results)
    applied = _status_patches(emulator)
    lost = [
        (name, commit) for name, commit, status in results if status == 200 and not applied[(name, commit)]
    ]
    assert not lost, f"answered 200 without a persisted PATCH: {lost[:5]}"
    twice = {key: count for key, count in applied.items() if count > 1}
    assert not twice, f"patched more than once: {list(twice.items())[:5]}"


def test_api_500s_429s_and_timeouts_during_a_burst_lose_nothing(emulator, burst_receiver):
    emulator.fail_next("PATCH", r"/status$", 500, count=60)
    emulator.fail_next("PATCH", r"/status$", 429, count=60, retry_after=0)
    emulator.delay("PATCH", r"/status$", 0.4, count=40)
    results = _burst(burst_receiver.receiver, "faults")
    _assert_nothing_lost_nothing_twice(emulator, results)
    assert sum(1 for *_, status in results if status == 200) >= BURST // 2


def test_api_calls_slower_than_the_patch_deadline_answer_503_and_never_write_twice(emulator, burst_receiver):
    # The API applies these PATCHes after the receiver gave up on them: a 503 whose write landed is fine
    # (the redelivery finds it current); a retry that writes the same commit again is not.
    emulator.delay("PATCH", r"/status$", 1.5, count=20)
    results = _burst(burst_receiver.receiver, "slow")
    _assert_nothing_lost_nothing_twice(emulator, results)
    assert any(status == 503 for *_, status in results)


def test_a_watch_cut_mid_burst_loses_nothing_and_the_cache_keeps_following(emulator, burst_receiver):
    def cut() -> None:
        for _ in range(3):
            emulator.cut_watches()
            threading.Event().wait(0.05)

    results = _burst(burst_receiver.receiver, "cut", during=cut)
    _assert_nothing_lost_nothing_twice(emulator, results)
    assert all(status == 200 for *_, status in results)
    emulator.create(gitrepo("after-cut", "https://github.com/burst/after-cut"))
    body = push_body(commit_for("after-cut"), "https://github.com/burst/after-cut")

    def patched() -> bool:
        response = requests.post(
            burst_receiver.receiver,
            data=body,
            timeout=10,
            headers=push_headers(body, f"after-cut-{threading.get_ident()}-{id(object())}"),
        )
        return response.status_code == 200 and response.json()["summary"]["patched"] == 1

    wait_for(patched, timeout=15, message="a GitRepo created after the cut to be matched")


def test_a_rotated_global_secret_takes_effect_without_a_restart(emulator, burst_receiver, kube_client):
    pid = burst_receiver.process.pid
    new_secret = "rotated-secret-value-51c2"

    def rotate() -> None:
        client.CoreV1Api(kube_client).patch_namespaced_secret(
            "gitjob-webhook",
            "cattle-fleet-system",
            {"data": {"github": base64.b64encode(new_secret.encode()).decode()}},
        )

    results = _burst(burst_receiver.receiver, "rotate", during=rotate)
    # Deliveries still signed with the old secret are refused once the rotation reached the cache.
    _assert_nothing_lost_nothing_twice(emulator, results, answers={200, 401, 503})

    def new_accepted() -> bool:
        return (
            _deliver(
                burst_receiver.receiver, 10_000 + int(threading.get_ident() % 1000), "probe", new_secret
            )[2]
            == 200
        )

    wait_for(new_accepted, timeout=15, message="the rotated secret to be accepted")
    assert _deliver(burst_receiver.receiver, 20_001, "old", GLOBAL_SECRET)[2] == 401
    assert _deliver(burst_receiver.receiver, 20_002, "new", new_secret)[2] == 200
    assert burst_receiver.process.poll() is None and burst_receiver.process.pid == pid
