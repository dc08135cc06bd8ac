"""The Kubernetes store: watch-fed caches of GitRepos and webhook Secrets, status patches, Events.

Reads never reach the API server: GitRepos come from one cluster-wide list+watch, indexed by
repository key; Secrets from one watch per Secret the service needs (the global ``gitjob-webhook``
and, for the receiver, each Secret a GitRepo names in ``spec.webhookSecret``), each scoped by
``fieldSelector=metadata.name=…`` so no other Secret is ever listed or held.

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
from controller.fleet.secrets import GLOBAL_SECRET, decode_data
from controller.store import GitRepoGone, StoreError, StoreUnavailable, timestamp
from controller.store.events import EventRecorder
from controller.store.index import GitRepoIndex
from controller.store.kubeapi import GITREPOS, MERGE_PATCH, ApiError, KubeApi, gitrepo_path, secrets_path
from controller.store.kubeclient import KubeConfigError, api_client
from controller.store.lease import LeaderElector
from controller.store.reflector import Backoff, Collection, JsonObject, Reflector

log = logging.getLogger(__name__)

SecretKey = tuple[str, str]
SecretValue = tuple[SecretKey, dict[str, bytes]]
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
        self._lock = threading.Lock()
        self._secrets: dict[SecretKey, dict[str, bytes]] = {}
        self._secret_refs: Counter[SecretKey] = Counter()
        self._secret_reflectors: dict[SecretKey, Reflector[SecretValue | None]] = {}
        self._gitrepo_reflector = Reflector(
            "gitrepos", api, Collection(GITREPOS), GitRepo.from_object, self._replace_gitrepos,
            self._gitrepo_event, settings.resync_period)
        self._global = (settings.namespace, GLOBAL_SECRET)
        self._started = False

    @classmethod
    def connect(cls, settings: Settings, source: str, per_gitrepo_secrets: bool = True) -> KubeStore:
        """Load the client configuration (no connection, no thread yet)."""
        try:
            client = api_client(source)
        except KubeConfigError as error:
            raise StoreError(str(error)) from None
        return cls(KubeApi(client), settings, source, per_gitrepo_secrets)

    @property
    def description(self) -> str:
        """``kubernetes (SOURCE, namespace NS)``."""
        return f"kubernetes ({self.source}, controller namespace {self.settings.namespace})"

    def start(self) -> None:
        """Start the GitRepo and global Secret watches and the event recorder (idempotent)."""
        if self._started:
            return
        self._started = True
        self.events.start()
        with self._lock:
            self._watch_secret(self._global)
        self._gitrepo_reflector.start()

    def stop(self) -> None:
        """Stop every watch and the event recorder."""
        self._gitrepo_reflector.stop()
        with self._lock:
            reflectors = list(self._secret_reflectors.values())
        for reflector in reflectors:
            reflector.stop()
        self.events.stop()

    def readiness(self) -> tuple[bool, str]:
        """Ready once the GitRepos and the global Secret are cached and every other Secret was tried.

        A Secret a GitRepo names but the service may not read (RBAC) or that fails to list must not
        hold the whole receiver unready: deliveries for that GitRepo are refused (fail closed) and
        the failing watch is logged, while every other GitRepo is served.
        """
        if not self._gitrepo_reflector.synced.is_set():
            return False, "GitRepo cache not synced yet"
        with self._lock:
            waiting = [f"{ns}/{name}" for (ns, name), reflector in self._secret_reflectors.items()
                       if not (reflector.synced.is_set() if (ns, name) == self._global
                               else reflector.attempted.is_set())]
        if waiting:
            return False, "Secret cache not synced yet: " + ", ".join(sorted(waiting)[:5])
        return True, f"caches synced ({len(self.index)} GitRepos)"

    def gitrepos(self) -> Sequence[GitRepo]:
        """Every cached GitRepo."""
        return self.index.all()

    def gitrepos_for(self, key: str) -> Sequence[GitRepo]:
        """Cached GitRepos whose repository key is ``key``."""
        return self.index.for_key(key)

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """A watched Secret's data; None when it does not exist (or is not watched)."""
        with self._lock:
            return self._secrets.get((namespace, name))

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
                delay = min(error.retry_after or backoff.next(), 5.0)
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

    # Secret watches (callers hold self._lock)

    def _sync_secret_watches(self) -> None:
        if not self.per_gitrepo_secrets or not self._started:
            return
        wanted = {key for key, count in self._secret_refs.items() if count > 0} | {self._global}
        for key in wanted - self._secret_reflectors.keys():
            self._watch_secret(key)
        for key in self._secret_reflectors.keys() - wanted:
            self._secret_reflectors.pop(key).stop()
            self._secrets.pop(key, None)
        self._secret_refs = Counter({key: count for key, count in self._secret_refs.items() if count > 0})

    def _watch_secret(self, key: SecretKey) -> None:
        namespace, name = key

        def replace(values: list[SecretValue | None]) -> None:
            found = next((value for value in values if value is not None), None)
            with self._lock:
                if found is None:
                    self._secrets.pop(key, None)
                else:
                    self._secrets[key] = found[1]

        def event(kind: str, value: SecretValue | None) -> None:
            with self._lock:
                if kind == "DELETED" or value is None:
                    self._secrets.pop(key, None)
                else:
                    self._secrets[key] = value[1]

        reflector: Reflector[SecretValue | None] = Reflector(
            f"secret {namespace}/{name}", self.api,
            Collection(secrets_path(namespace), field_selector=f"metadata.name={name}"),
            _secret_value, replace, event, self.settings.resync_period)
        self._secret_reflectors[key] = reflector
        reflector.start()


def _secret_ref(gitrepo: GitRepo) -> SecretKey:
    return (gitrepo.namespace, gitrepo.webhook_secret)


def _secret_value(obj: JsonObject) -> SecretValue | None:
    metadata = obj.get("metadata") or {}
    decoded = decode_data(obj)
    for key in sorted(decoded.bad):
        log.warning("secret value cannot be decoded; key ignored",
                    extra=fields(secret=f"{metadata.get('namespace')}/{metadata.get('name')}", key=key))
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or "")), dict(decoded.values)


def _version(gitrepo: GitRepo) -> int:
    try:
        return int(gitrepo.resource_version)
    except ValueError:
        return 0
