"""The STATE of a GitRepo: one rule each, first match wins, from its spec and status alone."""

from __future__ import annotations

import pytest

from controller.fleet import health
from controller.fleet.gitrepos import GitRepo

A, B = "a" * 40, "b" * 40
NOW = 1_000_000.0
GRACE = 120.0


def repo(*, commit: str = A, webhook: str = A, polled: str = A, delivered: float | None = NOW - 3600,
         poll: float | None = NOW - 1800, revision: str = "") -> GitRepo:
    return GitRepo("fleet-default", "app", "https://github.com/example/app", revision=revision,
                   commit=commit, webhook_commit=webhook, polling_commit=polled,
                   last_webhook_time=delivered, last_polling_time=poll)


@pytest.mark.parametrize(
    ("gitrepo", "active", "expected"),
    [
        pytest.param(repo(), False, health.NO_WEBHOOK, id="not in webhook mode: no webhook"),
        pytest.param(repo(revision=A[:12]), True, health.NO_WEBHOOK,
                     id="pinned to a commit: no webhook, no push can move it"),
        pytest.param(repo(webhook="", delivered=None), True, health.NEVER_RECEIVED,
                     id="webhook mode, lastWebhookTime empty: never received"),
        pytest.param(repo(webhook="", delivered=None, polled=B, poll=NOW - 3 * GRACE), True,
                     health.NEVER_RECEIVED, id="never received wins over a missed push"),
        pytest.param(repo(), True, health.IN_SYNC, id="the found commit is the announced one: in sync"),
        pytest.param(repo(webhook=B, delivered=NOW - 5), True, health.WEBHOOK_PENDING,
                     id="a delivery newer than the poll, not yet deployed: webhook pending"),
        pytest.param(repo(polled=B, poll=NOW - GRACE - 1), True, health.MISSED_PUSH,
                     id="the poll found a commit no later delivery announced, past the grace: missed push"),
        pytest.param(repo(commit=B, polled=B, poll=NOW - GRACE - 1), True, health.MISSED_PUSH,
                     id="also once Fleet deployed it"),
        pytest.param(repo(commit=B, polled="", poll=NOW - GRACE - 1), True, health.MISSED_PUSH,
                     id="without pollingCommit, status.commit is what Fleet found"),
        pytest.param(repo(commit=B, polled=B, poll=NOW - GRACE + 1), True, health.IN_SYNC,
                     id="within the grace the delivery may still come: in sync"),
        pytest.param(repo(polled=B, poll=NOW - GRACE - 1, webhook="c" * 40, delivered=NOW - 10), True,
                     health.WEBHOOK_PENDING,
                     id="a delivery after that poll is not missing, Fleet has to catch up"),
        pytest.param(repo(commit=B, polled=B, poll=None), True, health.WEBHOOK_PENDING,
                     id="no poll time: no missed push can be told"),
        pytest.param(repo(commit=B, polled=B, webhook=B, poll=NOW - 3 * GRACE), True, health.IN_SYNC,
                     id="after Fleet's reset of webhookCommit the snapshot is in sync"),
    ],
)
def test_the_first_rule_that_holds_gives_the_state(gitrepo: GitRepo, active: bool, expected: str) -> None:
    assert health.state(gitrepo, webhook_mode_active=active, now=NOW, grace=GRACE) == expected


def test_every_state_is_in_the_closed_label_set() -> None:
    assert set(health.STATES) == {"in sync", "webhook pending", "missed push", "never received", "no webhook"}
