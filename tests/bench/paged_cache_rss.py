"""RSS of the GitRepo cache filled by a paged list, as a real API server answers it (500 per page).

The API emulator ignores ``limit`` and answers a list in one response, so a receiver on it parses all
N GitRepos as one JSON document; a real API server pages. This runs the receiver's own list path
(``KubeStore``'s reflector: ``KubeApi.request``-style ``json.loads`` of each page, ``GitRepo.from_object``,
``GitRepoIndex.replace_all`` through ``_replace_gitrepos``) against pages made in memory, in a fresh
interpreter, and prints ``{"before": kB, "after": kB}`` as JSON.

Run: ``python tests/bench/paged_cache_rss.py N``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="utf-8") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


class PagedApi:
    """Just enough of ``KubeApi`` for a list: pages of 500 GitRepos as the API server stores them."""

    def __init__(self, count: int, page: int = 500) -> None:
        self.count, self.page = count, page

    def request(self, method: str, path: str, *, query: Any = (), timeout: float = 10.0, **_: Any) -> Any:
        token = dict(query).get("continue")
        start = int(token) if token else 0
        end = min(self.count, start + self.page)
        items = [
            {
                "apiVersion": "fleet.cattle.io/v1alpha1",
                "kind": "GitRepo",
                "metadata": {
                    "name": f"mem-{n}",
                    "namespace": ("fleet-default", "fleet-local")[n % 2],
                    "uid": f"3d9c8c4b-11e8-4595-92ce-{n:012d}",
                    "generation": 1,
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "resourceVersion": str(n + 10),
                },
                "spec": {"repo": f"https://github.com/org-{n % 997}/repo-{n}", "branch": "main"},
            }
            for n in range(start, end)
        ]
        body = json.dumps(
            {
                "metadata": {"resourceVersion": "1", "continue": str(end) if end < self.count else ""},
                "items": items,
            }
        ).encode()
        return json.loads(body)


def main() -> None:
    count = int(sys.argv[1])
    from controller.settings import Settings
    from controller.store.kube import KubeStore

    store = KubeStore(PagedApi(count), Settings(), "bench")  # type: ignore[arg-type]
    before = _rss_kb()
    store._gitrepo_reflector._list()
    assert len(store.index) == count
    print(json.dumps({"before": before, "after": _rss_kb()}))


if __name__ == "__main__":
    main()
