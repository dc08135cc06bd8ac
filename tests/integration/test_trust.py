"""Trust end to end on the real API server: GitLab signing tokens with replay protection, the signed
generic trigger from ``gitjob-webhook trigger``, and a ``secret rotate`` whose old key keeps working
until its expiry and not after.

The signatures come from the npm Standard Webhooks package or from the CLI under test, never from
the receiver's own code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pathlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from cluster.isolation import Cluster
from support import service
from support.interop import Signed, npm_signatures
from support.kube import Objects, gitrepo, secret
from support.waiting import wait_for

GITHUB_KEY = "github-key-before-the-rotation"
GITLAB_TOKEN = "gitlab-token"
SIGNING = "whsec_" + base64.b64encode(b"gitlab-signing-key-of-32-bytes!!").decode()
GENERIC = "whsec_" + base64.b64encode(b"generic-trigger-key-of-32-bytes!").decode()
COMMITS = [f"{n:x}" * 40 for n in range(1, 10)]
EXPIRY = "gitjob.fleet.cattle.io/previous-keys-expire"


@dataclass(frozen=True)
class Trusting:
    """A ready receiver on the cluster with one GitRepo per provider and a global Secret holding
    a GitHub key, a GitLab token and signing token, and a generic key."""

    process: service.Service
    cluster: Cluster
    objects: Objects
    controller_namespace: str
    namespace: str

    def status(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.objects.must_get("GitRepo", self.namespace, name).get("status") or {}
        return found

    def gitlab(self, commit: str, message_id: str, token: str = GITLAB_TOKEN,
               signing: str = SIGNING) -> requests.Response:
        body = json.dumps({"object_kind": "push", "ref": "refs/heads/main", "after": commit,
                           "checkout_sha": commit, "project": {
                               "web_url": f"https://gitlab.com/{self.namespace}/app",
                               "git_http_url": f"https://gitlab.com/{self.namespace}/app.git"}}).encode()
        stamp = int(time.time())
        signature, = npm_signatures([Signed(signing, message_id, stamp, body)])
        return requests.post(self.process.receiver, data=body, timeout=30, headers={
            "Content-Type": "application/json", "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token,
            "webhook-id": message_id, "webhook-timestamp": str(stamp), "webhook-signature": signature})

    def github(self, commit: str, key: str) -> requests.Response:
        body = json.dumps({"ref": "refs/heads/main", "after": commit, "repository": {
            "html_url": f"https://github.com/{self.namespace}/app"}}).encode()
        signature = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        return requests.post(self.process.receiver, data=body, timeout=30, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": commit[:8],
            "X-Hub-Signature-256": signature})

    def cli(self, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(service.command(*arguments), capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", **(env or {})})

    def previous_key_deliveries(self) -> float:
        text = requests.get(self.process.receiver.rstrip("/") + "/metrics", timeout=10).text
        line = 'gitjob_webhook_previous_secret_deliveries_total{provider="github"} '
        return sum(float(row[len(line):]) for row in text.splitlines() if row.startswith(line))


@pytest.fixture
def trusting(cluster: Cluster, start_receiver: Callable[..., service.Service]) -> Trusting:
    objects = Objects(cluster.control_plane)
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("repos")
    objects.create(secret("gitjob-webhook", controller_namespace, github=GITHUB_KEY, gitlab=GITLAB_TOKEN,
                          **{"gitlab-signing": SIGNING, "generic": GENERIC}))
    objects.create(gitrepo("from-gitlab", namespace, f"https://gitlab.com/{namespace}/app", branch="main"))
    objects.create(gitrepo("from-github", namespace, f"https://github.com/{namespace}/app", branch="main"))
    objects.create(gitrepo("from-ci", namespace, f"https://git.example.com/{namespace}/app.git",
                           branch="main"))
    started = start_receiver("--store", "kubernetes", "--kubeconfig", str(cluster.kubeconfig),
                             "--namespace", controller_namespace, "--workers", "1")
    return Trusting(started, cluster, objects, controller_namespace, namespace)


def test_a_signed_gitlab_push_patches_and_its_replay_is_a_duplicate(trusting: Trusting) -> None:
    first = trusting.gitlab(COMMITS[0], "msg_first")
    assert first.status_code == 200, first.text
    assert (first.json()["delivery"], first.json()["secret"], first.json()["summary"]["patched"]) == (
        "msg_first", "current", 1)
    assert trusting.status("from-gitlab")["webhookCommit"] == COMMITS[0]
    replay = requests.post(first.request.url or "", data=first.request.body, headers=first.request.headers,
                           timeout=30)
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"


@pytest.mark.parametrize(("token", "signing"), [
    pytest.param("wrong-token", SIGNING, id="right-signature-wrong-token"),
    pytest.param(GITLAB_TOKEN, "whsec_" + base64.b64encode(b"x" * 32).decode(),
                 id="right-token-wrong-signature"),
])
def test_a_gitlab_push_needs_both_its_token_and_its_signature(trusting: Trusting, token: str,
                                                              signing: str) -> None:
    refused = trusting.gitlab(COMMITS[1], "msg_refused", token=token, signing=signing)
    assert refused.status_code == 401, refused.text
    assert "webhookCommit" not in trusting.status("from-gitlab")


def test_a_trigger_from_the_cli_patches(trusting: Trusting, tmp_path: pathlib.Path) -> None:
    key = tmp_path / "generic"
    key.write_text(GENERIC)
    sent = trusting.cli("trigger", "--url", trusting.process.receiver, "--secret-file", str(key),
                        "--repository", f"https://git.example.com/{trusting.namespace}/app",
                        "--ref", "refs/heads/main", "--commit", COMMITS[2])
    assert sent.returncode == 0, sent.stdout + sent.stderr
    status, answer = sent.stdout.split(" ", 1)
    assert status == "200" and json.loads(answer)["summary"]["patched"] == 1
    assert trusting.status("from-ci")["webhookCommit"] == COMMITS[2]


def test_an_unsigned_trigger_is_refused_even_with_the_right_body(trusting: Trusting) -> None:
    body = json.dumps({"repository": f"https://git.example.com/{trusting.namespace}/app",
                       "ref": "refs/heads/main", "commit": COMMITS[3]}).encode()
    refused = requests.post(trusting.process.receiver, data=body, timeout=30, headers={
        "Content-Type": "application/json", "X-Signature": "sha256=" + "0" * 64})
    assert refused.status_code == 401 and "webhookCommit" not in trusting.status("from-ci")


def test_a_rotated_key_keeps_working_until_its_expiry(trusting: Trusting) -> None:
    kubeconfig = ("--kubeconfig", str(trusting.cluster.kubeconfig),
                  "--namespace", trusting.controller_namespace)
    rotated = trusting.cli("secret", "rotate", "--provider", "github", "--overlap", "1h", *kubeconfig)
    assert rotated.returncode == 0, rotated.stderr
    new_key = next(line.rsplit(" ", 1)[1] for line in rotated.stdout.splitlines()
                   if line.startswith("New value of github"))
    assert "Settings → Webhooks" in rotated.stdout
    shown = trusting.cli("secret", "status", *kubeconfig)
    assert shown.returncode == 0 and "previous: github.previous, accepted until" in shown.stdout
    assert GITHUB_KEY not in shown.stdout and new_key not in shown.stdout

    # The receiver learns of the rotation from its watch: the old key becomes the previous one.
    def verified_by_the_previous_key() -> requests.Response | None:
        answer = trusting.github(COMMITS[4], GITHUB_KEY)
        return answer if answer.json().get("secret") == "previous" else None
    old = wait_for(verified_by_the_previous_key, timeout=30, message="the old key to be the previous one")
    assert old.status_code == 200 and old.json()["summary"]["patched"] == 1
    assert trusting.previous_key_deliveries() >= 1

    def warned() -> list[dict[str, Any]]:
        return [e for e in trusting.objects.list("Event", trusting.namespace)
                if e["reason"] == "WebhookSecretPrevious" and e["involvedObject"]["name"] == "from-github"]
    warning, = wait_for(warned, timeout=30, message="a WebhookSecretPrevious Event")
    assert warning["type"] == "Warning" and "accepted until" in warning["message"]

    new = trusting.github(COMMITS[5], new_key)
    assert (new.status_code, new.json()["secret"], new.json()["summary"]["patched"]) == (200, "current", 1)
    assert trusting.status("from-github")["webhookCommit"] == COMMITS[5]

    # The expiry, brought to a moment just ahead, passes: the old key is refused from then on.
    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    trusting.objects.patch("Secret", trusting.controller_namespace, "gitjob-webhook",
                           {"metadata": {"annotations": {EXPIRY: soon}}})
    wait_for(lambda: trusting.github(COMMITS[6], GITHUB_KEY).status_code == 401, timeout=30,
             message="the old key to be refused after the expiry")
    assert trusting.github(COMMITS[7], GITHUB_KEY).status_code == 401
    assert trusting.github(COMMITS[8], new_key).status_code == 200
    assert trusting.process.log().count("previous webhook secret keys have expired") == 1
