"""Keeping existing GitRepos' polling in line with webhook mode.

When webhook mode turns on (the global Secret appears, or ``--webhook-mode on``), GitRepos
without ``spec.pollingInterval`` get the configured interval and the defaulted annotation, as the
admission webhook does for new ones. When it turns off, only GitRepos carrying the annotation and
still at the interval we set are reverted: an interval an operator chose is never touched. With
several replicas a Lease elects the one that acts; the same pass, on the same leader, looks for
missed pushes (:mod:`controller.admission.missed`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from controller.admission.missed import MissedPushDetector
from controller.fleet.durations import parse_go_duration
from controller.fleet.gitrepos import GitRepo
from controller.fleet.secrets import GLOBAL_SECRET
from controller.fleet.webhook_mode import resolve_webhook_mode
from controller.logs import fields
from controller.settings import Settings
from controller.admission.access import AccessSync
from controller.store import Elector, GitRepoGone, SecretUnknown, Store, StoreError

log = logging.getLogger(__name__)

LEASE_NAME = "gitjob-webhook-reconcile"


@dataclass(frozen=True)
class Change:
    """One GitRepo to adjust: the interval to set (None removes it) and whether it is ours."""

    gitrepo: GitRepo
    interval: str | None
    defaulted: bool
    why: str


def plan(gitrepos: Iterable[GitRepo], *, webhook_mode: str, global_secret_exists: bool,
         interval: str) -> list[Change]:
    """The changes that bring every GitRepo in line with webhook mode (pure)."""
    changes = []
    for gitrepo in gitrepos:
        mode = resolve_webhook_mode(gitrepo.webhook_secret, webhook_mode=webhook_mode,
                                    global_secret_exists=global_secret_exists)
        ours = gitrepo.polling_defaulted
        if mode.active and gitrepo.polling_interval is None:
            changes.append(Change(gitrepo, interval, True, f"webhook mode {mode.source}"))
        elif not mode.active and ours and _same_duration(gitrepo.polling_interval, interval):
            changes.append(Change(gitrepo, None, False, f"webhook mode off ({mode.source})"))
    return changes


def _same_duration(value: str | None, interval: str) -> bool:
    """``1h0m0s`` (as the API server may store it) and ``1h`` are the same interval."""
    if value is None:
        return False
    try:
        return parse_go_duration(value) == parse_go_duration(interval)
    except ValueError:
        return False


class Reconciler:
    """Runs :func:`plan` on the cache every ``period`` seconds, while this replica leads, keeps the
    receiver's Secret access in line with the GitRepos (:mod:`controller.admission.access`) and
    reports missed pushes (:mod:`controller.admission.missed`)."""

    def __init__(self, store: Store, settings: Settings, elector: Elector | None = None,
                 period: float = 5.0) -> None:
        self.store = store
        self.settings = settings
        self.elector = elector
        self.period = period
        self.access = AccessSync(store, settings.namespace)
        self.missed = MissedPushDetector(store, settings.missed_push_grace,
                                         parse_go_duration(settings.missed_push_grace))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconcile", daemon=True)

    def start(self) -> None:
        """Start the background pass."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stop.set()

    def run_once(self) -> list[Change]:
        """One pass: plan from the cache and apply; returns what was applied."""
        ready, _ = self.store.readiness()
        if not ready:
            return []
        self.access.run_once()
        try:
            global_secret = self.store.secret(self.settings.namespace, GLOBAL_SECRET)
        except SecretUnknown:
            return []   # webhook mode cannot be told yet; the next pass will
        gitrepos = self.store.gitrepos()
        changes = plan(gitrepos, webhook_mode=self.settings.webhook_mode,
                       global_secret_exists=global_secret is not None,
                       interval=self.settings.webhook_polling_interval)
        applied = []
        for change in changes:
            try:
                self.store.set_polling_interval(change.gitrepo, change.interval, change.defaulted)
            except GitRepoGone:
                continue
            except StoreError as error:
                # Usually a 409: the GitRepo changed meanwhile; the next pass sees the new version.
                log.info("polling interval not adjusted",
                         extra=fields(gitrepo=change.gitrepo.ref, error=str(error)))
                continue
            applied.append(change)
            log.info("polling interval adjusted", extra=fields(
                gitrepo=change.gitrepo.ref, interval=change.interval, why=change.why))
        self.missed.run_once(gitrepos, webhook_mode=self.settings.webhook_mode,
                             global_secret_exists=global_secret is not None)
        return applied

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.elector is None or self.elector.try_lead():
                    self.run_once()
                else:
                    # A new leader starts from the GitRepos' status: nothing stale is kept or exported.
                    self.missed.forget()
            except Exception:  # a bug here must not kill the thread: log it and try next period
                log.exception("reconcile pass failed")
            self._stop.wait(self.period)
