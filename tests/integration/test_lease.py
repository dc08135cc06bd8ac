"""Leader election on a real Lease: one leader at a time, take-over once the leader stops renewing."""

from __future__ import annotations

from typing import Any

from cluster.isolation import Cluster
from controller.store.kubeapi import KubeApi
from controller.store.lease import LeaderElector
from support.kube import Objects

LEASE = "test-lease"


def elector(cluster: Cluster, namespace: str, identity: str, duration: float = 15.0) -> LeaderElector:
    return LeaderElector(KubeApi(cluster.client()), namespace, LEASE,
                         identity=identity, duration=duration)


def test_only_one_replica_leads_and_keeps_leading(cluster: Cluster) -> None:
    namespace = cluster.namespace("ctl")
    first, second = elector(cluster, namespace, "a"), elector(cluster, namespace, "b")
    assert first.try_lead()
    assert not second.try_lead()
    assert first.try_lead()
    spec = Objects(cluster.control_plane).must_get("Lease", namespace, LEASE)["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == ("a", 15, 0)


def test_a_lease_its_holder_stopped_renewing_is_taken_over(cluster: Cluster) -> None:
    namespace = cluster.namespace("ctl")
    objects = Objects(cluster.control_plane)
    first, second = elector(cluster, namespace, "a"), elector(cluster, namespace, "b")
    assert first.try_lead()
    # As the lease looks once its holder has been gone for a long time.
    objects.patch("Lease", namespace, LEASE, {"spec": {"renewTime": "2020-01-01T00:00:00.000000Z"}})
    assert second.try_lead()
    spec = objects.must_get("Lease", namespace, LEASE)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
    assert not first.try_lead()


class OvertakenAfterReading(KubeApi):
    """A replica's API that, right after it reads the Lease, lets a rival replica take it."""

    def __init__(self, cluster: Cluster, rival: LeaderElector) -> None:
        super().__init__(cluster.client())
        self.rival: LeaderElector | None = rival

    def request(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        answer = super().request(method, path, **options)
        if method == "GET" and self.rival is not None:
            rival, self.rival = self.rival, None
            assert rival.try_lead()
        return answer


def test_of_two_replicas_taking_an_expired_lease_at_once_only_one_wins(cluster: Cluster) -> None:
    namespace = cluster.namespace("ctl")
    objects = Objects(cluster.control_plane)
    assert elector(cluster, namespace, "gone").try_lead()
    objects.patch("Lease", namespace, LEASE, {"spec": {"renewTime": "2020-01-01T00:00:00.000000Z"}})
    rival = elector(cluster, namespace, "b")
    late = LeaderElector(OvertakenAfterReading(cluster, rival), namespace, LEASE, identity="a")
    # Both read the expired lease; b writes first, and a's write carries a resourceVersion that is
    # no longer current: the server refuses it (409) instead of letting two replicas lead.
    assert not late.try_lead()
    spec = objects.must_get("Lease", namespace, LEASE)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
