"""What the service reads and writes in Kubernetes, behind one small protocol.

Two implementations: :mod:`controller.store.offline` (in memory, loaded from a YAML file; the
default of ``make run``) and :mod:`controller.store.kube` (watch-fed caches over the official
client). Everything else in the service talks to a :class:`Store` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Protocol

from controller.fleet.gitrepos import GitRepo
from controller.fleet.secrets import WebhookSecret


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC at second precision, as Kubernetes writes ``metav1.Time``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StoreError(Exception):
    """A read or write could not be done; the message says which object and why."""


class StoreUnavailable(StoreError):
    """Kubernetes did not accept a write within the deadline (the receiver answers 503)."""


class SecretUnknown(StoreError):
    """The Secret has not been read yet (cache not synced, list failing, watch forbidden).

    Unknown is never absent: an absent Secret lets a delivery through unauthenticated, an unknown
    one makes it wait (503) until the Secret can be read.
    """


class GitRepoGone(StoreError):
    """The GitRepo was deleted between matching and writing."""


class Store(Protocol):
    """The service's view of Kubernetes: cached reads, status writes and events."""

    @property
    def description(self) -> str:
        """One line saying which store this is and where its data comes from."""

    @property
    def offline(self) -> bool:
        """True for the in-memory store of ``make run`` and ``explain`` (no cluster behind it)."""

    def start(self) -> None:
        """Begin filling caches (no-op for stores that are filled at construction)."""

    def stop(self) -> None:
        """Stop background work."""

    def readiness(self) -> tuple[bool, str]:
        """Whether reads are complete (caches synced), and a short reason when not."""

    def problem(self) -> str:
        """Why reading the cluster last failed, in full ("" when it did not): for the operator's
        command line, never for ``/readyz``, which the internet may reach."""

    def unanswered(self, timeout: float) -> str:
        """Why the cluster does not answer one cheap request within ``timeout`` seconds ("" when it
        does, or there is none): lets a command line fail fast on a silent API server."""

    def gitrepos(self) -> Sequence[GitRepo]:
        """Every GitRepo, across namespaces."""

    def gitrepos_for(self, key: str) -> Sequence[GitRepo]:
        """The GitRepos whose normalised repository URL is ``key`` (see :mod:`controller.fleet.urls`)."""

    def secret(self, namespace: str, name: str) -> WebhookSecret | None:
        """The decoded data of a webhook Secret, or None when it does not exist.

        Raises :class:`SecretUnknown` when the cache cannot say (not read yet, or not readable).
        """

    def webhook_secrets(self) -> Sequence[tuple[str, str]]:
        """The Secrets deliveries are verified with: the global one, then each one a GitRepo names."""

    def patch_status(self, gitrepo: GitRepo, commit: str, when: datetime) -> GitRepo:
        """Write ``status.webhookCommit`` and ``status.lastWebhookTime``; return the updated GitRepo."""

    def record_event(self, gitrepo: GitRepo, reason: str, message: str, kind: str = "Normal") -> None:
        """Record a Kubernetes Event on the GitRepo (best effort: never raises)."""

    def set_polling_interval(self, gitrepo: GitRepo, interval: str | None, defaulted: bool) -> GitRepo:
        """Set (or, with None, remove) ``spec.pollingInterval`` and the defaulted annotation."""

    def secret_access(self) -> Mapping[str, tuple[str, ...]]:
        """Namespace → the Secret names the receiver may read there (beyond the global Secret)."""

    def grant_secret_access(self, namespace: str, secrets: tuple[str, ...]) -> None:
        """Let the receiver read exactly these Secrets of the namespace."""

    def revoke_secret_access(self, namespace: str) -> None:
        """Take the receiver's read access to the namespace's Secrets away."""

    def leader_elector(self, name: str) -> Elector | None:
        """Leader election among replicas on a Lease of that name; None where there is one replica."""


class Elector(Protocol):
    """Leader election: ``try_lead`` is True while this replica may act."""

    def try_lead(self) -> bool:
        """Acquire or renew leadership."""
