"""The offline store: GitRepos and Secrets from a YAML file, held and written in memory.

Used when no cluster is configured (``make run``) and by ``explain``. Writes change the in-memory
copy only; the file is never rewritten.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import yaml

from controller.fleet.gitrepos import API_VERSION, DEFAULTED_ANNOTATION, GitRepo
from controller.fleet.secrets import (CONTROLLER_NAMESPACE, GLOBAL_SECRET, WebhookSecret, decode_data,
                                      webhook_secret)
from controller.logs import fields
from controller.store import GitRepoGone, StoreError, timestamp
from controller.store.index import GitRepoIndex

log = logging.getLogger(__name__)


def _secret_values(obj: Mapping[str, Any], where: str) -> WebhookSecret:
    """A Secret's data as the API server would store it; a value it would refuse is an error here."""
    decoded = decode_data(obj)
    if decoded.malformed:
        raise StoreError(f"{where}: data and stringData must be maps of key to value")
    for key, reason in sorted(decoded.bad.items()):
        raise StoreError(f"{where}: data.{key} {reason.split(' (')[0]}")
    return webhook_secret(obj)


class OfflineStore:
    """An in-memory :class:`~controller.store.Store` loaded from GitRepo and Secret objects."""

    def __init__(self, objects: Iterable[Mapping[str, Any]], source: str = "(none)",
                 namespace: str = CONTROLLER_NAMESPACE) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._secrets: dict[tuple[str, str], WebhookSecret] = {}
        self._index = GitRepoIndex()
        self.events: list[dict[str, str]] = []
        for number, obj in enumerate(objects, start=1):
            self._add(obj, f"{source}: document {number}")
        self._index.replace_all(GitRepo.from_object(obj) for obj in self._objects.values())
        self._source = source
        self._namespace = namespace
        self._grants: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_file(cls, path: str | None, namespace: str = CONTROLLER_NAMESPACE) -> OfflineStore:
        """Load a multi-document YAML file (``kind: List`` documents are unpacked); None → empty."""
        if path is None:
            return cls([], "no file", namespace)
        try:
            with open(path, encoding="utf-8") as handle:
                documents = list(yaml.safe_load_all(handle))
        except OSError as error:
            raise StoreError(f"{path}: cannot read: {error.strerror or error}") from None
        except yaml.YAMLError as error:
            raise StoreError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
        objects: list[Mapping[str, Any]] = []
        for number, document in enumerate(documents, start=1):
            if document is None:
                continue
            if not isinstance(document, Mapping):
                raise StoreError(f"{path}: document {number} is not a Kubernetes object")
            if document.get("kind") == "List":
                objects.extend(item for item in document.get("items") or [] if isinstance(item, Mapping))
            else:
                objects.append(document)
        return cls(objects, path, namespace)

    @property
    def description(self) -> str:
        """``offline (FILE: N GitRepos, M Secrets)``."""
        return (f"offline ({self._source}: {len(self._index)} GitRepos, "
                f"{len(self._secrets)} Secrets)")

    @property
    def offline(self) -> bool:
        """Always True."""
        return True

    def start(self) -> None:
        """Nothing to start: everything was loaded at construction."""

    def stop(self) -> None:
        """Nothing to stop."""

    def readiness(self) -> tuple[bool, str]:
        """Always ready."""
        return True, "offline store loaded"

    def problem(self) -> str:
        """Nothing to fail."""
        return ""

    def unanswered(self, timeout: float) -> str:
        """No cluster to ask."""
        return ""

    def gitrepos(self) -> Sequence[GitRepo]:
        """Every GitRepo."""
        return self._index.all()

    def gitrepos_for(self, key: str) -> Sequence[GitRepo]:
        """GitRepos whose repository key is ``key``."""
        return self._index.for_key(key)

    def secret(self, namespace: str, name: str) -> WebhookSecret | None:
        """A loaded Secret's data."""
        with self._lock:
            return self._secrets.get((namespace, name))

    def webhook_secrets(self) -> Sequence[tuple[str, str]]:
        """The global Secret, then every Secret a GitRepo names, each once."""
        own = (self._namespace, GLOBAL_SECRET)
        named = sorted({(g.namespace, g.webhook_secret) for g in self._index.all() if g.webhook_secret})
        return [own, *(ref for ref in named if ref != own)]

    def patch_status(self, gitrepo: GitRepo, commit: str, when: datetime) -> GitRepo:
        """Set the webhook status fields on the in-memory object."""
        return self._update(gitrepo, lambda obj: obj.setdefault("status", {}).update(
            webhookCommit=commit, lastWebhookTime=timestamp(when)))

    def record_event(self, gitrepo: GitRepo, reason: str, message: str, kind: str = "Normal") -> None:
        """Keep the event in memory and log it."""
        event = {"gitrepo": gitrepo.ref, "reason": reason, "message": message, "type": kind}
        with self._lock:
            self.events.append(event)
        log.info("event", extra=fields(**event))

    def set_polling_interval(self, gitrepo: GitRepo, interval: str | None, defaulted: bool) -> GitRepo:
        """Set or remove ``spec.pollingInterval`` and the defaulted annotation in memory."""
        def change(obj: dict[str, Any]) -> None:
            spec = obj.setdefault("spec", {})
            annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
            if interval is None:
                spec.pop("pollingInterval", None)
            else:
                spec["pollingInterval"] = interval
            if defaulted:
                annotations[DEFAULTED_ANNOTATION] = "true"
            else:
                annotations.pop(DEFAULTED_ANNOTATION, None)
        return self._update(gitrepo, change)

    def secret_access(self) -> Mapping[str, tuple[str, ...]]:
        """Offline, one process reads everything: the grants are only remembered."""
        return dict(self._grants)

    def grant_secret_access(self, namespace: str, secrets: tuple[str, ...]) -> None:
        """Remember the grant."""
        self._grants[namespace] = secrets

    def revoke_secret_access(self, namespace: str) -> None:
        """Forget the grant."""
        self._grants.pop(namespace, None)

    def leader_elector(self, name: str) -> None:
        """One process, one store: no election."""
        return None

    def object(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the stored GitRepo object (for tests and ``explain``)."""
        with self._lock:
            obj = self._objects.get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def _update(self, gitrepo: GitRepo, change: Any) -> GitRepo:
        with self._lock:
            obj = self._objects.get((gitrepo.namespace, gitrepo.name))
            if obj is None:
                raise GitRepoGone(f"GitRepo {gitrepo.ref} no longer exists")
            change(obj)
            metadata = obj.setdefault("metadata", {})
            metadata["resourceVersion"] = str(int(metadata.get("resourceVersion") or 0) + 1)
            updated = GitRepo.from_object(obj)
        self._index.upsert(updated)
        return updated

    def _add(self, obj: Mapping[str, Any], where: str) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        namespace = (metadata.get("namespace") if isinstance(metadata, Mapping) else None) or "default"
        if not isinstance(name, str) or not name:
            raise StoreError(f"{where}: {kind or 'object'} has no metadata.name")
        if kind == "GitRepo" and api_version == API_VERSION:
            spec = obj.get("spec")
            if not isinstance(spec, Mapping) or not isinstance(spec.get("repo"), str) or not spec["repo"]:
                raise StoreError(f"{where}: GitRepo {namespace}/{name} has no spec.repo")
            stored = copy.deepcopy(dict(obj))
            stored.setdefault("metadata", {})["namespace"] = namespace
            self._objects[(namespace, name)] = stored
        elif kind == "Secret" and api_version == "v1":
            self._secrets[(namespace, name)] = _secret_values(obj, f"{where} (Secret {namespace}/{name})")
        else:
            raise StoreError(f"{where}: {api_version}/{kind} {name} is not a GitRepo "
                             f"({API_VERSION}) or a Secret (v1)")


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} at line {mark.line + 1}" if mark is not None else str(problem)
