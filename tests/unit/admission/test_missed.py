"""Missed-push detection: the pure decision as a table of status sequences, then the detector's
Events, counter, gauge and memory on the in-memory store."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from prometheus_client import REGISTRY

from controller.admission.missed import MissedPushDetector, Observation, observe
from controller.fleet.gitrepos import GitRepo
from controller.store.offline import OfflineStore

A, B, C = "a" * 40, "b" * 40, "c" * 40
T0 = 1_000_000.0
GRACE = 120.0


@dataclass(frozen=True)
class Seen:
    """The GitRepo's status at one pass, ``at`` seconds after T0."""

    at: float
    commit: str = A
    polled: str = A
    webhook: str = A
    delivered: float | None = T0 - 3600
    poll: float | None = T0 - 1800
    watched: bool = True
    uid: str = "uid-1"


def gitrepo(seen: Seen) -> GitRepo:
    return GitRepo("fleet-default", "app", "https://github.com/example/app", uid=seen.uid, commit=seen.commit,
                   polling_commit=seen.polled, webhook_commit=seen.webhook, last_webhook_time=seen.delivered,
                   last_polling_time=seen.poll)


def reported(passes: list[Seen]) -> list[tuple[float, str]]:
    """Run the passes in order; (time, commit) of each report."""
    previous: Observation | None = None
    found = []
    for seen in passes:
        previous, missed = observe(previous, gitrepo(seen), watched=seen.watched, now=T0 + seen.at,
                                   grace=GRACE)
        if missed is not None:
            found.append((seen.at, missed))
    return found


STEADY = Seen(0)
LATE = GRACE + 10  # the grace is over for a commit found at 5


