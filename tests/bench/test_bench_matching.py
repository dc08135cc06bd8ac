"""(a) Matching scale: the index against Fleet's regex-per-payload-URL scan, 10 to 100k GitRepos."""

from __future__ import annotations

import gc
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest

from bench.benchkit import GITHUB_SECRET, Report, commit_for, github_push, percentile, us
from controller.fleet.gitrepos import GitRepo
from controller.fleet.secrets import CONTROLLER_NAMESPACE, GLOBAL_SECRET, WebhookSecret
from controller.providers.base import PushEvent
from controller.providers.github import GITHUB
from controller.receiver import matching
from controller.receiver.pipeline import Delivery, Receiver
from controller.settings import Settings
from controller.store.index import GitRepoIndex

SIZES = (10, 1_000, 10_000, 100_000)
GLOBAL = (CONTROLLER_NAMESPACE, GLOBAL_SECRET)
HOT_REPO = "https://github.com/hot-org/hot-repo"
HOT_SPELLINGS = (
    "https://github.com/hot-org/hot-repo",
    "https://github.com/hot-org/hot-repo.git",
    "git@github.com:hot-org/hot-repo.git",
    "ssh://git@github.com/hot-org/hot-repo",
    "https://GitHub.com/Hot-Org/Hot-Repo",
)
SAMPLES_INDEX = 3000
SAMPLES_HANDLE = 1000
ROUNDS = 10


# --- synthetic GitRepos ------------------------------------------------------------------------------


def _spelling(rng: random.Random, host: str, path: str) -> str:
    shape = rng.random()
    if shape < 0.45:
        return f"https://{host}/{path}"
    if shape < 0.7:
        return f"https://{host}/{path}.git"
    if shape < 0.9:
        return f"git@{host}:{path}.git"
    return f"ssh://git@{host}:22/{path}.git"


