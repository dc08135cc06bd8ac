"""Leader election on a Lease in the emulator: one leader at a time, take-over after expiry."""

from __future__ import annotations

from controller.store.kubeapi import KubeApi
from controller.store.kubeclient import api_client
from controller.store.lease import LeaderElector


def _elector(kubeconfig_path: str, identity: str, duration: float = 15.0) -> LeaderElector:
    return LeaderElector(KubeApi(api_client(kubeconfig_path)), "cattle-fleet-system", "test-lease",
                         identity=identity, duration=duration)


def test_only_one_replica_leads_and_keeps_leading(emulator, kubeconfig_path):
    first, second = _elector(kubeconfig_path, "a"), _elector(kubeconfig_path, "b")
    assert first.try_lead()
    assert not second.try_lead()
    assert first.try_lead()
    assert emulator.get("leases", "cattle-fleet-system", "test-lease")["spec"]["holderIdentity"] == "a"


def test_an_expired_lease_is_taken_over(emulator, kubeconfig_path):
    first, second = _elector(kubeconfig_path, "a", duration=1), _elector(kubeconfig_path, "b", duration=1)
    assert first.try_lead()
    lease = emulator.get("leases", "cattle-fleet-system", "test-lease")
    lease["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"
    emulator.delete("leases", "cattle-fleet-system", "test-lease")
    lease["metadata"] = {"name": "test-lease", "namespace": "cattle-fleet-system"}
    emulator.create(lease)
    assert second.try_lead()
    spec = emulator.get("leases", "cattle-fleet-system", "test-lease")["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert not first.try_lead()
