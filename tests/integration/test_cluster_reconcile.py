"""Webhook-mode reconcile on a real kube-apiserver: existing GitRepos follow the global Secret both
ways, and of several admission replicas one leads (a Lease) and acts.

The admission servers reach the API server through the fault proxy: its log counts the passes (one
Lease renewal each).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from controller.admission.reconcile import LEASE_NAME
from controller.fleet.gitrepos import DEFAULTED_ANNOTATION
from support import service
from support.kube import Objects, gitrepo, secret
from support.waiting import wait_for

StartAdmission = Callable[..., service.Service]


@dataclass(frozen=True)
class Reconciling:
    """Two GitRepos (one with an explicit interval) and a reconciling admission server."""

    objects: Objects
    proxy: FaultProxy
    controller_namespace: str
    namespace: str

    def spec(self, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.objects.must_get("GitRepo", self.namespace, name)["spec"]
        return spec

    def annotations(self, name: str) -> dict[str, str]:
        metadata = self.objects.must_get("GitRepo", self.namespace, name)["metadata"]
        return dict(metadata.get("annotations") or {})

    def lease_renewals(self) -> int:
        lease = f"/leases/{LEASE_NAME}"
        return sum(1 for r in self.proxy.requests if r.method == "PUT" and r.path.endswith(lease))

    def wait_for_passes(self, passes: int) -> None:
        """Wait until ``passes`` more reconcile passes have run (each renews the Lease first)."""
        renewals = self.lease_renewals()
        wait_for(lambda: self.lease_renewals() >= renewals + passes, timeout=30,
                 message=f"{passes} more reconcile passes")

    def create_global_secret(self) -> None:
        self.objects.create(secret("gitjob-webhook", self.controller_namespace, github="s3cret"))

    def delete_global_secret(self) -> None:
        self.objects.delete("Secret", self.controller_namespace, "gitjob-webhook")


def reconciling_admission(start_admission: StartAdmission, proxy: FaultProxy, controller_namespace: str
                          ) -> service.Service:
    return start_admission("--store", "kubernetes", "--kubeconfig", str(proxy.kubeconfig),
                           "--namespace", controller_namespace, "--reconcile-period", "0.1")


@pytest.fixture
def reconciling(cluster: Cluster, fault_proxy: FaultProxy, start_admission: StartAdmission) -> Reconciling:
    objects = Objects(cluster.control_plane)
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("repos")
    objects.create(gitrepo("plain", namespace, f"https://github.com/{namespace}/plain"))
    objects.create(gitrepo("explicit", namespace, f"https://github.com/{namespace}/explicit",
                           pollingInterval="30m"))
    reconciling_admission(start_admission, fault_proxy, controller_namespace)
    return Reconciling(objects, fault_proxy, controller_namespace, namespace)


def test_webhook_mode_turning_on_and_off_adjusts_only_defaulted_gitrepos(reconciling: Reconciling) -> None:
    explicit_before = reconciling.objects.must_get("GitRepo", reconciling.namespace, "explicit")
    # Without the global Secret webhook mode is off: a few passes change nothing.
    reconciling.wait_for_passes(3)
    assert "pollingInterval" not in reconciling.spec("plain")

    reconciling.create_global_secret()
    wait_for(lambda: reconciling.spec("plain").get("pollingInterval") == "1h", timeout=30, message="1h set")
    assert reconciling.annotations("plain")[DEFAULTED_ANNOTATION] == "true"

    reconciling.delete_global_secret()
    wait_for(lambda: "pollingInterval" not in reconciling.spec("plain"), timeout=30, message="1h reverted")
    assert DEFAULTED_ANNOTATION not in reconciling.annotations("plain")

    explicit_after = reconciling.objects.must_get("GitRepo", reconciling.namespace, "explicit")
    assert explicit_after["metadata"]["resourceVersion"] == explicit_before["metadata"]["resourceVersion"]


def test_an_interval_an_operator_changed_is_not_reverted(reconciling: Reconciling) -> None:
    reconciling.create_global_secret()
    wait_for(lambda: reconciling.spec("plain").get("pollingInterval") == "1h", timeout=30, message="1h set")
    reconciling.objects.patch("GitRepo", reconciling.namespace, "plain", {"spec": {"pollingInterval": "2h"}})

    reconciling.delete_global_secret()
    reconciling.wait_for_passes(3)
    assert reconciling.spec("plain")["pollingInterval"] == "2h"


def test_one_replica_holds_the_lease(reconciling: Reconciling) -> None:
    wait_for(lambda: reconciling.objects.get("Lease", reconciling.controller_namespace, LEASE_NAME),
             timeout=30, message="the lease")
    lease = reconciling.objects.must_get("Lease", reconciling.controller_namespace, LEASE_NAME)
    assert lease["spec"]["holderIdentity"]
    assert lease["spec"]["leaseDurationSeconds"] == 15


def leading(process: service.Service) -> list[str]:
    """The identities this process logged taking the lead with."""
    entries = [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]
    return [str(entry["identity"]) for entry in entries if entry.get("msg") == "leading the reconcile pass"]


def test_of_two_replicas_exactly_one_leads_and_adjusts_the_gitrepos(
        cluster: Cluster, fault_proxy: FaultProxy, start_admission: StartAdmission) -> None:
    objects = Objects(cluster.control_plane)
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("repos")
    objects.create(secret("gitjob-webhook", controller_namespace, github="s3cret"))
    objects.create(gitrepo("plain", namespace, f"https://github.com/{namespace}/plain"))
    replicas = [reconciling_admission(start_admission, fault_proxy, controller_namespace) for _ in range(2)]
    wait_for(lambda: objects.must_get("GitRepo", namespace, "plain")["spec"].get("pollingInterval") == "1h",
             timeout=30, message="1h set")
    Reconciling(objects, fault_proxy, controller_namespace, namespace).wait_for_passes(3)
    leaders = [replica for replica in replicas if leading(replica)]
    assert len(leaders) == 1
    lease = objects.must_get("Lease", controller_namespace, LEASE_NAME)
    assert leading(leaders[0]) == [lease["spec"]["holderIdentity"]]
    assert lease["spec"]["leaseTransitions"] == 0
    adjusted = [replica for replica in replicas if '"msg": "polling interval adjusted"' in replica.log()]
    assert adjusted == leaders
