"""Faults of a real Kubernetes API during deliveries: nothing lost, nothing written twice.

Bursts go through the fault proxy (injected 500s, 429s, slow answers, cut watches); the API server
itself is stopped and started again under a running receiver, or is down when the receiver starts
(a control plane of the test's own). What the server stored is read from a watch of its own: every
write the server made shows up there, whether or not the receiver heard back about it.
"""

from __future__ import annotations

import base64
import itertools
import pathlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from cluster.controlplane import ControlPlane
from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from resilience.reskit import GLOBAL_SECRET, commit_for, gitrepo, push_body, push_headers
from support import service
from support.kube import CLOSE_WATCHES_ON_STOP, Objects, StatusWatch, secret
from support.waiting import wait_for

GITREPOS = 20
BURST = 200
StartReceiver = Callable[..., service.Service]
Result = tuple[str, str, int, str]   # GitRepo, commit, HTTP status, outcome
_probes = itertools.count()


@dataclass(frozen=True)
class Burst:
    """A receiver on GITREPOS GitRepos of one namespace, the proxy in front of the API server, and a
    watch of what the server stores there."""

    process: service.Service
    proxy: FaultProxy
    objects: Objects
    watch: StatusWatch
    controller_namespace: str
    namespace: str

    def repo(self, number: int) -> str:
        return f"https://github.com/{self.namespace}/repo-{number}"

    def deliver(self, number: int, label: str, key: str = GLOBAL_SECRET) -> Result:
        commit = commit_for(self.namespace, label, number)
        body = push_body(commit, self.repo(number % GITREPOS))
        response = requests.post(self.process.receiver, data=body, timeout=60,
                                 headers=push_headers(body, f"{label}-{number}", key))
        outcome = str(response.json().get("outcome", "")) if response.content else ""
        return f"burst-{number % GITREPOS}", commit, response.status_code, outcome

    def burst(self, label: str, during: Callable[[list[Future[Result]]], None] | None = None,
              key: str = GLOBAL_SECRET) -> list[Result]:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(self.deliver, number, label, key) for number in range(BURST)]
            if during is not None:
                during(futures)
            return [future.result() for future in futures]

    def settle(self, results: list[Result]) -> None:
        """Wait until every status PATCH the receiver sent has been answered by the server (a slow one
        may land after its delivery was answered 503) and the watch has seen the result."""
        attempts = sum(1 for *_, status, outcome in results
                       if status == 200 and outcome == "processed" or outcome == "unavailable")

        def answered() -> bool:
            return sum(1 for r in self.proxy.requests
                       if r.method == "PATCH" and r.path.endswith("/status")) >= attempts
        wait_for(answered, timeout=60, message=f"{attempts} status PATCHes to be answered")
        self.watch.wait_until_current()

    def assert_nothing_lost_nothing_twice(self, results: list[Result],
                                          answers: frozenset[int] = frozenset({200, 503})) -> None:
        statuses = Counter(status for _, _, status, _ in results)
        assert set(statuses) <= answers, statuses
        self.settle(results)
        self.watch.wait_for_writes({(name, commit) for name, commit, status, _ in results if status == 200})
        twice = {key: count for key, count in self.watch.writes().items() if count > 1}
        assert not twice, f"written more than once: {list(twice.items())[:5]}"


@pytest.fixture
def burst_receiver(cluster: Cluster, fault_proxy: FaultProxy,
                   start_receiver: StartReceiver) -> Iterator[Burst]:
    objects = Objects(cluster.control_plane)
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("burst")
    objects.create(secret("gitjob-webhook", controller_namespace, github=GLOBAL_SECRET))
    objects.create_all(gitrepo(f"burst-{number}", f"https://github.com/{namespace}/repo-{number}", namespace)
                       for number in range(GITREPOS))
    started = start_receiver("--store", "kubernetes", "--kubeconfig", str(fault_proxy.kubeconfig),
                             "--namespace", controller_namespace, "--patch-deadline", "1",
                             "--rate-limit", "100000", "--rate-burst", "100000", "--threads", "18")
    with StatusWatch(cluster.control_plane, namespace) as watch:
        yield Burst(started, fault_proxy, objects, watch, controller_namespace, namespace)


