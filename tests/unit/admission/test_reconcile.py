"""The reconcile plan: which GitRepos get the webhook-mode interval, and which are reverted."""

from __future__ import annotations

import pytest

from controller.fleet.gitrepos import GitRepo
from controller.admission.reconcile import plan


def repo(name: str, interval: str | None = None, ours: bool = False, webhook_secret: str = "") -> GitRepo:
    return GitRepo(
        "fleet-default",
        name,
        "https://github.com/example/app",
        polling_interval=interval,
        polling_defaulted=ours,
        webhook_secret=webhook_secret,
    )


@pytest.mark.parametrize(
    ("gitrepo", "mode", "global_secret", "expected"),
    [
        pytest.param(repo("a"), "auto", True, ("1h", True), id="no interval, global secret: defaulted"),
        pytest.param(repo("a"), "auto", False, None, id="no interval, no secret: left alone"),
        pytest.param(
            repo("a", webhook_secret="mine"),
            "auto",
            False,
            ("1h", True),
            id="no interval, own webhookSecret: defaulted",
        ),
        pytest.param(repo("a"), "on", False, ("1h", True), id="mode on: defaulted without a secret"),
        pytest.param(repo("a"), "off", True, None, id="mode off: never defaulted"),
        pytest.param(repo("a", "15s"), "on", True, None, id="explicit interval kept in webhook mode"),
        pytest.param(
            repo("a", "1h", ours=True), "auto", False, (None, False), id="ours, mode turned off: reverted"
        ),
        pytest.param(
            repo("a", "1h0m0s", ours=True),
            "off",
            True,
            (None, False),
            id="ours as the API server normalises it: reverted",
        ),
        pytest.param(
            repo("a", "2h", ours=True), "auto", False, None, id="ours but changed by an operator: kept"
        ),
        pytest.param(repo("a", "1h"), "auto", False, None, id="not ours: never reverted"),
        pytest.param(
            repo("a", "1h", ours=True), "auto", True, None, id="ours, still webhook mode: nothing to do"
        ),
    ],
)
def test_the_plan_adjusts_only_what_webhook_mode_asks(
    gitrepo: GitRepo, mode: str, global_secret: bool, expected: tuple[str | None, bool] | None
) -> None:
    changes = plan([gitrepo], webhook_mode=mode, global_secret_exists=global_secret, interval="1h")
    assert [(change.interval, change.defaulted) for change in changes] == ([expected] if expected else [])
