"""Missed pushes: a commit Fleet found by polling that no webhook delivery announced in time.

The leader of the reconcile Lease looks at every cached GitRepo once per pass, keeping one small
:class:`Observation` per GitRepo; :func:`observe` (pure) turns the previous observation, the GitRepo
as it is now and the time into the next observation and the commit to report, if any.

- A delivery is seen when ``status.lastWebhookTime`` moves (the receiver writes it together with
  ``webhookCommit``); the commit it announced is the ``webhookCommit`` of that moment. Fleet writes
  ``webhookCommit`` too, resetting it to the deployed commit after a Job, but never
  ``lastWebhookTime``: that reset is not an announcement. (A second delivery in the same second
  leaves the time as it was; it still counts when ``webhookCommit`` moves to a commit Fleet has not
  deployed, which a reset never does.)
- When the commit Fleet found (``pollingCommit``, else ``commit``) changes from one commit to another
  while deliveries are expected (webhook mode, not pinned), the grace period starts, unless the last
  delivery already announced it. A delivery announcing it before the grace ends settles it; else it
  is reported once: a Warning Event ``WebhookMissed`` on the GitRepo and
  ``gitjob_webhook_missed_pushes_total``. A GitRepo's first commit is never a push.
- A GitRepo seen for the first time (the process just started, or just took the lead) is judged by
  its status alone (:func:`controller.fleet.health.unannounced_since`), so that a push missed just
  before a failover is still reported, and nothing older is.

Memory is one observation per existing GitRepo: deleted ones are forgotten at the next pass, and
everything is forgotten when the process stops leading. The GitRepo itself is never written.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller import metrics
from controller.fleet import health
from controller.fleet.gitrepos import GitRepo
from controller.fleet.webhook_mode import resolve_webhook_mode
from controller.logs import fields
from controller.store import Store

log = logging.getLogger(__name__)

REASON = "WebhookMissed"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the detector remembers of one GitRepo between passes."""

    uid: str
    found: str                    # the commit Fleet had found
    announced: str                # the commit the last delivery announced ("" before any)
    webhook_commit: str           # status.webhookCommit as last seen
    delivered_at: float | None    # status.lastWebhookTime as last seen
    since: float | None           # when ``found`` began to wait for its delivery; None: nothing waits


def observe(previous: Observation | None, gitrepo: GitRepo, *, watched: bool, now: float,
            grace: float) -> tuple[Observation, str | None]:
    """The next observation of ``gitrepo``, and the commit to report as missed (or None)."""
    found = gitrepo.found_commit
    if previous is None or previous.uid != gitrepo.uid:
        delivered_before = gitrepo.last_webhook_time is not None
        announced = gitrepo.webhook_commit if delivered_before else ""
        since = health.unannounced_since(gitrepo) if delivered_before else None
    else:
        announced = gitrepo.webhook_commit if _delivered(previous, gitrepo) else previous.announced
        since = previous.since
        if found != previous.found:
            since = now if previous.found and found else None
    if not watched or found == announced:
        since = None
    missed = None
    if since is not None and now - since > grace:
        missed, since = found, None
    return Observation(gitrepo.uid, found, announced, gitrepo.webhook_commit, gitrepo.last_webhook_time,
                       since), missed


def _delivered(previous: Observation, gitrepo: GitRepo) -> bool:
    if gitrepo.last_webhook_time != previous.delivered_at:
        return True
    return gitrepo.webhook_commit != previous.webhook_commit and gitrepo.webhook_commit != gitrepo.commit


def message(commit: str, grace: str) -> str:
    """The ``WebhookMissed`` Event's message."""
    return (f"Fleet found commit {commit} by polling; no webhook delivery announced it within {grace} "
            f"\u2014 check the provider's webhook and its delivery log; see `gitjob-webhook explain`")


class MissedPushDetector:
    """Runs :func:`observe` over the cache once per pass: Events, the counter and the state gauge."""

    def __init__(self, store: Store, grace: str, grace_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.grace = grace
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._observations: dict[tuple[str, str], Observation] = {}
        self.forget()

    def __len__(self) -> int:
        """How many GitRepos are remembered: at most those that existed at the last pass."""
        return len(self._observations)

    def run_once(self, gitrepos: Iterable[GitRepo], *, webhook_mode: str,
                 global_secret_exists: bool) -> list[tuple[GitRepo, str]]:
        """Observe every GitRepo; returns the (GitRepo, commit) pairs reported as missed."""
        now = self.clock()
        observations: dict[tuple[str, str], Observation] = {}
        states: Counter[str] = Counter()
        reported = []
        for gitrepo in gitrepos:
            mode = resolve_webhook_mode(gitrepo.webhook_secret, webhook_mode=webhook_mode,
                                        global_secret_exists=global_secret_exists)
            key = (gitrepo.namespace, gitrepo.name)
            watched = health.watched(gitrepo, mode.active)
            observations[key], missed = observe(self._observations.get(key), gitrepo, watched=watched,
                                                now=now, grace=self.grace_seconds)
            states[health.state(gitrepo, webhook_mode_active=mode.active, now=now,
                                grace=self.grace_seconds)] += 1
            if missed is not None:
                reported.append((gitrepo, missed))
        # Rebuilt from the GitRepos that exist: a deleted GitRepo's observation goes with it.
        self._observations = observations
        for state in health.STATES:
            metrics.GITREPOS_BY_STATE.labels(state).set(states[state])
        for gitrepo, commit in reported:
            metrics.MISSED_PUSHES.inc()
            log.warning("webhook missed", extra=fields(gitrepo=gitrepo.ref, commit=commit, grace=self.grace))
            self.store.record_event(gitrepo, REASON, message(commit, self.grace), "Warning")
        return reported

    def forget(self) -> None:
        """Drop every observation and export no states (this process does not lead)."""
        self._observations = {}
        for state in health.STATES:
            metrics.GITREPOS_BY_STATE.labels(state).set(0)
