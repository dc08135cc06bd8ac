"""The GitRepo value: the status fields Fleet writes, labels, and what it tracks."""

from __future__ import annotations

from typing import Any

import pytest

from controller.fleet.gitrepos import GitRepo

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def api_object(status: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
            "metadata": {"name": "app", "namespace": "fleet-default", **metadata},
            "spec": {"repo": "https://github.com/example/app"}, "status": status or {}}


def test_the_status_fields_fleet_writes_are_read() -> None:
    gitrepo = GitRepo.from_object(api_object({
        "commit": COMMIT, "pollingCommit": COMMIT, "webhookCommit": COMMIT,
        "lastWebhookTime": "2026-01-02T03:04:05Z", "lastPollingTriggered": "2026-01-02T03:05:05Z"}))
    assert (gitrepo.commit, gitrepo.polling_commit, gitrepo.found_commit) == (COMMIT, COMMIT, COMMIT)
    assert gitrepo.last_webhook_time == 1767323045.0
    assert gitrepo.last_polling_time == 1767323105.0


def test_equal_commits_share_one_string_so_the_cache_stays_small() -> None:
    gitrepo = GitRepo.from_object(api_object({"commit": COMMIT, "pollingCommit": COMMIT[:],
                                              "webhookCommit": "".join(COMMIT)}))
    assert gitrepo.polling_commit is gitrepo.commit
    assert gitrepo.webhook_commit is gitrepo.commit


@pytest.mark.parametrize("value", [
    pytest.param("yesterday", id="not a time"),
    pytest.param("2026-01-02T03:04:05", id="no time zone"),
    pytest.param(17, id="a number"),
])
def test_a_malformed_time_is_no_time(value: Any) -> None:
    assert GitRepo.from_object(api_object({"lastWebhookTime": value})).last_webhook_time is None


def test_labels_are_kept_sorted_and_mistyped_ones_dropped() -> None:
    gitrepo = GitRepo.from_object(api_object(labels={"tier": "front", "app": "web", "bad": 3}))
    assert gitrepo.labels == (("app", "web"), ("tier", "front"))


@pytest.mark.parametrize(
    ("revision", "pinned"),
    [
        pytest.param("", False, id="a branch"),
        pytest.param("v1.2.0", False, id="a tag"),
        pytest.param(COMMIT[:12], True, id="a short commit"),
        pytest.param(COMMIT, True, id="a full commit"),
    ],
)
def test_a_revision_of_hex_digits_pins_a_commit(revision: str, pinned: bool) -> None:
    assert GitRepo("ns", "app", "https://x/y", revision=revision).pinned is pinned


@pytest.mark.parametrize(("branch", "revision", "tracks"), [
    ("", "", "branch master"),
    ("release", "", "branch release"),
    ("release", "v1.2.0", "tag v1.2.0"),
    ("", "refs/tags/v1.2.0", "tag v1.2.0"),
    ("", COMMIT, f"pinned {COMMIT[:8]}"),
])
def test_what_a_gitrepo_tracks_is_said_one_way(branch: str, revision: str, tracks: str) -> None:
    """status and explain both say it so (explain said "revision v1.2.0" where status said "tag")."""
    assert GitRepo("ns", "app", "https://x/y", branch=branch, revision=revision).tracks == tracks
