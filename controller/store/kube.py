"""The Kubernetes store: watch-fed caches of GitRepos and webhook Secrets, status patches, Events.

Reads never reach the API server: GitRepos come from one cluster-wide list+watch, indexed by
repository key; Secrets from :class:`~controller.store.secrets.SecretCache`, each read by name (the
global ``gitjob-webhook`` and, for the receiver, each Secret a GitRepo names in
``spec.webhookSecret``), so no other Secret is ever listed or held.

Writes are merge patches retried with jittered backoff on 429, 5xx and connection errors until
``--patch-deadline``; what still fails raises :class:`~controller.store.StoreUnavailable`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from controller import metrics
from controller.fleet.gitrepos import DEFAULTED_ANNOTATION, GitRepo
from controller.logs import fields
from controller.settings import Settings
from controller.fleet.secrets import GLOBAL_SECRET, WebhookSecret
from controller.store import GitRepoGone, StoreError, StoreUnavailable, timestamp
from controller.store.events import EventRecorder
from controller.store.index import GitRepoIndex
from controller.store.kubeapi import GITREPOS, MERGE_PATCH, ApiError, KubeApi, gitrepo_path
from controller.store.kubeclient import KubeConfigError, kube_api
from controller.store.lease import LeaderElector
from controller.store.reflector import Backoff, Collection, JsonObject, Reflector
from controller.store import rbac
from controller.store.secrets import SecretCache, SecretKey

log = logging.getLogger(__name__)

R = TypeVar("R")


class KubeStore:
    """A :class:`~controller.store.Store` over a live cluster."""

    offline = False

    def __init__(self, api: KubeApi, settings: Settings, source: str,
                 per_gitrepo_secrets: bool = True) -> None:
        self.api = api
        self.settings = settings
        self.source = source
        self.per_gitrepo_secrets = per_gitrepo_secrets
        self.index = GitRepoIndex()
        self.events = EventRecorder(api)
        self.secrets = SecretCache(api, settings.resync_period)
        self._lock = threading.Lock()
        self._secret_refs: Counter[SecretKey] = Counter()
        self._gitrepo_reflector = Reflector(
            "gitrepos", api, Collection(GITREPOS), GitRepo.from_object, self._replace_gitrepos,
            self._gitrepo_event, settings.resync_period)
        self._global = (settings.namespace, GLOBAL_SECRET)
        self._started = False

    @classmethod
    def connect(cls, settings: Settings, source: str, per_gitrepo_secrets: bool = True,
                one_shot: bool = False) -> KubeStore:
        """Load the client configuration (no connection, no thread yet); ``one_shot`` for a command line."""
        try:
            api = kube_api(source, one_shot)
        except KubeConfigError as error:
            raise StoreError(str(error)) from None
        return cls(api, settings, source, per_gitrepo_secrets)

    @property
    def description(self) -> str:
        """``kubernetes (SOURCE, namespace NS)``."""
        return f"kubernetes ({self.source}, controller namespace {self.settings.namespace})"

    def start(self) -> None:
        """Start the GitRepo and Secret caches and the event recorder (idempotent)."""
        if self._started:
            return
        self._started = True
        self.events.start()
        self.secrets.start(self._global)
        self._gitrepo_reflector.start()

    def stop(self) -> None:
        """Stop every watch and the event recorder, then close the connections they leave idle."""
        self._gitrepo_reflector.stop()
        self.secrets.stop()
        self.events.stop()
        self.api.close()

    def readiness(self) -> tuple[bool, str]:
        """Ready once the GitRepos and the global Secret are cached and every other Secret was tried.

        A Secret a GitRepo names but the service cannot read (RBAC, failing) does not hold the whole
        receiver unready: it stays unknown, so deliveries for that GitRepo wait (503) while every
        other GitRepo is served; the reason text names it.
        """
        if not self._gitrepo_reflector.synced.is_set():
            return False, "GitRepo cache not synced yet"
        waiting = self.secrets.waiting()
        if waiting:
            return False, "Secret cache not synced yet: " + ", ".join(sorted(waiting)[:5])
        unreadable = self.secrets.unreadable()
        detail = f"; {len(unreadable)} Secret(s) not readable: {', '.join(unreadable[:5])}" \
            if unreadable else ""
        return True, f"caches synced ({len(self.index)} GitRepos){detail}"

    def problem(self) -> str:
        """The last failure of the GitRepo cache, or of the global Secret's, while it has not synced."""
        if not self._gitrepo_reflector.synced.is_set():
            return self._gitrepo_reflector.problem
        return self.secrets.pinned_problem()

    def unanswered(self, timeout: float) -> str:
        """The API server's version endpoint, which every user may read: any HTTP answer will do."""
        try:
            self.api.request("GET", "/version", timeout=timeout)
        except ApiError as error:
            return str(error) if error.status == 0 else ""
        return ""

    def gitrepos(self) -> Sequence[GitRepo]:
        """Every cached GitRepo."""
        return self.index.all()

    def gitrepos_for(self, key: str) -> Sequence[GitRepo]:
        """Cached GitRepos whose repository key is ``key``."""
        return self.index.for_key(key)

    def secret(self, namespace: str, name: str) -> WebhookSecret | None:
        """A read Secret's data; None when it is known not to exist; SecretUnknown otherwise."""
        return self.secrets.get((namespace, name))

    def webhook_secrets(self) -> Sequence[tuple[str, str]]:
        """The global Secret, then each Secret a GitRepo names."""
        with self._lock:
            named = sorted(key for key, count in self._secret_refs.items()
                           if count > 0 and key != self._global)
        return [self._global, *named]

    def patch_status(self, gitrepo: GitRepo, commit: str, when: datetime) -> GitRepo:
        """Merge-patch ``status.webhookCommit`` and ``status.lastWebhookTime`` on the /status subresource."""
        body = {"status": {"webhookCommit": commit,
                           "lastWebhookTime": timestamp(when)}}
        obj = self._retrying(f"status of GitRepo {gitrepo.ref}", lambda timeout: self.api.request(
            "PATCH", gitrepo_path(gitrepo.namespace, gitrepo.name, "status"), body=body,
            content_type=MERGE_PATCH, timeout=timeout))
        updated = GitRepo.from_object(obj)
        self._upsert_if_newer(updated)
        return updated

    def record_event(self, gitrepo: GitRepo, reason: str, message: str, kind: str = "Normal") -> None:
        """Queue an Event on the GitRepo; written in the background, aggregated by content."""
        self.events.record(gitrepo, reason, message, kind)

    def set_polling_interval(self, gitrepo: GitRepo, interval: str | None, defaulted: bool) -> GitRepo:
        """Merge-patch ``spec.pollingInterval`` and the defaulted annotation, guarded by resourceVersion."""
        body: JsonObject = {
            "metadata": {"resourceVersion": gitrepo.resource_version,
                         "annotations": {DEFAULTED_ANNOTATION: "true" if defaulted else None}},
            "spec": {"pollingInterval": interval},
        }
        obj = self._retrying(f"polling interval of GitRepo {gitrepo.ref}", lambda timeout: self.api.request(
            "PATCH", gitrepo_path(gitrepo.namespace, gitrepo.name), body=body, content_type=MERGE_PATCH,
            timeout=timeout))
        updated = GitRepo.from_object(obj)
        self._upsert_if_newer(updated)
        return updated

    def secret_access(self) -> Mapping[str, tuple[str, ...]]:
        """The Roles this service keeps for the receiver, read from the API server."""
        try:
            return rbac.read_grants(self.api, rbac.ROLE_NAME)
        except ApiError as error:
            raise StoreError(f"reading the receiver's Secret access: {error}") from None

    def grant_secret_access(self, namespace: str, secrets: tuple[str, ...]) -> None:
        """Server-side apply the namespace's Role and RoleBinding for the receiver's ServiceAccount."""
        try:
            rbac.apply_grant(self.api, rbac.ROLE_NAME, namespace, secrets,
                             (self.settings.namespace, self.settings.receiver_service_account))
        except ApiError as error:
            raise StoreError(f"granting the receiver access to Secrets in {namespace}: {error}") from None

    def revoke_secret_access(self, namespace: str) -> None:
        """Delete the namespace's RoleBinding and Role."""
        try:
            rbac.delete_grant(self.api, rbac.ROLE_NAME, namespace)
        except ApiError as error:
            raise StoreError(f"revoking the receiver's access to Secrets in {namespace}: {error}") from None

    def leader_elector(self, name: str) -> LeaderElector:
        """A Lease of that name in the controller namespace."""
        return LeaderElector(self.api, self.settings.namespace, name)

    def _retrying(self, what: str, call: Callable[[float], R]) -> R:
        deadline = time.monotonic() + self.settings.patch_deadline
        backoff = Backoff(base=0.05, cap=2.0)
        while True:
            remaining = deadline - time.monotonic()
            try:
                return call(max(0.5, min(5.0, remaining)))
            except ApiError as error:
                if error.status == 404:
                    raise GitRepoGone(f"{what}: not found") from None
                if not error.transient:
                    raise StoreError(f"{what}: {error}") from None
                # The server may ask for a longer wait than the backoff's, never a shorter one.
                delay = min(max(error.retry_after or 0.0, backoff.next()), 5.0)
                if time.monotonic() + delay >= deadline:
                    raise StoreUnavailable(f"{what}: {error} (gave up after "
                                           f"{self.settings.patch_deadline:g}s)") from None
                log.info("retrying", extra=fields(what=what, error=str(error), delay=round(delay, 3)))
                time.sleep(delay)

    def _upsert_if_newer(self, gitrepo: GitRepo) -> None:
        # A watch event may already have brought a newer version; never go back in time.
        current = self.index.get(gitrepo.namespace, gitrepo.name)
        if current is None or _version(gitrepo) >= _version(current):
            self._gitrepo_event("MODIFIED", gitrepo)

    # GitRepo cache callbacks (reflector thread)

    def _replace_gitrepos(self, gitrepos: list[GitRepo]) -> None:
        self.index.replace_all(gitrepos)
        metrics.CACHED_OBJECTS.labels("gitrepos").set(len(gitrepos))
        metrics.CACHE_SYNCED.labels("gitrepos").set(1)
        metrics.CACHE_LAST_SYNC.labels("gitrepos").set_to_current_time()
        refs: Counter[SecretKey] = Counter(_secret_ref(g) for g in gitrepos if g.webhook_secret)
        with self._lock:
            self._secret_refs = refs
            self._sync_secret_watches()

    def _gitrepo_event(self, kind: str, gitrepo: GitRepo) -> None:
        old = self.index.get(gitrepo.namespace, gitrepo.name)
        if kind == "DELETED":
            self.index.remove(gitrepo.namespace, gitrepo.name)
        else:
            self.index.upsert(gitrepo)
        metrics.CACHED_OBJECTS.labels("gitrepos").set(len(self.index))
        before = _secret_ref(old) if old is not None and old.webhook_secret else None
        after = _secret_ref(gitrepo) if kind != "DELETED" and gitrepo.webhook_secret else None
        if before != after:
            with self._lock:
                if before is not None:
                    self._secret_refs[before] -= 1
                if after is not None:
                    self._secret_refs[after] += 1
                self._sync_secret_watches()

    def _sync_secret_watches(self) -> None:
        # Callers hold self._lock.
        self._secret_refs = Counter({key: count for key, count in self._secret_refs.items() if count > 0})
        if self.per_gitrepo_secrets:
            self.secrets.want(self._secret_refs)


def _secret_ref(gitrepo: GitRepo) -> SecretKey:
    return (gitrepo.namespace, gitrepo.webhook_secret)


def _version(gitrepo: GitRepo) -> int:
    try:
        return int(gitrepo.resource_version)
    except ValueError:
        return 0
