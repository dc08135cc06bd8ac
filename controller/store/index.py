"""An index of GitRepos by normalised repository URL, so a delivery finds its GitRepos in O(1)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from controller.fleet.gitrepos import GitRepo
from controller.fleet.urls import repo_key


class GitRepoIndex:
    """GitRepos by ``namespace/name`` and by repository key; safe to read while another thread writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ref: dict[tuple[str, str], GitRepo] = {}
        self._by_key: dict[str, dict[tuple[str, str], GitRepo]] = {}

    def __len__(self) -> int:
        return len(self._by_ref)

    def replace_all(self, gitrepos: Iterable[GitRepo]) -> None:
        """Swap the whole content (after a list or relist)."""
        by_ref: dict[tuple[str, str], GitRepo] = {}
        by_key: dict[str, dict[tuple[str, str], GitRepo]] = {}
        for gitrepo in gitrepos:
            ident = (gitrepo.namespace, gitrepo.name)
            by_ref[ident] = gitrepo
            key = repo_key(gitrepo.repo)
            if key is not None:
                by_key.setdefault(key, {})[ident] = gitrepo
        with self._lock:
            self._by_ref, self._by_key = by_ref, by_key

    def upsert(self, gitrepo: GitRepo) -> None:
        """Add a GitRepo or replace the stored one of the same namespace and name."""
        ident = (gitrepo.namespace, gitrepo.name)
        with self._lock:
            self._unlink(ident)
            self._by_ref[ident] = gitrepo
            key = repo_key(gitrepo.repo)
            if key is not None:
                self._by_key.setdefault(key, {})[ident] = gitrepo

    def remove(self, namespace: str, name: str) -> None:
        """Forget a GitRepo (no error when absent)."""
        with self._lock:
            self._unlink((namespace, name))

    def get(self, namespace: str, name: str) -> GitRepo | None:
        """The GitRepo of that namespace and name, if indexed."""
        with self._lock:
            return self._by_ref.get((namespace, name))

    def all(self) -> Sequence[GitRepo]:
        """Every indexed GitRepo, sorted by namespace and name."""
        with self._lock:
            items = list(self._by_ref.items())
        return [gitrepo for _, gitrepo in sorted(items, key=lambda item: item[0])]

    def for_key(self, key: str) -> Sequence[GitRepo]:
        """The GitRepos whose repository URL normalises to ``key``."""
        with self._lock:
            bucket = self._by_key.get(key)
            return list(bucket.values()) if bucket else []

    def _unlink(self, ident: tuple[str, str]) -> None:
        old = self._by_ref.pop(ident, None)
        if old is None:
            return
        key = repo_key(old.repo)
        bucket = self._by_key.get(key) if key is not None else None
        if bucket is not None:
            bucket.pop(ident, None)
            if not bucket:
                del self._by_key[key]  # type: ignore[arg-type]
