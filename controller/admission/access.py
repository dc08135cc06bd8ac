"""Which Secrets the receiver may read: exactly those that GitRepos name, and the global one.

The receiver faces the internet, so it holds no right to read Secrets in general. The admission
side, which only the API server calls, keeps one Role per namespace (``gitjob-webhook-receiver-
secrets``) that lets
the receiver's ServiceAccount get, list and watch the Secrets GitRepos of that namespace name in
``spec.webhookSecret``, by ``resourceNames``, and nothing else; a namespace whose GitRepos name none
has no such Role. The global Secret's read right is static, in the manifests.

:func:`desired_access` decides (pure); :class:`AccessSync` applies the difference, from the leader
of the reconcile pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from controller.fleet.gitrepos import GitRepo
from controller.fleet.secrets import GLOBAL_SECRET
from controller.logs import fields
from controller.store import Store, StoreError

log = logging.getLogger(__name__)

Grants = Mapping[str, tuple[str, ...]]
"""Namespace → the Secret names the receiver may read there, sorted."""


def desired_access(gitrepos: Iterable[GitRepo], controller_namespace: str) -> dict[str, tuple[str, ...]]:
    """The Secrets GitRepos name, by namespace (the global Secret has its own, static Role)."""
    names: dict[str, set[str]] = {}
    for gitrepo in gitrepos:
        if gitrepo.webhook_secret and (gitrepo.namespace, gitrepo.webhook_secret) != \
                (controller_namespace, GLOBAL_SECRET):
            names.setdefault(gitrepo.namespace, set()).add(gitrepo.webhook_secret)
    return {namespace: tuple(sorted(secrets)) for namespace, secrets in sorted(names.items())}


def changes(current: Grants, desired: Grants) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """What to grant (namespace → names, where they differ) and which namespaces to revoke."""
    grant = {namespace: names for namespace, names in desired.items() if current.get(namespace) != names}
    revoke = sorted(namespace for namespace in current if namespace not in desired)
    return grant, revoke


class AccessSync:
    """Brings the Roles in line with the GitRepos; failures are logged once per kind and retried."""

    def __init__(self, store: Store, controller_namespace: str) -> None:
        self.store = store
        self.controller_namespace = controller_namespace
        self._failing = ""

    def run_once(self) -> tuple[dict[str, tuple[str, ...]], list[str]]:
        """One pass: read the Roles, apply what differs; returns what was granted and revoked."""
        try:
            current = self.store.secret_access()
            grant, revoke = changes(current, desired_access(self.store.gitrepos(), self.controller_namespace))
            for namespace, names in grant.items():
                self.store.grant_secret_access(namespace, names)
                log.info("receiver may read", extra=fields(namespace=namespace, secrets=list(names)))
            for namespace in revoke:
                self.store.revoke_secret_access(namespace)
                log.info("receiver may no longer read webhook Secrets", extra=fields(namespace=namespace))
        except StoreError as error:
            if str(error) != self._failing:
                log.warning("receiver Secret access not updated", extra=fields(error=str(error)))
            self._failing = str(error)
            return {}, []
        self._failing = ""
        return grant, revoke
