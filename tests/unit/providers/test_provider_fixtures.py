"""Every recorded provider payload is detected, parsed and, for pushes, read exactly."""

from __future__ import annotations

import pytest

from controller.providers import detect
from controller.providers.base import EventKind, PushEvent, RefChange
from unit.providers.provider_fixtures import DELIVERIES, Delivery, fixture


def parse(delivery: Delivery) -> PushEvent:
    provider = detect(delivery.headers, delivery.body)
    assert provider is not None, f"{delivery.name} was not recognised"
    return provider.parse(delivery.headers, delivery.body)


PUSHES = [
    pytest.param(
        "github/push.json",
        (
            "https://github.com/binkkatal/sample_app",
            "https://github.com/binkkatal/sample_app.git",
            "git@github.com:binkkatal/sample_app.git",
        ),
        (RefChange("refs/heads/master", "fd489864e7642b48eaad6e3f155c10e46810ec72"),),
        id="github push: html, clone and ssh URLs, one branch",
    ),
    pytest.param(
        "gitlab/push-event.json",
        (
            "http://example.com/mike/diaspora",
            "http://example.com/mike/diaspora.git",
            "git@example.com:mike/diaspora.git",
        ),
        (RefChange("refs/heads/master", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),),
        id="gitlab Push Hook",
    ),
    pytest.param(
        "gitlab/tag-event.json",
        (
            "http://example.com/jsmith/example",
            "http://example.com/jsmith/example.git",
            "git@example.com:jsmith/example.git",
        ),
        (RefChange("refs/tags/v1.0.0", "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"),),
        id="gitlab Tag Push Hook",
    ),
    pytest.param(
        "gitlab/system-push-event.json",
        (
            "http://example.com/mike/diaspora",
            "http://example.com/mike/diaspora.git",
            "git@example.com:mike/diaspora.git",
        ),
        (RefChange("refs/heads/master", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),),
        id="gitlab System Hook push (Fleet rejects it with 500)",
    ),
    pytest.param(
        "gitlab/system-tag-event.json",
        (
            "http://example.com/jsmith/example",
            "http://example.com/jsmith/example.git",
            "git@example.com:jsmith/example.git",
        ),
        # checkout_sha (the tagged commit) wins over `after` (82b3d5…, the tag object).
        (RefChange("refs/tags/v1.0.0", "5937ac0a7beb003549fc5fd26fc247adbce4a52e"),),
        id="gitlab System Hook tag push uses checkout_sha",
    ),
    pytest.param(
        "bitbucket/repo-push.json",
        ("https://api.bitbucket.org/bitbucket/bitbucket",),
        (RefChange("refs/heads/name-of-branch", "709d658dc5b6d6afcd46049c2f332ee3f515a67d"),),
        id="bitbucket cloud repo:push: bare branch name becomes a full ref",
    ),
    pytest.param(
        "bitbucket-server/repo-refs-changed.json",
        (
            "ssh://git@server.bitbucket.local:7999/~gopher/webhook-test.git",
            "https://server.bitbucket.local/scm/~gopher/webhook-test.git",
            "https://server.bitbucket.local/users/gopher/repos/webhook-test/browse",
        ),
        (RefChange("refs/heads/feature/wip", ""),),
        id="bitbucket server refs_changed is a branch deletion",
    ),
    pytest.param(
        "gogs/push-event.json",
        (
            "http://localhost:3000/unknwon/webhooks",
            "http://localhost:3000/unknwon/webhooks.git",
            "ssh://unknwon@localhost:2222/unknwon/webhooks.git",
        ),
        (RefChange("refs/heads/develop", "bffeb74224043ba2feb48d137756c8a9331c449a"),),
        id="gogs push",
    ),
    pytest.param(
        "gitea/push-event.json",
        (
            "http://localhost:3000/example/example",
            "http://localhost:3000/example/example.git",
            "git@localhost:example/example.git",
        ),
        (RefChange("refs/heads/master", "67b56589a45103f891bdee7c0546e5d40bc02001"),),
        id="gitea push",
    ),
    pytest.param(
        "azuredevops/git.push.json",
        ("https://dev.azure.com/fabrikam-fiber-inc/DefaultCollection/_git/Fabrikam-Fiber-Git",),
        (RefChange("refs/heads/main", "33b55f7cb7e7e245323987634f960cf4a6e6bc74"),),
        id="azure devops git.push",
    ),
]
PUSH_FIXTURES = {param.values[0] for param in PUSHES}
PING_FIXTURES = {"github/ping.json"}


@pytest.mark.parametrize("delivery", [pytest.param(d, id=d.name) for d in DELIVERIES])
def test_every_fixture_is_detected_as_its_own_provider(delivery: Delivery) -> None:
    provider = detect(delivery.headers, delivery.body)
    assert provider is not None
    assert provider.name == delivery.provider


@pytest.mark.parametrize("delivery", [pytest.param(d, id=d.name) for d in DELIVERIES])
def test_every_fixture_parses_to_the_expected_kind(delivery: Delivery) -> None:
    if delivery.name in PUSH_FIXTURES:
        expected = EventKind.PUSH
    elif delivery.name in PING_FIXTURES:
        expected = EventKind.PING
    else:
        expected = EventKind.OTHER
    event = parse(delivery)
    assert event.kind is expected
    assert event.provider == delivery.provider


@pytest.mark.parametrize("delivery", [pytest.param(d, id=d.name) for d in DELIVERIES])
def test_a_non_push_fixture_carries_no_ref_changes(delivery: Delivery) -> None:
    event = parse(delivery)
    if event.kind is not EventKind.PUSH:
        assert event.changes == ()


@pytest.mark.parametrize(("name", "urls", "changes"), PUSHES)
def test_a_push_fixture_yields_exactly_its_urls_and_ref_changes(
    name: str, urls: tuple[str, ...], changes: tuple[RefChange, ...]
) -> None:
    event = parse(fixture(name))
    assert event.kind is EventKind.PUSH
    assert event.repo_urls == urls
    assert event.changes == changes


def test_the_bitbucket_server_deletion_is_a_deleted_branch() -> None:
    (change,) = parse(fixture("bitbucket-server/repo-refs-changed.json")).changes
    assert change.deleted
    assert change.branch == "feature/wip"


@pytest.mark.parametrize(
    ("name", "event_name", "delivery_id"),
    [
        pytest.param(
            "gogs/push-event.json", "push", "f6266f16-1bf3-46a5-9ea4-602e06ead473", id="gogs delivery header"
        ),
        pytest.param("gitlab/tag-event.json", "Tag Push Hook", "", id="gitlab without uuid header"),
        pytest.param(
            "azuredevops/git.push.json",
            "git.push",
            "03c164c2-8912-4d5e-8009-3707d5f83734",
            id="azure body id",
        ),
        pytest.param(
            "bitbucket-server/repo-refs-changed.json", "repo:refs_changed", "", id="bitbucket server"
        ),
    ],
)
def test_a_fixture_reports_its_event_name_and_delivery_id(
    name: str, event_name: str, delivery_id: str
) -> None:
    event = parse(fixture(name))
    assert (event.event, event.delivery_id) == (event_name, delivery_id)


def test_the_github_ping_fixture_has_no_repository_and_so_no_urls() -> None:
    """An organisation or app hook's ping names no repository; it is still a ping."""
    event = parse(fixture("github/ping.json"))
    assert (event.kind, event.repo_urls) == (EventKind.PING, ())
