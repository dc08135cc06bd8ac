"""Matching: payload URLs become keys, keys find GitRepos, and the ref rule picks the ones concerned."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.receiver import matching
from controller.fleet.gitrepos import GitRepo
from controller.providers.base import EventKind, PushEvent, RefChange

C = "af69d162de5a276abc86e0686b2b44033cd3f442"


def _push(*changes: RefChange, urls: tuple[str, ...] = ("https://github.com/example/repo",)) -> PushEvent:
    return PushEvent("github", "push", EventKind.PUSH, "", urls, changes)


def _gitrepo(name: str = "test", repo: str = "https://github.com/example/repo", *, branch: str = "",
             revision: str = "", webhook_commit: str = "") -> GitRepo:
    return GitRepo("default", name, repo, branch=branch, revision=revision, webhook_commit=webhook_commit)


def test_payload_keys_are_distinct_and_in_payload_order() -> None:
    event = _push(urls=("https://github.com/Example/Repo", "git@github.com:example/repo.git",
                        "https://gitlab.com/other/repo", "not a url"))
    assert matching.payload_keys(event) == ("github.com/example/repo", "gitlab.com/other/repo")


def test_trackers_lists_each_gitrepo_once_sorted() -> None:
    b, a = _gitrepo("b"), _gitrepo("a")
    index = {"k1": [b, a], "k2": [a]}
    assert matching.trackers(["k1", "k2"], lambda key: index.get(key, [])) == [a, b]


_MAIN = {"branch": "main"}


@pytest.mark.parametrize(("spec", "change", "reason"), [
    pytest.param(_MAIN, RefChange("refs/heads/main", C), None, id="same branch"),
    pytest.param(_MAIN, RefChange("refs/heads/dev", C), "tracks branch main, the push is to branch dev",
                 id="other branch"),
    pytest.param({}, RefChange("refs/heads/main", C),
                 "tracks branch master (no spec.branch: Fleet follows master)",
                 id="no branch means master"),
    pytest.param(_MAIN, RefChange("refs/heads/main", ""), "branch main was deleted", id="deleted"),
    pytest.param({"revision": "v1"}, RefChange("refs/tags/v1", C), None, id="tag of the revision"),
    pytest.param({"revision": "v1"}, RefChange("refs/tags/v1", ""), "tag v1 was deleted", id="tag deleted"),
    pytest.param({"revision": "v1"}, RefChange("refs/tags/v2", C),
                 "tracks tag v1 (spec.revision), the push is of tag v2",
                 id="other tag"),
    pytest.param({"revision": C}, RefChange("refs/heads/master", C), "pinned to commit af69d162de5a",
                 id="pinned commit"),
    pytest.param(_MAIN, RefChange("refs/notes/x", C), "the push is of refs/notes/x", id="odd ref"),
])
def test_ref_mismatch_says_why_a_change_does_not_concern_a_gitrepo(
    spec: dict[str, str], change: RefChange, reason: str | None
) -> None:
    mismatch = matching.ref_mismatch(_gitrepo(**spec), change)
    if reason is None:
        assert mismatch is None
    else:
        assert mismatch is not None and reason in mismatch


def test_targets_take_the_first_change_that_concerns_each_gitrepo() -> None:
    main, release = _gitrepo("main", branch="main"), _gitrepo("release", branch="release")
    event = _push(RefChange("refs/heads/release", "1" * 40), RefChange("refs/heads/main", "2" * 40))

    chosen = matching.targets(event, [main, release])

    assert [(t.gitrepo.name, t.change.commit) for t in chosen] == [("main", "2" * 40), ("release", "1" * 40)]


def test_why_not_gives_every_reason_for_a_gitrepo_no_change_concerns() -> None:
    event = _push(RefChange("refs/heads/a", C), RefChange("refs/heads/b", C))
    gitrepo = _gitrepo(branch="main")
    assert matching.targets(event, [gitrepo]) == []
    assert matching.why_not(gitrepo, event) == ("tracks branch main, the push is to branch a; "
                                                "tracks branch main, the push is to branch b")


def test_a_push_without_refs_concerns_no_gitrepo() -> None:
    assert matching.targets(_push(), [_gitrepo()]) == []
    assert matching.why_not(_gitrepo(), _push()) == "the push changed no ref"


@settings(max_examples=300, deadline=None)
@given(branch=st.sampled_from(["", "main", "v1"]), revision=st.sampled_from(["", "v1", "refs/tags/v1", C]),
       ref=st.sampled_from(["refs/heads/main", "refs/heads/master", "refs/tags/v1", "refs/heads/v1",
                            "refs/pull/1/head", "main"]),
       commit=st.sampled_from([C, ""]))
def test_the_cheap_rule_and_the_explained_rule_agree(branch: str, revision: str, ref: str,
                                                     commit: str) -> None:
    """The receiver decides with `concerns`; explain explains with `ref_mismatch`: they must agree."""
    gitrepo, change = _gitrepo(branch=branch, revision=revision), RefChange(ref, commit)
    assert matching.concerns(gitrepo, change) is (matching.ref_mismatch(gitrepo, change) is None)


@pytest.mark.parametrize(("webhook_commit", "current"), [pytest.param(C, True, id="same commit"),
                                                         pytest.param("", False, id="never written"),
                                                         pytest.param("1" * 40, False, id="older commit")])
def test_a_target_is_current_when_the_gitrepo_already_has_the_commit(
    webhook_commit: str, current: bool
) -> None:
    target = matching.Target(_gitrepo(webhook_commit=webhook_commit), RefChange("refs/heads/master", C))
    assert target.current is current