def answered(futures: list[Future[Result]], fraction: float) -> Callable[[], bool]:
    return lambda: sum(future.done() for future in futures) >= fraction * len(futures)


def test_api_500s_429s_and_slow_answers_during_a_burst_lose_nothing(burst_receiver: Burst) -> None:
    burst_receiver.proxy.fail_next("PATCH", r"/status$", 500, count=60)
    burst_receiver.proxy.fail_next("PATCH", r"/status$", 429, count=60, retry_after=0)
    burst_receiver.proxy.delay("PATCH", r"/status$", 0.4, count=40)
    results = burst_receiver.burst("faults")
    burst_receiver.assert_nothing_lost_nothing_twice(results)
    assert sum(1 for *_, status, _ in results if status == 200) >= BURST // 2


def test_api_calls_slower_than_the_patch_deadline_answer_503_and_never_write_twice(
        burst_receiver: Burst) -> None:
    # The server applies these PATCHes after the receiver gave up on them: a 503 whose write landed is
    # fine (the redelivery finds it current); a retry that writes the same commit again is not.
    burst_receiver.proxy.delay("PATCH", r"/status$", 1.5, count=20)
    results = burst_receiver.burst("slow")
    burst_receiver.assert_nothing_lost_nothing_twice(results)
    assert any(status == 503 for *_, status, _ in results)


def test_watches_cut_mid_burst_lose_nothing_and_the_cache_keeps_following(burst_receiver: Burst) -> None:
    def cut(futures: list[Future[Result]]) -> None:
        for fraction in (0.25, 0.5, 0.75):
            wait_for(answered(futures, fraction), timeout=60, message=f"{fraction:.0%} of the deliveries")
            # After a cut the receiver takes a moment to watch again: cut the next watches it opens.
            wait_for(lambda: burst_receiver.proxy.cut_streams() >= 1, timeout=30,
                     message="open watches to cut")

    results = burst_receiver.burst("cut", during=cut)
    burst_receiver.assert_nothing_lost_nothing_twice(results, answers=frozenset({200}))
    repo = f"https://github.com/{burst_receiver.namespace}/after-cut"
    burst_receiver.objects.create(gitrepo("after-cut", repo, burst_receiver.namespace))
    body = push_body(commit_for(burst_receiver.namespace, "after-cut"), repo)

    def patched() -> bool:
        response = requests.post(burst_receiver.process.receiver, data=body, timeout=10,
                                 headers=push_headers(body, f"after-cut-{next(_probes)}"))
        return response.status_code == 200 and response.json()["summary"]["patched"] == 1

    wait_for(patched, timeout=30, message="a GitRepo created after the cuts to be matched")


def test_a_rotated_global_secret_takes_effect_without_a_restart(burst_receiver: Burst) -> None:
    pid = burst_receiver.process.process.pid
    new_secret = "rotated-secret-value-51c2"

    def rotate(futures: list[Future[Result]]) -> None:
        wait_for(answered(futures, 0.3), timeout=60, message="a third of the deliveries")
        burst_receiver.objects.patch("Secret", burst_receiver.controller_namespace, "gitjob-webhook",
                                     {"data": {"github": base64.b64encode(new_secret.encode()).decode()}})

    results = burst_receiver.burst("rotate", during=rotate)
    # Deliveries still signed with the old secret are refused once the rotation reached the cache.
    burst_receiver.assert_nothing_lost_nothing_twice(results, answers=frozenset({200, 401, 503}))
    wait_for(lambda: burst_receiver.deliver(10_000 + next(_probes), "probe", new_secret)[2] == 200,
             timeout=30, message="the rotated secret to be accepted")
    assert burst_receiver.deliver(20_001, "old", GLOBAL_SECRET)[2] == 401
    assert burst_receiver.deliver(20_002, "new", new_secret)[2] == 200
    assert burst_receiver.process.process.poll() is None and burst_receiver.process.process.pid == pid


# The API server itself goes away: a control plane of the test's own, in cattle-fleet-system.

