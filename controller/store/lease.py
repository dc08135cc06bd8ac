"""Leader election on a coordination.k8s.io Lease, so that one replica runs the reconcile pass.

Optimistic concurrency does the work: a replica takes or renews the Lease with an update that
carries the resourceVersion it read, and a 409 means another replica got there first.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from controller.logs import fields
from controller.store.kubeapi import ApiError, KubeApi, lease_path

log = logging.getLogger(__name__)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElector:
    """Holds a Lease while this replica is the leader; ``try_lead`` is called every few seconds."""

    def __init__(self, api: KubeApi, namespace: str, name: str, identity: str | None = None,
                 duration: float = 15.0) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity or f"{socket.gethostname()}-{time.monotonic_ns()}"
        self.duration = duration
        self.leading = False

    def try_lead(self) -> bool:
        """Acquire or renew the Lease; True while this replica leads."""
        now = datetime.now(timezone.utc)
        try:
            lease = self.api.request("GET", lease_path(self.namespace, self.name), timeout=5)
        except ApiError as error:
            if error.status != 404:
                return self._set(False, str(error))
            return self._set(self._create(now), "created the lease")
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        expired = renewed is None or now - renewed > timedelta(seconds=float(
            spec.get("leaseDurationSeconds") or self.duration))
        if holder != self.identity and not expired:
            return self._set(False, f"held by {holder}")
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        lease["spec"] = {
            "holderIdentity": self.identity, "leaseDurationSeconds": int(self.duration),
            "acquireTime": spec.get("acquireTime") if holder == self.identity else _stamp(now),
            "renewTime": _stamp(now), "leaseTransitions": transitions,
        }
        try:
            self.api.request("PUT", lease_path(self.namespace, self.name), body=lease, timeout=5)
        except ApiError as error:
            return self._set(False, str(error))
        return self._set(True, "renewed" if holder == self.identity else "acquired")

    def _create(self, now: datetime) -> bool:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.duration),
                         "acquireTime": _stamp(now), "renewTime": _stamp(now), "leaseTransitions": 0}}
        try:
            self.api.request("POST", lease_path(self.namespace), body=body, timeout=5)
        except ApiError:
            return False
        return True

    def _set(self, leading: bool, detail: str) -> bool:
        if leading != self.leading:
            log.info("leading the reconcile pass" if leading else "not leading the reconcile pass",
                     extra=fields(lease=f"{self.namespace}/{self.name}", identity=self.identity,
                                  detail=detail))
        self.leading = leading
        return leading