@pytest.mark.parametrize(
    ("passes", "expected"),
    [
        pytest.param([STEADY, Seen(5, polled=B), Seen(LATE, polled=B)], [(LATE, B)],
                     id="polling found B, no delivery within the grace: reported once the grace is over"),
        pytest.param([STEADY, Seen(5, polled=B), Seen(LATE, polled=B), Seen(LATE + 5, polled=B),
                      Seen(LATE * 3, commit=B, polled=B)], [(LATE, B)],
                     id="reported once per commit, however many passes follow"),
        pytest.param([STEADY, Seen(5, polled=B), Seen(60, polled=B, webhook=B, delivered=T0 + 60),
                      Seen(LATE, polled=B, webhook=B, delivered=T0 + 60)], [],
                     id="a delivery announcing B within the grace: nothing"),
        pytest.param([STEADY, Seen(5, webhook=B, delivered=T0 + 5), Seen(10, commit=B, polled=B, webhook=B,
                                                                         delivered=T0 + 5),
                      Seen(LATE, commit=B, polled=B, webhook=B, delivered=T0 + 5)], [],
                     id="the delivery came first (the usual webhook path): nothing"),
        pytest.param([STEADY, Seen(5, polled=B), Seen(30, commit=B, polled=B, webhook=B),
                      Seen(LATE, commit=B, polled=B, webhook=B)], [(LATE, B)],
                     id="Fleet resetting webhookCommit after its Job is no announcement"),
        pytest.param([STEADY, Seen(5, polled=B), Seen(30, polled=B, webhook=B),
                      Seen(LATE, polled=B, webhook=B)], [],
                     id="a second delivery in the same second still announces a commit not yet deployed"),
        pytest.param([STEADY, Seen(5, polled=B, watched=False), Seen(LATE, polled=B, watched=False)], [],
                     id="polling mode: nothing"),
        pytest.param([STEADY, Seen(5, polled=B), Seen(60, polled=B, watched=False),
                      Seen(LATE, polled=B, watched=False)], [],
                     id="webhook mode turned off during the grace: nothing"),
        pytest.param([STEADY, Seen(5, polled=B), Seen(60, polled=C), Seen(LATE, polled=C),
                      Seen(60 + LATE, polled=C)], [(60 + LATE, C)],
                     id="a newer commit within the grace restarts it for that commit"),
        pytest.param([Seen(0, commit="", polled="", webhook="", delivered=None, poll=None),
                      Seen(5, polled=B, commit="", webhook="", delivered=None),
                      Seen(LATE, polled=B, commit="", webhook="", delivered=None)], [],
                     id="a new GitRepo's first commit is no push"),
        pytest.param([Seen(0, webhook="", delivered=None), Seen(5, polled=B, webhook="", delivered=None),
                      Seen(LATE, polled=B, webhook="", delivered=None)], [(LATE, B)],
                     id="never received: every commit polling finds is missed"),
        pytest.param([Seen(0, polled=B, poll=T0 - GRACE - 1)], [(0, B)],
                     id="first seen already past the grace (just took the lead): reported at once"),
        pytest.param([Seen(0, polled=B, poll=T0 - 60), Seen(LATE, polled=B, poll=T0 - 60)], [(LATE, B)],
                     id="first seen within the grace: reported when it ends"),
        pytest.param([Seen(0, polled=B, delivered=None, webhook="", poll=T0 - 3 * GRACE)], [],
                     id="first seen never received: not reported (a new leader would repeat it)"),
        pytest.param([Seen(0, polled=B, poll=T0 - 3 * GRACE, delivered=T0 - 10, webhook=C)], [],
                     id="first seen with a delivery after the poll: not reported"),
        pytest.param([STEADY, Seen(5, polled=B),
                      Seen(60, polled=B, webhook="", delivered=None, poll=T0 + 55, uid="uid-2"),
                      Seen(LATE, polled=B, webhook="", delivered=None, poll=T0 + 55, uid="uid-2")], [],
                     id="deleted and created again under the name: a new GitRepo"),
    ],
)
def test_a_commit_found_by_polling_and_never_announced_is_reported(
        passes: list[Seen], expected: list[tuple[float, str]]) -> None:
    assert reported(passes) == expected


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def metric(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def store() -> OfflineStore:
    return OfflineStore([])


def test_the_detector_records_one_warning_event_and_counts_it(store: OfflineStore) -> None:
    clock = Clock()
    detector = MissedPushDetector(store, "2m", GRACE, clock)
    before = metric("gitjob_webhook_missed_pushes_total")
    detector.run_once([gitrepo(STEADY)], webhook_mode="on", global_secret_exists=False)
    detector.run_once([gitrepo(Seen(5, polled=B))], webhook_mode="on", global_secret_exists=False)
    clock.now = T0 + LATE
    for _ in range(2):
        detector.run_once([gitrepo(Seen(LATE, polled=B))], webhook_mode="on", global_secret_exists=False)
    assert store.events == [{
        "gitrepo": "fleet-default/app", "reason": "WebhookMissed", "type": "Warning",
        "message": f"Fleet found commit {B} by polling; no webhook delivery announced it within 2m "
                   f"\u2014 check the provider's webhook and its delivery log; see `gitjob-webhook explain`"}]
    assert metric("gitjob_webhook_missed_pushes_total") == before + 1


def test_the_gauge_counts_gitrepos_by_state_and_a_follower_exports_none(store: OfflineStore) -> None:
    detector = MissedPushDetector(store, "2m", GRACE, Clock())
    in_sync = gitrepo(STEADY)
    never = replace(in_sync, name="new", webhook_commit="", last_webhook_time=None)
    pinned = replace(in_sync, name="pinned", revision=A[:12])
    detector.run_once([in_sync, never, pinned], webhook_mode="on", global_secret_exists=False)
    states = {state: metric("gitjob_webhook_gitrepos", state=state)
              for state in ("in sync", "never received", "no webhook", "missed push", "webhook pending")}
    assert states == {"in sync": 1, "never received": 1, "no webhook": 1, "missed push": 0,
                      "webhook pending": 0}
    detector.forget()
    assert metric("gitjob_webhook_gitrepos", state="in sync") == 0


def test_a_deleted_gitrepo_is_forgotten(store: OfflineStore) -> None:
    detector = MissedPushDetector(store, "2m", GRACE, Clock())
    detector.run_once([gitrepo(STEADY), replace(gitrepo(STEADY), name="other")], webhook_mode="on",
                      global_secret_exists=False)
    detector.run_once([gitrepo(STEADY)], webhook_mode="on", global_secret_exists=False)
    assert len(detector) == 1