def seed(plane: ControlPlane, *names: str) -> None:
    objects = Objects(plane)
    objects.create(secret("gitjob-webhook", "cattle-fleet-system", github=GLOBAL_SECRET))
    for name in names:
        objects.create(gitrepo(name, f"https://github.com/outage/{name}", "fleet-default"))


def push(receiver: str, name: str, label: str) -> requests.Response:
    body = push_body(commit_for("outage", name, label), f"https://github.com/outage/{name}")
    return requests.post(receiver, data=body, headers=push_headers(body, f"{name}-{label}"), timeout=60)


def webhook_commit(plane: ControlPlane, name: str) -> str:
    status = Objects(plane).must_get("GitRepo", "fleet-default", name).get("status") or {}
    return str(status.get("webhookCommit", ""))


@pytest.mark.parametrize("private_control_plane", [CLOSE_WATCHES_ON_STOP], indirect=True)
def test_an_api_server_restarted_under_the_receiver_loses_no_delivery(
        private_control_plane: ControlPlane, start_receiver: StartReceiver) -> None:
    plane = private_control_plane
    seed(plane, "before", "during")
    receiver = start_receiver("--store", "kubernetes", "--kubeconfig", str(plane.kubeconfig),
                              "--patch-deadline", "1")
    assert push(receiver.receiver, "before", "1").status_code == 200

    plane.stop_apiserver()
    refused = push(receiver.receiver, "during", "1")
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert refused.json()["outcome"] == "unavailable"
    plane.start_apiserver()

    # The provider redelivers the same body until it is accepted.
    wait_for(lambda: push(receiver.receiver, "during", "1").status_code == 200, timeout=60, interval=0.5,
             message="the redelivery to be accepted once the API server is back")
    assert webhook_commit(plane, "during") == commit_for("outage", "during", "1")
    assert webhook_commit(plane, "before") == commit_for("outage", "before", "1")
    # The GitRepo cache follows again: a GitRepo created now is matched.
    Objects(plane).create(gitrepo("after", "https://github.com/outage/after", "fleet-default"))
    wait_for(lambda: push(receiver.receiver, "after", "1").json().get("summary", {}).get("patched") == 1,
             timeout=60, interval=0.2, message="a GitRepo created after the restart to be matched")
    assert receiver.log().count('"msg": "cache gitrepos: failing"') == 1


@pytest.mark.parametrize("private_control_plane", [CLOSE_WATCHES_ON_STOP], indirect=True)
def test_a_receiver_started_while_the_api_server_is_down_is_unready_until_it_is_up(
        private_control_plane: ControlPlane, run_service: Callable[..., service.Service],
        tmp_path: pathlib.Path) -> None:
    plane = private_control_plane
    seed(plane, "app")
    # In front of the server, to count the receiver's attempts: it resets each, as the server is down.
    proxy = FaultProxy(plane, tmp_path).start()
    try:
        plane.stop_apiserver()
        started = run_service("serve", "receiver", "--listen", "127.0.0.1:0", "--store", "kubernetes",
                              "--kubeconfig", str(proxy.kubeconfig))
        url = "http://" + service.listening(started, "receiver")
        lists = "/apis/fleet.cattle.io/v1alpha1/gitrepos"
        wait_for(lambda: sum(1 for r in proxy.requests if r.path == lists and r.status == 0) >= 3, timeout=60,
                 message="three attempts to list GitRepos")
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        ready = requests.get(url + "/readyz", timeout=5)
        assert ready.status_code == 503 and "not synced" in ready.json()["reason"]
        # The proxy sees an attempt before the receiver has logged its failure: wait for the line.
        wait_for(lambda: '"msg": "cache gitrepos: failing"' in started.log(), timeout=30,
                 message="the receiver to log that the GitRepo cache is failing")
        assert started.log().count('"msg": "cache gitrepos: failing"') == 1

        plane.start_apiserver()
        service.wait_ready(url, started, timeout=90)
        assert push(url, "app", "1").json()["summary"]["patched"] == 1
        assert started.log().count('"msg": "cache gitrepos: failing"') == 1
        assert started.log().count('"msg": "cache gitrepos: synced"') == 1
    finally:
        proxy.stop()
