"""Which GitRepos a delivery concerns: URL keys looked up in the index, then the ref rule.

Pure functions over a lookup callable, shared by the receiver and ``explain``. No regular
expression is built from payload text: a payload URL becomes a key, and a key matches only the
GitRepos whose own URL normalises to exactly that key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from controller.fleet.gitrepos import GitRepo
from controller.fleet.urls import key_host, repo_key
from controller.providers import speaks_for
from controller.providers.base import Provider, PushEvent, RefChange

Lookup = Callable[[str], Sequence[GitRepo]]

_COMMIT = re.compile(r"^[0-9a-fA-F]{7,64}$")
_TAG_PREFIX = "refs/tags/"


@dataclass(frozen=True)
class Target:
    """A GitRepo a push concerns, with the ref change that concerns it."""

    gitrepo: GitRepo
    change: RefChange

    @property
    def current(self) -> bool:
        """The GitRepo already has this commit as its ``status.webhookCommit``: nothing to write."""
        return self.gitrepo.webhook_commit == self.change.commit


def payload_keys(event: PushEvent) -> tuple[str, ...]:
    """The distinct repository keys of every URL the payload offers, in payload order."""
    keys = (repo_key(url) for url in event.repo_urls)
    return tuple(dict.fromkeys(key for key in keys if key is not None))


def spoken_for(provider: Provider, keys: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split keys into those the provider may speak for and those on another provider's SaaS host
    (a GitLab delivery naming github.com is refused whatever its credential)."""
    allowed: list[str] = []
    foreign: list[str] = []
    for key in keys:
        (allowed if speaks_for(provider, key_host(key)) else foreign).append(key)
    return tuple(allowed), tuple(foreign)


def trackers(keys: Iterable[str], lookup: Lookup) -> list[GitRepo]:
    """Every GitRepo whose repository is one of ``keys``, each once, sorted by namespace/name."""
    found: dict[tuple[str, str], GitRepo] = {}
    for key in keys:
        for gitrepo in lookup(key):
            found.setdefault((gitrepo.namespace, gitrepo.name), gitrepo)
    return [found[ident] for ident in sorted(found)]


def concerns(gitrepo: GitRepo, change: RefChange) -> bool:
    """Whether this ref change is one the GitRepo follows (cheap: no message is built)."""
    if change.deleted:
        return False
    if gitrepo.revision:
        return change.tag is not None and change.tag == gitrepo.revision.removeprefix(_TAG_PREFIX)
    return change.branch == gitrepo.tracked_branch


def ref_mismatch(gitrepo: GitRepo, change: RefChange) -> str | None:
    """Why this ref change does not concern the GitRepo, or None when it does (for explain)."""
    if gitrepo.revision:
        revision = gitrepo.revision.removeprefix(_TAG_PREFIX)
        if change.tag is not None and change.tag == revision:
            return None if not change.deleted else f"tag {change.tag} was deleted"
        if _COMMIT.match(gitrepo.revision):
            return f"pinned to commit {gitrepo.revision[:12]}, which a push cannot move"
        return f"tracks tag {revision} (spec.revision), the push is {_describe(change)}"
    wanted = gitrepo.tracked_branch
    if change.branch != wanted:
        default = " (no spec.branch: Fleet follows master)" if not gitrepo.branch else ""
        return f"tracks branch {wanted}{default}, the push is {_describe(change)}"
    if change.deleted:
        return f"branch {wanted} was deleted"
    return None


def targets(event: PushEvent, candidates: Iterable[GitRepo]) -> list[Target]:
    """The candidate GitRepos the push concerns, each with the first change that concerns it."""
    chosen: list[Target] = []
    for gitrepo in candidates:
        change = next((change for change in event.changes if concerns(gitrepo, change)), None)
        if change is not None:
            chosen.append(Target(gitrepo, change))
    return chosen


def why_not(gitrepo: GitRepo, event: PushEvent) -> str:
    """Why no change of the push concerns the GitRepo, in words (built only when asked: explain)."""
    mismatches = (ref_mismatch(gitrepo, change) for change in event.changes)
    return "; ".join(dict.fromkeys(reason for reason in mismatches if reason)) or "the push changed no ref"


def _describe(change: RefChange) -> str:
    if change.branch is not None:
        return f"to branch {change.branch}"
    if change.tag is not None:
        return f"of tag {change.tag}"
    return f"of {change.ref}"
