"""Webhook health of one GitRepo at one moment, from its own spec and status (pure).

The STATE column of ``gitjob-webhook status`` and the gauge ``gitjob_webhook_gitrepos{state}``.
Fleet writes ``status.commit`` (deployed), ``status.pollingCommit`` and
``status.lastPollingTriggered`` (its polls); the receiver writes ``status.webhookCommit`` and
``status.lastWebhookTime`` (deliveries). The first rule that holds wins:

1. ``no webhook``: webhook mode does not apply to the GitRepo (``resolve_webhook_mode``), or it is
   pinned to a commit, which no push moves: Fleet's polling is all there is.
2. ``never received``: webhook mode, and ``lastWebhookTime`` is empty: no delivery ever reached it.
3. ``missed push``: Fleet's last poll is newer than the last delivery and found a commit
   (``pollingCommit``, else ``commit``) that ``webhookCommit`` does not name, more than the grace
   period (``--missed-push-grace``) ago. Within the grace the delivery may still come: ``in sync``.
4. ``webhook pending``: ``webhookCommit`` is set and differs from ``commit``: a delivery announced a
   commit Fleet has not deployed yet (Fleet fetches it within seconds).
5. ``in sync``: otherwise.

This is a snapshot: once its Job ran, Fleet resets ``webhookCommit`` to the deployed commit, after
which a missed push looks ``in sync``. The leader's detector (:mod:`controller.admission.missed`)
follows the changes instead and records the ``WebhookMissed`` Event that outlives that moment.
"""

from __future__ import annotations

from typing import Final

from controller.fleet.gitrepos import GitRepo

__all__ = ["IN_SYNC", "MISSED_PUSH", "NEVER_RECEIVED", "NO_WEBHOOK", "STATES", "WEBHOOK_PENDING",
           "state", "unannounced_since", "watched"]

IN_SYNC: Final = "in sync"
WEBHOOK_PENDING: Final = "webhook pending"
MISSED_PUSH: Final = "missed push"
NEVER_RECEIVED: Final = "never received"
NO_WEBHOOK: Final = "no webhook"

STATES: Final = (IN_SYNC, WEBHOOK_PENDING, MISSED_PUSH, NEVER_RECEIVED, NO_WEBHOOK)
"""Every state, in the order summaries list them (the gauge's closed label set)."""


def watched(gitrepo: GitRepo, webhook_mode_active: bool) -> bool:
    """Whether deliveries are expected for this GitRepo: webhook mode, and not pinned to a commit."""
    return webhook_mode_active and not gitrepo.pinned


def unannounced_since(gitrepo: GitRepo) -> float | None:
    """When Fleet's last poll found a commit that no later delivery announced; None if there is none.

    The poll must be newer than the last delivery: a delivery newer than the poll is one Fleet has
    still to catch up with (``webhook pending``), not one that is missing.
    """
    found, polled = gitrepo.found_commit, gitrepo.last_polling_time
    if not found or found == gitrepo.webhook_commit or polled is None:
        return None
    delivered = gitrepo.last_webhook_time
    if delivered is not None and delivered >= polled:
        return None
    return polled


def state(gitrepo: GitRepo, *, webhook_mode_active: bool, now: float, grace: float) -> str:
    """The GitRepo's state (one of :data:`STATES`) at ``now`` (seconds since the epoch)."""
    if not watched(gitrepo, webhook_mode_active):
        return NO_WEBHOOK
    if gitrepo.last_webhook_time is None:
        return NEVER_RECEIVED
    since = unannounced_since(gitrepo)
    if since is not None:
        return MISSED_PUSH if now - since > grace else IN_SYNC
    if gitrepo.webhook_commit and gitrepo.webhook_commit != gitrepo.commit:
        return WEBHOOK_PENDING
    return IN_SYNC
