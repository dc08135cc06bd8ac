"""The parts of a Fleet GitRepo the service reads, as a frozen value built from the API object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "fleet.cattle.io"
VERSION = "v1alpha1"
PLURAL = "gitrepos"
API_VERSION = f"{GROUP}/{VERSION}"

# Fleet follows master when a GitRepo names neither a branch nor a revision.
DEFAULT_BRANCH = "master"
# Marks a GitRepo whose spec.pollingInterval this service set, so that only those are ever reverted.
DEFAULTED_ANNOTATION = "gitjob.fleet.cattle.io/polling-interval-defaulted"


@dataclass(frozen=True, slots=True)
class GitRepo:
    """One GitRepo: identity, what it tracks, and the status fields the receiver writes.

    Only what the service reads is kept (slots, no copy of the object), so that 100k cached
    GitRepos stay small.
    """

    namespace: str
    name: str
    repo: str
    branch: str = ""
    revision: str = ""
    webhook_secret: str = ""
    polling_interval: str | None = None
    webhook_commit: str = ""
    uid: str = ""
    resource_version: str = ""
    polling_defaulted: bool = False   # carries DEFAULTED_ANNOTATION: this service set the interval

    @property
    def ref(self) -> str:
        """``namespace/name``, the GitRepo's identity in logs and responses."""
        return f"{self.namespace}/{self.name}"

    @property
    def tracked_branch(self) -> str | None:
        """The branch whose pushes concern this GitRepo, or None when it follows a revision."""
        if self.revision:
            return None
        return self.branch or DEFAULT_BRANCH

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> GitRepo:
        """Build from a GitRepo API object, tolerating missing or mistyped optional fields."""
        metadata = _mapping(obj.get("metadata"))
        spec = _mapping(obj.get("spec"))
        status = _mapping(obj.get("status"))
        interval = spec.get("pollingInterval")
        return cls(
            namespace=_text(metadata.get("namespace")) or "default",
            name=_text(metadata.get("name")),
            repo=_text(spec.get("repo")),
            branch=_text(spec.get("branch")),
            revision=_text(spec.get("revision")),
            webhook_secret=_text(spec.get("webhookSecret")),
            polling_interval=None if interval is None else str(interval),
            webhook_commit=_text(status.get("webhookCommit")),
            uid=_text(metadata.get("uid")),
            resource_version=_text(metadata.get("resourceVersion")),
            polling_defaulted=_mapping(metadata.get("annotations")).get(DEFAULTED_ANNOTATION) == "true",
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
