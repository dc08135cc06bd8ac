"""The receiver under gunicorn against the API-server emulator: verified deliveries patch status."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import requests

from support import service
from support.waiting import free_port, wait_for

SECRET = "cluster-test-secret"
COMMIT = "af69d162de5a276abc86e0686b2b44033cd3f442"
BODY = (
    '{"ref":"refs/heads/main","after":"%s","repository":{"html_url":"https://github.com/example/repo",'
    '"ssh_url":"git@github.com:example/repo.git"}}' % COMMIT
).encode()


def _gitrepo(name: str, repo: str = "https://github.com/example/repo", **spec: object) -> dict:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": name, "namespace": "fleet-default"},
        "spec": {"repo": repo, **spec},
    }


def _signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _push(
    url: str, body: bytes = BODY, signature: str | None = None, delivery: str = "d-1"
) -> requests.Response:
    return requests.post(
        url,
        data=body,
        timeout=15,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature if signature is not None else _signature(body),
        },
    )


@pytest.fixture
def cluster_receiver(emulator, kubeconfig_path, run_service):
    """Emulator seeded with the global Secret and three GitRepos, and a ready receiver on it."""
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"},
            "stringData": {"github": SECRET},
        }
    )
    emulator.create(_gitrepo("main", branch="main"))
    emulator.create(_gitrepo("ssh-main", repo="git@github.com:example/repo.git", branch="main"))
    emulator.create(_gitrepo("release", branch="release"))
    emulator.create(_gitrepo("other", repo="https://github.com/example/repo-with-suffix", branch="main"))
    port = free_port()
    started = run_service(
        "serve",
        "receiver",
        "--listen",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        kubeconfig_path,
        "--patch-deadline",
        "1.5",
    )
    started.receiver = f"http://127.0.0.1:{port}"
    service.wait_ready(started.receiver, started)
    return started


def _status(emulator, name: str) -> dict:
    return emulator.get("gitrepos", "fleet-default", name).get("status") or {}


def test_a_signed_push_patches_exactly_the_matching_gitrepos(emulator, cluster_receiver):
    response = _push(cluster_receiver.receiver)
    assert response.status_code == 200, response.text
    assert sorted((g["name"], g["result"]) for g in response.json()["gitrepos"]) == [
        ("main", "patched"),
        ("ssh-main", "patched"),
    ]
    assert _status(emulator, "main")["webhookCommit"] == COMMIT
    assert _status(emulator, "ssh-main")["webhookCommit"] == COMMIT
    assert _status(emulator, "release") == {} and _status(emulator, "other") == {}
    patches = [r for r in emulator.requests if r.method == "PATCH"]
    assert {r.path.rsplit("/", 2)[-2] for r in patches} == {"main", "ssh-main"}
    assert all(
        r.path.endswith("/status") and r.content_type == "application/merge-patch+json" for r in patches
    )


def test_the_spec_and_generation_are_never_written(emulator, cluster_receiver):
    before = emulator.get("gitrepos", "fleet-default", "main")
    _push(cluster_receiver.receiver)
    after = emulator.get("gitrepos", "fleet-default", "main")
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert "pollingInterval" not in after["spec"]


def test_a_webhook_received_event_is_recorded_on_each_patched_gitrepo(emulator, cluster_receiver):
    _push(cluster_receiver.receiver)

    def events():
        found = [e for e in emulator.list("events", "fleet-default") if e["reason"] == "WebhookReceived"]
        return found if len(found) == 2 else None

    recorded = wait_for(events, message="two WebhookReceived events")
    assert {e["involvedObject"]["name"] for e in recorded} == {"main", "ssh-main"}
    assert all("github push to refs/heads/main at af69d162de5a" in e["message"] for e in recorded)


def test_a_second_delivery_of_the_same_commit_reports_current_and_writes_nothing(emulator, cluster_receiver):
    assert _push(cluster_receiver.receiver, delivery="first").json()["summary"]["patched"] == 2
    patches = sum(1 for r in emulator.requests if r.method == "PATCH")
    # The patch answers update the cache at once, before the watch brings the same change. Another
    # push (another body) of the same commit is then current; the same body again, a duplicate.
    other_push = BODY.replace(b'"ref":', b'"pusher":{"name":"b"},"ref":')
    again = _push(cluster_receiver.receiver, body=other_push, delivery="second").json()
    assert again["summary"] == {"patched": 0, "current": 2, "failed": 0, "unauthorized": 0}
    assert _push(cluster_receiver.receiver, delivery="third").json()["outcome"] == "duplicate"
    assert sum(1 for r in emulator.requests if r.method == "PATCH") == patches


def test_a_bad_signature_is_401_and_nothing_is_written(emulator, cluster_receiver):
    response = _push(cluster_receiver.receiver, signature=_signature(BODY, "wrong-secret"))
    assert response.status_code == 401
    assert "does not match" in response.json()["message"]
    assert not [r for r in emulator.requests if r.method in ("PATCH", "PUT", "POST")]


def test_transient_api_failures_are_retried(emulator, cluster_receiver):
    emulator.fail_next("PATCH", r"/gitrepos/main/status$", 500, count=2)
    response = _push(cluster_receiver.receiver)
    assert response.status_code == 200
    assert _status(emulator, "main")["webhookCommit"] == COMMIT


def test_persistent_api_failures_answer_503_and_a_redelivery_succeeds(emulator, cluster_receiver):
    emulator.fail_next("PATCH", r"/status$", 503, count=10_000)
    failed = _push(cluster_receiver.receiver, delivery="retry-me")
    assert failed.status_code == 503
    assert failed.headers["Retry-After"]
    assert failed.json()["summary"]["failed"] == 2 and failed.json()["outcome"] == "unavailable"
    emulator.hooks.clear()
    redelivered = _push(cluster_receiver.receiver, delivery="retry-me")
    assert redelivered.status_code == 200
    assert redelivered.json()["summary"]["patched"] == 2


def test_a_failing_api_server_keeps_the_process_up_unready_and_logs_once(
    run_service, emulator, kubeconfig_path
):
    """The process starts, /readyz says why it is not ready, the failure is logged once (not per retry),
    and the cache syncs once the API server answers again."""
    emulator.fail_next("GET", r"/apis/fleet.cattle.io/v1alpha1/gitrepos$", 503, count=4)
    port = free_port()
    started = run_service(
        "serve", "receiver", "--listen", f"127.0.0.1:{port}", "--kubeconfig", kubeconfig_path
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: requests.get(url + "/healthz", timeout=2).status_code == 200, message="liveness")
    ready = requests.get(url + "/readyz", timeout=2)
    assert ready.status_code == 503 and "not synced" in ready.json()["reason"]

    service.wait_ready(url, started)
    lists = [
        r
        for r in emulator.requests
        if r.path == "/apis/fleet.cattle.io/v1alpha1/gitrepos" and "watch" not in r.query
    ]
    assert len(lists) == 5
    assert started.log().count('"msg": "cache gitrepos: failing"') == 1
    assert started.log().count('"msg": "cache gitrepos: synced"') == 1
