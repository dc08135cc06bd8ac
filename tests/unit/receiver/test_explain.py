"""``explain`` reports what the receiver would do with a delivery, for every GitRepo, without writing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from controller.receiver.explain import ExplainError, explain
from controller.settings import Settings
from controller.store.offline import OfflineStore
from support.paths import EXAMPLE_GITREPOS
from unit.receiver.objects import C, body, github_push, gitrepo, hmac_hex, secret

EXAMPLE_GITHUB_SECRET = "IsWishesWereHorsesWedAllBeEatingSteak!"
SIGNATURE = "sha256=abcee8ae5f5c28fc2e4d2a0ffe46115bf9dc9d7c2e34592846d9361fffb864d5"
SETTINGS = Settings()


@pytest.fixture
def example_store() -> OfflineStore:
    return OfflineStore.from_file(str(EXAMPLE_GITREPOS))


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in report["gitrepos"]}


def _github(payload: bytes, store: OfflineStore, *headers: tuple[str, str],
            settings: Settings = SETTINGS) -> dict[str, Any]:
    return explain("github", [("X-GitHub-Event", "push"), *headers], payload, store, settings)


def test_a_signed_push_patches_the_gitrepo_tracking_its_branch(
    example_store: OfflineStore, payload: Callable[[str], bytes]
) -> None:
    report = _github(payload("github/push.json"), example_store, ("X-Hub-Signature-256", SIGNATURE))

    assert report["answer"]["status"] == 200
    assert report["answer"]["summary"] == {"patched": 1, "current": 0, "failed": 0, "unauthorized": 0}
    assert report["signature"]["status"] == "verified"
    sample = _by_name(report)["sample-app"]
    assert (sample["match"], sample["result"]) == (True, "patched")
    assert sample["ref_change"]["commit"] == "fd489864e7642b48eaad6e3f155c10e46810ec72"


def test_every_gitrepo_is_listed_with_why_it_does_not_match(
    example_store: OfflineStore, payload: Callable[[str], bytes]
) -> None:
    report = _github(payload("github/push.json"), example_store, ("X-Hub-Signature-256", SIGNATURE))
    entries = _by_name(report)

    assert set(entries) == {"sample-app", "sample-app-release", "diaspora", "example-v1", "fleet-examples",
                            "gogs-webhooks", "gitea-example", "bitbucket-example", "bitbucket-server-example",
                            "fabrikam"}
    release = entries["sample-app-release"]
    assert (release["match"], release["mismatch"]) == (False, "ref")
    assert "tracks branch release" in release["reason"]
    examples = entries["fleet-examples"]
    assert (examples["match"], examples["mismatch"]) == (False, "repository")
    assert examples["url"]["key"] == "github.com/rancher/fleet-examples"
    assert examples["url"]["payload_keys"] == ["github.com/binkkatal/sample_app"]


def test_the_event_is_shown_with_its_urls_keys_and_refs(
    example_store: OfflineStore, payload: Callable[[str], bytes]
) -> None:
    event = _github(payload("github/push.json"), example_store)["event"]
    assert (event["kind"], event["event"]) == ("push", "push")
    assert {"url": "git@github.com:binkkatal/sample_app.git", "key": "github.com/binkkatal/sample_app"} \
        in event["repositories"]
    assert event["refs"] == [{"ref": "refs/heads/master",
                              "commit": "fd489864e7642b48eaad6e3f155c10e46810ec72",
                              "branch": "master", "tag": None, "deleted": False}]


@pytest.mark.parametrize(("objects", "headers", "status", "answer"), [
    pytest.param([secret(github="k")], [("X-Hub-Signature-256", "sha256=" + hmac_hex("k", github_push()))],
                 "verified", 200, id="verified"),
    pytest.param([secret(github="k")], [("X-Hub-Signature-256", "sha256=" + hmac_hex("x", github_push()))],
                 "failed", 401, id="failed"),
    pytest.param([secret(github="k")], [], "missing", 401, id="missing"),
    pytest.param([secret(gitlab="k")], [], "no-key", 401, id="secret without the provider's key"),
    pytest.param([], [], "no-secret", 200, id="no secret"),
])
def test_the_signature_status_is_reported_against_the_secret_that_applies(
    objects: list[dict[str, Any]], headers: list[tuple[str, str]], status: str, answer: int
) -> None:
    store = OfflineStore([gitrepo(branch="main"), *objects], "test")
    report = _github(github_push(), store, *headers, settings=Settings(namespace="default"))
    assert report["signature"]["status"] == status
    assert report["answer"]["status"] == answer


def test_no_secret_value_appears_in_the_report(
    example_store: OfflineStore, payload: Callable[[str], bytes]
) -> None:
    for signature in ([], [SIGNATURE], ["sha256=" + "0" * 64]):
        headers = [("X-Hub-Signature-256", value) for value in signature]
        text = json.dumps(_github(payload("github/push.json"), example_store, *headers))
        assert EXAMPLE_GITHUB_SECRET not in text
        assert "sampleToken!" not in text


def test_the_secret_of_each_gitrepo_is_named_with_whether_it_exists() -> None:
    store = OfflineStore([gitrepo("own", branch="main", webhook_secret="mine"),
                          secret("mine", "default", github="k"),
                          gitrepo("lost", branch="main", webhook_secret="gone")], "test")
    entries = _by_name(_github(github_push(), store, settings=Settings(namespace="default")))
    assert entries["own"]["secret"] | {"signature": None} == {
        "secret": "default/mine", "source": "spec.webhookSecret", "exists": True, "applies": True,
        "signature": None, "key": ""}
    lost = entries["lost"]["secret"]
    assert (lost["secret"], lost["exists"]) == ("default/gone", False)


def test_a_gitrepo_already_at_the_commit_is_current() -> None:
    store = OfflineStore([gitrepo(branch="main", webhook_commit=C)], "test")
    entry = _by_name(_github(github_push(), store))["test"]
    assert (entry["match"], entry["result"]) == (True, "current")


def test_explaining_writes_nothing() -> None:
    store = OfflineStore([gitrepo(branch="main")], "test")
    _github(github_push(), store)
    stored = store.object("default", "test")
    assert stored is not None and (stored.get("status"), store.events) == (None, [])


def test_a_non_push_event_is_ignored_for_every_gitrepo() -> None:
    store = OfflineStore([gitrepo(branch="main")], "test")
    report = explain("github", [("X-GitHub-Event", "issues")], github_push(), store, SETTINGS)
    assert (report["answer"]["status"], report["answer"]["outcome"]) == (200, "ignored")
    assert _by_name(report)["test"]["mismatch"] == "event"


def test_a_missing_event_header_is_named_instead_of_failing() -> None:
    store = OfflineStore([gitrepo(branch="main")], "test")
    report = explain("github", [], github_push(), store, SETTINGS)
    assert any("X-GitHub-Event is missing" in warning for warning in report["warnings"])
    assert report["answer"]["status"] == 400


def test_a_delivery_the_receiver_would_give_to_another_provider_is_flagged() -> None:
    store = OfflineStore([], "test")
    report = explain("github", [("X-GitHub-Event", "push"), ("X-Gogs-Event", "push")], github_push(), store,
                     SETTINGS)
    assert any("as gogs" in warning for warning in report["warnings"])


def test_an_unknown_provider_is_an_error_listing_the_valid_ones() -> None:
    with pytest.raises(ExplainError, match="choose one of azure-devops, bitbucket, bitbucket-server"):
        explain("gerrit", [], b"{}", OfflineStore([], "test"), SETTINGS)


@pytest.mark.parametrize(("data", "headers", "expected"), [
    pytest.param(b"{not json", [], "not valid JSON", id="not JSON"),
    pytest.param(b"", [], "empty body", id="empty"),
    pytest.param(github_push(), [("Content-Type", "text/plain")], "unsupported Content-Type",
                 id="text/plain"),
])
def test_a_payload_the_provider_cannot_read_is_an_error(
    data: bytes, headers: list[tuple[str, str]], expected: str
) -> None:
    with pytest.raises(ExplainError, match=expected):
        explain("github", [("X-GitHub-Event", "push"), *headers], data, OfflineStore([], "test"), SETTINGS)


def test_a_tag_push_explains_the_gitrepo_pinned_to_that_tag(
    example_store: OfflineStore, payload: Callable[[str], bytes]
) -> None:
    report = explain("gitlab", [("X-Gitlab-Event", "Tag Push Hook"), ("X-Gitlab-Token", "sampleToken!")],
                     payload("gitlab/tag-event.json"), example_store, SETTINGS)
    assert _by_name(report)["example-v1"]["result"] == "patched"


def test_the_report_is_json_serialisable(example_store: OfflineStore) -> None:
    json.dumps(explain("bitbucket", [("X-Event-Key", "repo:push")], body({"push": {"changes": []}}),
                       example_store, SETTINGS))
