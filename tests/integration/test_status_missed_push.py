"""Missed pushes on a real kube-apiserver, end to end: two admission servers share the reconcile
Lease; when Fleet's pollingCommit moves without a delivery, the leader alone records one Warning
Event ``WebhookMissed`` after the grace period, and nothing when the delivery comes within it or
the GitRepo is in polling mode. Status is written through the status subresource, as Fleet and
the receiver write it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cluster.isolation import Cluster
from controller.admission.reconcile import LEASE_NAME
from support import service
from support.kube import Objects, gitrepo, secret
from support.waiting import wait_for

StartAdmission = Callable[..., service.Service]
A, B = "a" * 40, "b" * 40
GRACE = "2s"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def metric(process: service.Service, name: str, **labels: str) -> float:
    text = requests.get(f"{process.admission}/metrics", verify=process.ca_file, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def leading(process: service.Service) -> list[str]:
    """The identities this process logged taking the lead with."""
    entries = [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]
    return [str(entry["identity"]) for entry in entries if entry.get("msg") == "leading the reconcile pass"]


class Scene:
    """GitRepos at commit A, announced by a delivery; the status writes a test makes to them."""

    def __init__(self, cluster: Cluster) -> None:
        self.objects = Objects(cluster.control_plane)
        self.kubeconfig = cluster.kubeconfig
        self.controller_namespace = cluster.namespace("ctl")
        self.namespace = cluster.namespace("repos")
        self.objects.create(secret("hook", self.namespace, github="s3cret"))

    def add(self, name: str, webhook_mode: bool) -> None:
        spec: dict[str, Any] = {"webhookSecret": "hook"} if webhook_mode else {}
        self.objects.create(gitrepo(name, self.namespace, f"https://github.com/example/{name}", **spec))
        self.write(name, commit=A, pollingCommit=A, webhookCommit=A, lastWebhookTime="2026-01-01T00:00:00Z",
                   lastPollingTriggered="2026-01-01T00:00:00Z")

    def write(self, name: str, **status: str) -> None:
        self.objects.patch("GitRepo", self.namespace, name, {"status": status}, subresource="status")

    def poll_finds(self, name: str, commit: str) -> None:
        """What Fleet's polling job writes when ls-remote finds a new commit."""
        self.write(name, pollingCommit=commit, lastPollingTriggered=now())

    def deliver(self, name: str, commit: str) -> None:
        """What the receiver writes for a delivery."""
        self.write(name, webhookCommit=commit, lastWebhookTime=now())

    def missed_events(self) -> dict[str, list[dict[str, Any]]]:
        events: dict[str, list[dict[str, Any]]] = {}
        for event in self.objects.list("Event", self.namespace):
            if event["reason"] == "WebhookMissed":
                events.setdefault(event["involvedObject"]["name"], []).append(event)
        return events


@pytest.fixture
def scene(cluster: Cluster) -> Scene:
    return Scene(cluster)


def test_only_the_leader_reports_a_push_that_no_delivery_announced(scene: Scene,
                                                                   start_admission: StartAdmission) -> None:
    for name, webhook_mode in (("missed", True), ("delivered", True), ("polled", False), ("sentinel", True)):
        scene.add(name, webhook_mode)
    replicas = [start_admission("--store", "kubernetes", "--kubeconfig", str(scene.kubeconfig),
                                "--namespace", scene.controller_namespace, "--reconcile-period", "0.1",
                                "--missed-push-grace", GRACE)
                for _ in range(2)]
    # The leader has looked at every GitRepo once: three in sync, one not in webhook mode.
    wait_for(lambda: any(metric(r, "gitjob_webhook_gitrepos", state="in sync") >= 3 for r in replicas),
             timeout=30, message="the leader's first pass")

    scene.poll_finds("missed", B)
    scene.poll_finds("delivered", B)
    scene.deliver("delivered", B)
    scene.poll_finds("polled", B)
    # The last one written: once its grace is over, so is every other's.
    scene.poll_finds("sentinel", B)
    wait_for(lambda: {"missed", "sentinel"} <= set(scene.missed_events()), timeout=30,
             message="WebhookMissed Events on missed and sentinel")

    events = scene.missed_events()
    assert sorted(events) == ["missed", "sentinel"]
    (event,) = events["missed"]
    assert (event["type"], event["count"]) == ("Warning", 1)
    assert event["message"].startswith(f"Fleet found commit {B} by polling; no webhook delivery announced it "
                                       f"within {GRACE}")
    leaders = [replica for replica in replicas if leading(replica)]
    assert len(leaders) == 1
    lease = scene.objects.must_get("Lease", scene.controller_namespace, LEASE_NAME)
    assert leading(leaders[0]) == [lease["spec"]["holderIdentity"]]
    counted = {replica is leaders[0]: metric(replica, "gitjob_webhook_missed_pushes_total")
               for replica in replicas}
    assert counted == {True: 2.0, False: 0.0}
    assert metric(leaders[0], "gitjob_webhook_gitrepos", state="no webhook") == 1