def synthetic_gitrepos(count: int, seed: int = 7) -> list[GitRepo]:
    """``count`` GitRepos, each on its own repository, over public and self-hosted hosts and many orgs."""
    rng = random.Random(seed)
    corp_hosts = [f"git.corp{n}.example.com" for n in range(20)]
    orgs = max(1, count // 25)
    gitrepos = []
    for number in range(count):
        draw = rng.random()
        org = f"org-{rng.randrange(orgs)}"
        if draw < 0.5:
            repo = _spelling(rng, "github.com", f"{org}/repo-{number}")
        elif draw < 0.7:
            repo = _spelling(rng, "gitlab.com", f"{org}/team-{number % 7}/repo-{number}")
        elif draw < 0.8:
            repo = _spelling(rng, "bitbucket.org", f"{org}/repo-{number}")
        elif draw < 0.85:
            repo = f"https://dev.azure.com/{org}/project-{number % 5}/_git/repo-{number}"
        else:
            repo = _spelling(rng, rng.choice(corp_hosts), f"{org}/repo-{number}")
        branch = rng.choice(("main", "main", "main", "", "release"))
        gitrepos.append(
            GitRepo(
                namespace=f"fleet-{number % 40}",
                name=f"gitrepo-{number}",
                repo=repo,
                branch=branch,
                resource_version="1",
            )
        )
    return gitrepos


def hot_gitrepos() -> list[GitRepo]:
    """50 GitRepos tracking branch main of one repository, in several spellings and namespaces."""
    return [
        GitRepo(
            namespace=f"team-{n % 10}",
            name=f"hot-{n}",
            repo=HOT_SPELLINGS[n % len(HOT_SPELLINGS)],
            branch="main",
            resource_version="1",
        )
        for n in range(50)
    ]


def single_targets(gitrepos: Sequence[GitRepo]) -> list[str]:
    """Repository URLs (https form) of GitHub GitRepos on branch main: a push there matches exactly one."""
    found = []
    for gitrepo in gitrepos:
        if gitrepo.branch == "main" and "github.com" in gitrepo.repo and "hot-" not in gitrepo.name:
            path = gitrepo.repo.split("github.com", 1)[1].lstrip(":/").removesuffix(".git")
            found.append(f"https://github.com/{path}")
    return found


# --- Fleet's approach: for each payload URL it builds one case-insensitive regex (scheme prefixes,
# the host literal, any port, the escaped path, an optional .git, anchored at the end) and searches
# every GitRepo's spec.repo with it, then applies the branch rule (pkg/webhook/webhook.go, v0.16).

_FLEET_PREFIX = r"(?:http://|https://|ssh://(?:\w+@)?|git@ssh\.|git@|\w+@)"


def fleet_pattern(payload_url: str) -> re.Pattern[str]:
    """The regex Fleet builds from one payload URL: host literal, any port, escaped path, optional .git."""
    parts = urlsplit(payload_url)
    path = re.escape(parts.path[1:]).replace(re.escape("/_git/"), r"(?:/_git)?/", 1)
    return re.compile(
        _FLEET_PREFIX
        + re.escape(parts.hostname or "")
        + r"(?::[0-9]+)?[/:](?:v[0-9]/)?"
        + path
        + r"(?:\.git)?$",
        re.IGNORECASE,
    )


def fleet_match(event: PushEvent, gitrepos: Sequence[GitRepo]) -> list[GitRepo]:
    """Fleet's loop: a pattern per payload URL (the web and clone URL), tested against every GitRepo."""
    patterns = [fleet_pattern(url) for url in event.repo_urls[:2]]
    branches = {change.branch for change in event.changes}
    seen: dict[tuple[str, str], GitRepo] = {}
    for pattern in patterns:
        for gitrepo in gitrepos:
            if gitrepo.revision or (gitrepo.namespace, gitrepo.name) in seen:
                continue
            if pattern.search(gitrepo.repo) and (not gitrepo.branch or gitrepo.branch in branches):
                seen[(gitrepo.namespace, gitrepo.name)] = gitrepo
    return list(seen.values())


# --- the service's approach -----------------------------------------------------------------------


def index_match(event: PushEvent, index: GitRepoIndex) -> list[matching.Target]:
    keys = matching.payload_keys(event)
    return matching.targets(event, matching.trackers(keys, index.for_key))


class NoWriteStore:
    """A Store over a GitRepoIndex whose writes do nothing: the receiver's full path minus the API."""

    offline = False
    description = "bench (no writes)"

    def __init__(self, index: GitRepoIndex) -> None:
        self.index = index
        self._secrets = {GLOBAL: WebhookSecret({"github": GITHUB_SECRET.encode()})}

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def readiness(self) -> tuple[bool, str]:
        return True, "bench"

    def problem(self) -> str:
        return ""

    def unanswered(self, timeout: float) -> str:
        return ""

    def gitrepos(self) -> Sequence[GitRepo]:
        return self.index.all()

    def gitrepos_for(self, key: str) -> Sequence[GitRepo]:
        return self.index.for_key(key)

    def secret(self, namespace: str, name: str) -> WebhookSecret | None:
        return self._secrets.get((namespace, name))

    def webhook_secrets(self) -> Sequence[tuple[str, str]]:
        return [GLOBAL]

    def patch_status(self, gitrepo: GitRepo, commit: str, when: datetime) -> GitRepo:
        return gitrepo

    def record_event(self, gitrepo: GitRepo, reason: str, message: str, kind: str = "Normal") -> None:
        return None

    def set_polling_interval(self, gitrepo: GitRepo, interval: str | None, defaulted: bool) -> GitRepo:
        return gitrepo

    def secret_access(self) -> Mapping[str, tuple[str, ...]]:
        return {}

    def grant_secret_access(self, namespace: str, secrets: tuple[str, ...]) -> None:
        return None

    def revoke_secret_access(self, namespace: str) -> None:
        return None

    def leader_elector(self, name: str) -> None:
        return None


# --- timing ---------------------------------------------------------------------------------------


def _time(samples: int, call: Callable[[int], Any]) -> list[float]:
    durations = []
    gc.collect()
    for number in range(samples):
        started = time.perf_counter()
        call(number)
        durations.append(time.perf_counter() - started)
    return durations


def _events(urls: Sequence[str], count: int, label: str) -> list[tuple[dict[str, str], bytes, PushEvent]]:
    made = []
    for number in range(count):
        headers, body = github_push(urls[number % len(urls)], commit_for(label, number), f"{label}-{number}")
        lowered = {name.lower(): value for name, value in headers.items()}
        made.append((lowered, body, GITHUB.parse(lowered, body)))
    return made


@pytest.mark.timeout(600)
def test_matching_scale(report: Report) -> None:
    section = report.section(
        "a",
        "a. Matching scale: index lookup against Fleet's regex scan",
        [
            "GitRepos cached",
            "matches",
            "index p50 µs",
            "index p99 µs",
            "Receiver.handle p50 µs",
            "Receiver.handle p99 µs",
            "Fleet regex p50 µs",
            "Fleet regex p99 µs",
            "speed-up (p50)",
        ],
    )
    section.notes += [
        "In process, no HTTP. N synthetic GitRepos, each on its own repository (50 % github.com, 20 % "
        "gitlab.com subgroups, 10 % bitbucket.org, 5 % dev.azure.com, 15 % over 20 self-hosted hosts; "
        "N/25 orgs; https, https+.git, scp and ssh:// spellings; branches main/master/release), "
        "plus 50 GitRepos "
        "tracking one hot repository in five spellings. A push to one ordinary repository matches 1; a push "
        "to the hot repository matches 50.",
        "**index** = the receiver's matching code: `matching.payload_keys` + `trackers` (lookup "
        "`GitRepoIndex.for_key`) + `targets`, on a pre-parsed GitHub push event (3 payload URLs).",
        "**Receiver.handle** = the whole pipeline on the raw delivery (detect, parse, HMAC-SHA256 verify "
        "against the global secret, plan, duplicate check, answer) with a store whose status patch and "
        "event are no-ops.",
        "**Fleet regex** = Fleet's matching (pkg/webhook/webhook.go): one case-insensitive regex per "
        "payload URL "
        "(web and clone URL, as Fleet main), searched in every GitRepo's `spec.repo`, then the branch rule.",
        f"Samples per cell: index {SAMPLES_INDEX}, handle {SAMPLES_HANDLE} (both in {ROUNDS} rounds "
        "interleaved "
        "over the sizes, so machine noise hits every size alike), Fleet regex 2000 / (N/50), "
        "at least 10 (so at 100k the Fleet p99 is close to its maximum).",
    ]
    # Build every size first, then time the sizes in interleaved rounds: on a shared machine noise then
    # hits every size alike instead of whichever size happened to run during a busy second.
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    settings = Settings(namespace="cattle-fleet-system")
    for size in SIZES:
        background = synthetic_gitrepos(size)
        everything = background + hot_gitrepos()
        index = GitRepoIndex()
        index.replace_all(everything)
        single = single_targets(background) or [HOT_REPO]
        for matches, urls in ((1, single), (50, [HOT_REPO])):
            events = _events(urls, SAMPLES_INDEX, f"{size}-{matches}")
            assert len(index_match(events[0][2], index)) == matches
            assert len(fleet_match(events[0][2], everything)) == matches
            receiver = Receiver(
                settings,
                NoWriteStore(index),
                now=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc),
            )
            first = receiver.handle(Delivery(events[0][0], events[0][1]))
            assert first.status == 200 and first.body["summary"]["patched"] == matches, first.body
            cells[(size, matches)] = {
                "index": index,
                "everything": everything,
                "events": events,
                "receiver": receiver,
                "indexed": [],
                "handled": [],
                "next": 1,
            }
    for _ in range(ROUNDS):
        for cell in cells.values():
            events, index, receiver = cell["events"], cell["index"], cell["receiver"]
            cell["indexed"] += _time(SAMPLES_INDEX // ROUNDS, lambda n: index_match(events[n][2], index))
            offset = cell["next"]
            cell["handled"] += _time(
                SAMPLES_HANDLE // ROUNDS,
                lambda n: receiver.handle(Delivery(events[offset + n][0], events[offset + n][1])),
            )
            cell["next"] += SAMPLES_HANDLE // ROUNDS
    medians: dict[tuple[int, int], float] = {}
    baseline: dict[tuple[int, int], float] = {}
    for (size, matches), cell in cells.items():
        events, everything, indexed, handled = (
            cell["events"],
            cell["everything"],
            cell["indexed"],
            cell["handled"],
        )
        fleet_samples = max(10, min(SAMPLES_INDEX, 2000 * 50 // max(size, 50)))
        fleet = _time(fleet_samples, lambda n: fleet_match(events[n][2], everything))
        p50, fleet_p50 = percentile(indexed, 0.5), percentile(fleet, 0.5)
        medians[(size, matches)] = p50
        baseline[(size, matches)] = fleet_p50
        section.add(
            f"{size:,}",
            matches,
            us(p50),
            us(percentile(indexed, 0.99)),
            us(percentile(handled, 0.5)),
            us(percentile(handled, 0.99)),
            us(fleet_p50),
            us(percentile(fleet, 0.99)),
            f"{fleet_p50 / p50:,.0f}×",
        )
        print(
            f"  {size:>7,} GitRepos, {matches:>2} match(es): index p50 {us(p50)} µs, "
            f"Fleet p50 {us(fleet_p50)} µs",
            flush=True,
        )
    for matches in (1, 50):
        ratio = medians[(100_000, matches)] / medians[(10, matches)]
        section.target(
            f"index p50 at 100k / at 10 ≤ 1.5 ({matches} match{'es' if matches > 1 else ''})",
            f"{ratio:.2f}",
            ratio <= 1.5,
        )
        speedup = baseline[(100_000, matches)] / medians[(100_000, matches)]
        section.target(
            f"≥ 50× faster than Fleet's regex at 100k ({matches} match{'es' if matches > 1 else ''})",
            f"{speedup:,.0f}×",
            speedup >= 50,
        )
    section.print()
