"""The status view: rows from GitRepos, cells, the aligned table, colour, the summary, data."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from controller.cli.status import Row, age, cells, data, rows, select, summary, table
from controller.fleet.gitrepos import GitRepo
from controller.fleet.selectors import parse_selector

A, B = "a" * 40, "b" * 40
NOW = 1_000_000.0
SYNCED = GitRepo("fleet-default", "app", "https://github.com/Example/App.git", branch="main", commit=A,
                 polling_commit=A, webhook_commit=A, last_webhook_time=NOW - 300,
                 last_polling_time=NOW - 600, polling_interval="1h", polling_defaulted=True,
                 labels=(("team", "web"),))
MISSED = replace(SYNCED, name="missed", polling_commit=B, last_polling_time=NOW - 200)


def view(*gitrepos: GitRepo, mode: str = "auto", global_secret: bool = True,
         secrets: dict[tuple[str, str], bool | None] | None = None) -> list[Row]:
    known = secrets or {}
    return rows(gitrepos, webhook_mode=mode, global_secret_exists=global_secret,
                secret_exists=lambda namespace, name: known.get((namespace, name), False), now=NOW, grace=120)


@pytest.mark.parametrize(
    ("gitrepo", "mode", "global_secret", "expected"),
    [
        pytest.param(SYNCED, "auto", True,
                     ["fleet-default", "app", "github.com/example/app", "branch main",
                      "webhook (global Secret)", "1h (defaulted)", "global", "5m", "in sync"],
                     id="in sync through the global Secret"),
        pytest.param(replace(SYNCED, webhook_secret="own", polling_defaulted=False), "auto", False,
                     ["fleet-default", "app", "github.com/example/app", "branch main", "webhook (own Secret)",
                      "1h", "own", "5m", "in sync"], id="its own Secret, an interval an operator chose"),
        pytest.param(replace(SYNCED, webhook_secret="own"), "auto", True,
                     ["fleet-default", "app", "github.com/example/app", "branch main", "webhook (own Secret)",
                      "1h (defaulted)", "own", "5m", "in sync"], id="its own Secret beside the global one"),
        pytest.param(replace(SYNCED, webhook_secret="gone"), "auto", False,
                     ["fleet-default", "app", "github.com/example/app", "branch main", "webhook (own Secret)",
                      "1h (defaulted)", "missing", "5m", "in sync"], id="its own Secret is missing"),
        pytest.param(replace(SYNCED, polling_interval=None, last_webhook_time=None, webhook_commit=""),
                     "auto", False,
                     ["fleet-default", "app", "github.com/example/app", "branch main",
                      "polling (no Secret)", "15s (Fleet default)", "none", "<none>", "no webhook"],
                     id="no Secret at all: polling"),
        pytest.param(replace(SYNCED, revision="v1.0.0", disable_polling=True, last_webhook_time=None), "on",
                     False, ["fleet-default", "app", "github.com/example/app", "tag v1.0.0",
                             "webhook (--webhook-mode on)", "disabled", "none", "<none>", "never received"],
                     id="a tag, polling disabled, forced on, never received"),
        pytest.param(replace(SYNCED, revision=A), "off", True,
                     ["fleet-default", "app", "github.com/example/app", "pinned aaaaaaaa",
                      "polling (--webhook-mode off)", "1h (defaulted)", "global", "5m", "no webhook"],
                     id="pinned, forced off"),
    ],
)
def test_each_column_says_what_the_gitrepo_is_and_why(gitrepo: GitRepo, mode: str, global_secret: bool,
                                                      expected: list[str]) -> None:
    (row,) = view(gitrepo, mode=mode, global_secret=global_secret, secrets={("fleet-default", "own"): True})
    assert cells(row, NOW, wide=False) == expected


def test_an_unreadable_own_secret_is_unknown() -> None:
    (row,) = view(replace(SYNCED, webhook_secret="hidden"), secrets={("fleet-default", "hidden"): None})
    assert row.secret == "unknown"


def test_wide_adds_the_commits_and_the_last_poll() -> None:
    (row,) = view(MISSED)
    assert cells(row, NOW, wide=True)[-5:] == ["missed push", "aaaaaaa", "aaaaaaa", "bbbbbbb", "3m20s"]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(-5, "0s", id="a clock ahead of ours"),
        pytest.param(45, "45s", id="seconds"),
        pytest.param(190, "3m10s", id="minutes and seconds"),
        pytest.param(1500, "25m", id="minutes"),
        pytest.param(5 * 3600 + 600, "5h10m", id="hours and minutes"),
        pytest.param(20 * 3600, "20h", id="hours"),
        pytest.param(3 * 86400 + 3600, "3d1h", id="days and hours"),
        pytest.param(40 * 86400, "40d", id="days"),
    ],
)
def test_ages_read_like_kubectl(seconds: float, expected: str) -> None:
    assert age(seconds) == expected


def test_the_table_is_sorted_aligned_and_ends_with_the_summary() -> None:
    text = table(view(replace(SYNCED, namespace="z", name="late"), replace(SYNCED, name="b-very-long-name"),
                      SYNCED), NOW)
    lines = text.splitlines()
    assert [line.split()[1] for line in lines[1:-1]] == ["app", "b-very-long-name", "late"]
    starts = {line.index(word)
              for line, word in zip(lines, ["REPO", "github.com", "github.com", "github.com"])}
    assert len(starts) == 1
    assert lines[-1] == \
        "3 GitRepos: 3 in sync, 0 webhook pending, 0 missed push, 0 never received, 0 no webhook"
    assert "\033[" not in text


def test_colour_marks_only_the_state_and_keeps_the_alignment() -> None:
    plain = table(view(SYNCED, MISSED), NOW)
    coloured = table(view(SYNCED, MISSED), NOW, colour=True)
    assert re.sub(r"\033\[[0-9;]*m", "", coloured) == plain
    assert "\033[1;31mmissed push\033[0m" in coloured


def test_the_summary_counts_every_state() -> None:
    assert summary(["missed push"]) == "1 GitRepo: 0 in sync, 0 webhook pending, 1 missed push, " \
                                       "0 never received, 0 no webhook"


def test_namespace_and_selector_choose_the_gitrepos() -> None:
    others = [replace(SYNCED, namespace="fleet-local"), replace(SYNCED, name="untagged", labels=())]
    chosen = select([SYNCED, *others], "fleet-default", parse_selector("team=web"))
    assert chosen == [SYNCED]
    assert len(select([SYNCED, *others], None, ())) == 3


def test_data_carries_full_commits_and_times() -> None:
    (item,) = data(view(SYNCED))["gitrepos"]
    assert item["commit"] == A
    assert item["lastWebhookTime"] == "1970-01-12T13:41:40Z"
    assert item["state"] == "in sync"
    assert data(view(SYNCED))["summary"]["in sync"] == 1
