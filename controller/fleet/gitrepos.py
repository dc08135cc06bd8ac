"""The parts of a Fleet GitRepo the service reads, as a frozen value built from the API object."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GROUP = "fleet.cattle.io"
VERSION = "v1alpha1"
PLURAL = "gitrepos"
API_VERSION = f"{GROUP}/{VERSION}"

# Fleet follows master when a GitRepo names neither a branch nor a revision.
DEFAULT_BRANCH = "master"
# Marks a GitRepo whose spec.pollingInterval this service set, so that only those are ever reverted.
DEFAULTED_ANNOTATION = "gitjob.fleet.cattle.io/polling-interval-defaulted"
# A spec.revision of hex digits pins a commit (no push moves it); any other revision names a tag.
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,64}$")


@dataclass(frozen=True, slots=True)
class GitRepo:
    """One GitRepo: identity, what it tracks, and the status fields Fleet and the receiver write.

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
    disable_polling: bool = False
    commit: str = ""                  # status.commit: what Fleet deployed last
    polling_commit: str = ""          # status.pollingCommit: what Fleet's last poll found
    last_webhook_time: float | None = None      # status.lastWebhookTime, seconds since the epoch
    last_polling_time: float | None = None      # status.lastPollingTriggered, seconds since the epoch
    labels: tuple[tuple[str, str], ...] = ()    # sorted (key, value) pairs, for label selectors

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

    @property
    def pinned(self) -> bool:
        """True when ``spec.revision`` is a commit: no push concerns this GitRepo."""
        return bool(_COMMIT.match(self.revision))

    @property
    def tracks(self) -> str:
        """What it follows, in words: ``branch main``, ``tag v1.2.0`` or ``pinned 0123abcd``."""
        if self.pinned:
            return f"pinned {self.revision[:8]}"
        if self.revision:
            return f"tag {self.revision.removeprefix('refs/tags/')}"
        return f"branch {self.tracked_branch}"

    @property
    def found_commit(self) -> str:
        """The newest commit Fleet found itself: its last poll's, else the deployed one ("" if none)."""
        return self.polling_commit or self.commit

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> GitRepo:
        """Build from a GitRepo API object, tolerating missing or mistyped optional fields."""
        metadata = _mapping(obj.get("metadata"))
        spec = _mapping(obj.get("spec"))
        status = _mapping(obj.get("status"))
        interval = spec.get("pollingInterval")
        commit = _text(status.get("commit"))
        return cls(
            namespace=_text(metadata.get("namespace")) or "default",
            name=_text(metadata.get("name")),
            repo=_text(spec.get("repo")),
            branch=_text(spec.get("branch")),
            revision=_text(spec.get("revision")),
            webhook_secret=_text(spec.get("webhookSecret")),
            polling_interval=None if interval is None else str(interval),
            webhook_commit=_same(_text(status.get("webhookCommit")), commit),
            uid=_text(metadata.get("uid")),
            resource_version=_text(metadata.get("resourceVersion")),
            polling_defaulted=_mapping(metadata.get("annotations")).get(DEFAULTED_ANNOTATION) == "true",
            disable_polling=spec.get("disablePolling") is True,
            commit=commit,
            polling_commit=_same(_text(status.get("pollingCommit")), commit),
            last_webhook_time=_seconds(status.get("lastWebhookTime")),
            last_polling_time=_seconds(status.get("lastPollingTriggered")),
            labels=_labels(metadata.get("labels")),
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _same(value: str, commit: str) -> str:
    # The three commits are usually equal: one string object for all keeps a large cache small.
    return commit if value == commit else value


def _seconds(value: Any) -> float | None:
    """An RFC 3339 ``metav1.Time`` as seconds since the epoch; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _labels(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or not value:
        return ()
    # Label keys repeat across GitRepos (app.kubernetes.io/...): interned, each is held once.
    return tuple(sorted((sys.intern(key), text) for key, text in value.items()
                        if isinstance(key, str) and isinstance(text, str)))
