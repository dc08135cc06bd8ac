"""The receiver under gunicorn against a real kube-apiserver: verified deliveries patch GitRepo status.

The receiver reaches the server through the fault proxy, whose request log shows what it wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from support import service
from support.kube import Objects, gitrepo, secret
from support.waiting import wait_for

SECRET = "cluster-test-secret"
COMMIT = "af69d162de5a276abc86e0686b2b44033cd3f442"
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def signature(body: bytes, key: str = SECRET) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Receiving:
    """A ready receiver on the cluster, and what it was given to serve."""

    process: service.Service
    objects: Objects
    namespace: str   # the GitRepos'
    repository: str  # owner/name on github.com, of this test alone

    def body(self, commit: str = COMMIT, pusher: str = "") -> bytes:
        """A GitHub push of ``main`` of the test's repository (another pusher: another body)."""
        push: dict[str, Any] = {"ref": "refs/heads/main", "after": commit,
                                "repository": {"html_url": f"https://github.com/{self.repository}",
                                               "ssh_url": f"git@github.com:{self.repository}.git"}}
        if pusher:
            push["pusher"] = {"name": pusher}
        return json.dumps(push).encode()

    def push(self, body: bytes | None = None, sign: str | None = None,
             delivery: str = "d-1") -> requests.Response:
        data = self.body() if body is None else body
        return requests.post(self.process.receiver, data=data, timeout=30, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign if sign is not None else signature(data)})

    def status(self, name: str) -> dict[str, Any]:
        stored: dict[str, Any] = self.objects.must_get("GitRepo", self.namespace, name).get("status") or {}
        return stored


@pytest.fixture
def receiving(cluster: Cluster, fault_proxy: FaultProxy,
              start_receiver: Callable[..., service.Service]) -> Receiving:
    """The global Secret and four GitRepos (two tracking main of the pushed repository), and a ready
    receiver on them; the proxy's log starts empty when the test begins."""
    objects = Objects(cluster.control_plane)
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("repos")
    repository = f"{namespace}/repo"
    objects.create(secret("gitjob-webhook", controller_namespace, github=SECRET))
    objects.create(gitrepo("main", namespace, f"https://github.com/{repository}", branch="main"))
    objects.create(gitrepo("ssh-main", namespace, f"git@github.com:{repository}.git", branch="main"))
    objects.create(gitrepo("release", namespace, f"https://github.com/{repository}", branch="release"))
    objects.create(gitrepo("other", namespace, f"https://github.com/{repository}-with-suffix", branch="main"))
    started = start_receiver("--store", "kubernetes", "--kubeconfig", str(fault_proxy.kubeconfig),
                             "--namespace", controller_namespace, "--patch-deadline", "1.5")
    fault_proxy.clear()
    return Receiving(started, objects, namespace, repository)


def writes(proxy: FaultProxy) -> list[tuple[str, str]]:
    """(method, path) of every write that went through the proxy, in order."""
    return [(r.method, r.path) for r in proxy.requests if r.method in WRITES]


def status_path(namespace: str, name: str) -> str:
    return f"/apis/fleet.cattle.io/v1alpha1/namespaces/{namespace}/gitrepos/{name}/status"


def test_a_signed_push_patches_the_status_of_exactly_the_matching_gitrepos(
        receiving: Receiving, fault_proxy: FaultProxy) -> None:
    response = receiving.push()
    assert response.status_code == 200, response.text
    assert sorted((g["name"], g["result"]) for g in response.json()["gitrepos"]) == [
        ("main", "patched"), ("ssh-main", "patched")]
    assert receiving.status("main")["webhookCommit"] == COMMIT
    assert receiving.status("ssh-main")["webhookCommit"] == COMMIT
    assert receiving.status("release") == {} and receiving.status("other") == {}
    patches = sorted(path for method, path in writes(fault_proxy) if method != "POST")  # POST: Events
    assert patches == [status_path(receiving.namespace, "main"), status_path(receiving.namespace, "ssh-main")]
    assert {method for method, path in writes(fault_proxy) if path in patches} == {"PATCH"}


def test_the_spec_and_generation_are_never_written(receiving: Receiving) -> None:
    before = receiving.objects.must_get("GitRepo", receiving.namespace, "main")
    assert receiving.push().status_code == 200
    after = receiving.objects.must_get("GitRepo", receiving.namespace, "main")
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert "pollingInterval" not in after["spec"]


def webhook_events(receiving: Receiving) -> list[dict[str, Any]]:
    events = receiving.objects.list("Event", receiving.namespace)
    return [e for e in events if e["reason"] == "WebhookReceived"]


def test_a_webhook_received_event_is_recorded_on_each_patched_gitrepo(receiving: Receiving) -> None:
    assert receiving.push().status_code == 200

    def both() -> list[dict[str, Any]] | None:
        found = webhook_events(receiving)
        return found if len(found) == 2 else None
    recorded = wait_for(both, timeout=30, message="two WebhookReceived events") or []
    assert {e["involvedObject"]["name"] for e in recorded} == {"main", "ssh-main"}
    assert {e["message"] for e in recorded} == {"github push to refs/heads/main at af69d162de5a"}
    assert {(e["type"], e["count"], e["source"]["component"]) for e in recorded} == {
        ("Normal", 1, "gitjob-webhook")}


def test_the_same_push_announced_again_counts_on_the_same_event(receiving: Receiving) -> None:
    assert receiving.push(receiving.body(COMMIT, pusher="a")).json()["summary"]["patched"] == 2
    assert receiving.push(receiving.body(OTHER_COMMIT)).json()["summary"]["patched"] == 2
    # The commit again, in another body (not a duplicate): patched again, and the Event that says so
    # is the first one with a count of 2.
    assert receiving.push(receiving.body(COMMIT, pusher="b")).json()["summary"]["patched"] == 2

    def counted() -> dict[tuple[str, str], int] | None:
        counts = {(e["involvedObject"]["name"], e["message"][-12:]): e["count"]
                  for e in webhook_events(receiving)}
        return counts if len(counts) == 4 and counts[("main", COMMIT[:12])] == 2 \
            and counts[("ssh-main", COMMIT[:12])] == 2 else None
    assert wait_for(counted, timeout=30, message="the first Event counted twice") == {
        ("main", COMMIT[:12]): 2, ("ssh-main", COMMIT[:12]): 2,
        ("main", OTHER_COMMIT[:12]): 1, ("ssh-main", OTHER_COMMIT[:12]): 1}


def test_a_commit_already_written_is_current_and_the_same_body_again_a_duplicate(
        receiving: Receiving, fault_proxy: FaultProxy) -> None:
    assert receiving.push(delivery="first").json()["summary"]["patched"] == 2
    patches = [w for w in writes(fault_proxy) if w[0] == "PATCH"]
    # The patch answers update the cache at once, before the watch brings the same change. Another
    # push (another body) of the same commit is then current; the same body again, a duplicate.
    again = receiving.push(receiving.body(COMMIT, pusher="b"), delivery="second").json()
    assert again["summary"] == {"patched": 0, "current": 2, "failed": 0, "unauthorized": 0}
    assert receiving.push(delivery="third").json()["outcome"] == "duplicate"
    assert [w for w in writes(fault_proxy) if w[0] == "PATCH"] == patches


def test_a_bad_signature_is_401_and_nothing_is_written(receiving: Receiving, fault_proxy: FaultProxy) -> None:
    response = receiving.push(sign=signature(receiving.body(), "wrong-secret"))
    assert response.status_code == 401
    assert "does not match" in response.json()["message"]
    assert writes(fault_proxy) == []
    assert receiving.status("main") == {}


def test_transient_api_failures_are_retried(receiving: Receiving, fault_proxy: FaultProxy) -> None:
    fault_proxy.fail_next("PATCH", r"/gitrepos/main/status$", 500, count=2)
    response = receiving.push()
    assert response.status_code == 200
    assert response.json()["summary"]["patched"] == 2
    assert receiving.status("main")["webhookCommit"] == COMMIT
    main = status_path(receiving.namespace, "main")
    assert [r.status for r in fault_proxy.requests if r.path == main] == [500, 500, 200]


def test_persistent_api_failures_answer_503_and_a_redelivery_succeeds(
        receiving: Receiving, fault_proxy: FaultProxy) -> None:
    fault_proxy.fail_next("PATCH", r"/status$", 503, count=10_000)
    failed = receiving.push(delivery="retry-me")
    assert failed.status_code == 503
    assert failed.headers["Retry-After"]
    assert failed.json()["summary"]["failed"] == 2 and failed.json()["outcome"] == "unavailable"
    assert receiving.status("main") == {}
    fault_proxy.clear()
    redelivered = receiving.push(delivery="retry-me")
    assert redelivered.status_code == 200
    assert redelivered.json()["summary"]["patched"] == 2
    assert receiving.status("main")["webhookCommit"] == COMMIT


def test_a_failing_gitrepo_list_keeps_the_process_up_unready_and_is_logged_once(
        cluster: Cluster, fault_proxy: FaultProxy, run_service: Callable[..., service.Service]) -> None:
    """The process starts, /readyz says why it is not ready, the failure is logged once (not per retry),
    and the cache syncs once the API server answers again."""
    lists = "/apis/fleet.cattle.io/v1alpha1/gitrepos"
    fault_proxy.fail_next("GET", f"^{lists}$", 503, count=10_000)
    started = run_service("serve", "receiver", "--listen", "127.0.0.1:0", "--store", "kubernetes",
                          "--kubeconfig", str(fault_proxy.kubeconfig),
                          "--namespace", cluster.namespace("ctl"))
    url = "http://" + service.listening(started, "receiver")
    wait_for(lambda: sum(r.status == 503 for r in fault_proxy.requests) >= 4, timeout=30,
             message="four failed lists")
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    ready = requests.get(url + "/readyz", timeout=5)
    assert ready.status_code == 503 and "not synced" in ready.json()["reason"]

    fault_proxy.clear()
    service.wait_ready(url, started, timeout=60)
    after = [r.status for r in fault_proxy.requests if r.path == lists and r.query.get("watch") != "true"]
    assert after == [200]
    assert started.log().count('"msg": "cache gitrepos: failing"') == 1
    assert started.log().count('"msg": "cache gitrepos: synced"') == 1
