"""The sender of a delivery is found by its headers, in a fixed and deliberate order."""

from __future__ import annotations

import pytest

from controller.providers import PROVIDERS, detect
from controller.providers.base import lower_headers
from unit.providers.provider_fixtures import fixture

GITEA_PUSH = fixture("gitea/push-event.json")


def test_providers_are_asked_forks_first_and_bitbucket_cloud_before_server() -> None:
    assert [provider.name for provider in PROVIDERS] == [
        "forgejo",
        "gitea",
        "gogs",
        "github",
        "gitlab",
        "bitbucket",
        "bitbucket-server",
        "azure-devops",
        "generic",
    ]


def test_a_real_gitea_delivery_with_gitea_gogs_and_github_headers_is_gitea() -> None:
    assert {"x-gitea-event", "x-gogs-event", "x-github-event"} <= GITEA_PUSH.headers.keys()
    provider = detect(GITEA_PUSH.headers, GITEA_PUSH.body)
    assert provider is not None and provider.name == "gitea"


def test_a_forgejo_delivery_with_all_its_ancestors_headers_is_forgejo() -> None:
    headers = {**GITEA_PUSH.headers, "x-forgejo-event": "push", "x-forgejo-delivery": "d-1"}
    provider = detect(headers, GITEA_PUSH.body)
    assert provider is not None and provider.name == "forgejo"
    assert provider.parse(headers, GITEA_PUSH.body).delivery_id == "d-1"


def test_a_gogs_delivery_is_gogs_although_a_github_header_is_sent_too() -> None:
    gogs = fixture("gogs/push-event.json")
    headers = {**gogs.headers, "x-github-event": "push"}
    provider = detect(headers, gogs.body)
    assert provider is not None and provider.name == "gogs"


def test_a_bitbucket_cloud_delivery_with_x_event_key_is_bitbucket_not_bitbucket_server() -> None:
    cloud = fixture("bitbucket/repo-push.json")
    provider = detect(cloud.headers, cloud.body)
    assert provider is not None and provider.name == "bitbucket"


def test_a_bitbucket_cloud_body_without_x_hook_uuid_is_still_bitbucket_cloud() -> None:
    cloud = fixture("bitbucket/repo-push.json")
    headers = {key: value for key, value in cloud.headers.items() if key != "x-hook-uuid"}
    provider = detect(headers, cloud.body)
    assert provider is not None and provider.name == "bitbucket"


def test_a_bitbucket_server_body_with_its_top_level_event_key_is_bitbucket_server() -> None:
    server = fixture("bitbucket-server/repo-refs-changed.json")
    provider = detect(server.headers, server.body)
    assert provider is not None and provider.name == "bitbucket-server"


def test_a_bitbucket_server_test_connection_ping_is_bitbucket_server() -> None:
    """Its body (`{"test": true}`) has no eventKey, so the event name decides.

    Bitbucket Cloud has no diagnostics:ping event.
    """
    provider = detect({"x-event-key": "diagnostics:ping"}, b'{"test": true}')
    assert provider is not None and provider.name == "bitbucket-server"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"eventKey": ', id="truncated JSON mentioning eventKey"),
        pytest.param(b'["eventKey"]', id="array mentioning eventKey"),
        pytest.param(b'{"eventKey": "x"' + b"[" * 10000, id="deeply nested"),
        # Nested eventKeys only, so Cloud's shape, but parsing 20 MiB of small objects before any
        # signature is checked once took 600 MB: a body over the unauthenticated parse budget is
        # left unparsed, to Server, whose parse refuses it.
        pytest.param(b'{"a": [' + b'{"eventKey": 0},' * (20 * 1024 * 1024 // 16) + b'{}]}',
                     id="20 MiB of small objects"),
    ],
)
def test_the_bitbucket_body_check_never_raises_and_leaves_odd_bodies_to_bitbucket_server(body: bytes) -> None:
    provider = detect({"x-event-key": "repo:push"}, body)
    assert provider is not None and provider.name == "bitbucket-server"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("X-Forgejo-Event", "forgejo", id="forgejo"),
        pytest.param("X-Gitea-Event", "gitea", id="gitea"),
        pytest.param("X-Gogs-Event", "gogs", id="gogs"),
        pytest.param("X-GitHub-Event", "github", id="github"),
        pytest.param("X-Gitlab-Event", "gitlab", id="gitlab"),
        pytest.param("X-Hook-UUID", "bitbucket", id="bitbucket cloud"),
        pytest.param("X-Vss-ActivityId", "azure-devops", id="azure activity id"),
        pytest.param("X-VSS-SUBSCRIPTIONID", "azure-devops", id="azure subscription id in capitals"),
        pytest.param("x-vss-subscriptionid", "azure-devops", id="azure subscription id in lower case"),
    ],
)
def test_a_provider_is_recognised_by_its_header_in_any_case(header: str, expected: str) -> None:
    provider = detect(lower_headers([(header, "push")]), b"{}")
    assert provider is not None and provider.name == expected


@pytest.mark.parametrize("value", [pytest.param("", id="empty"), pytest.param("  ", id="blank")])
def test_a_present_but_empty_header_does_not_count(value: str) -> None:
    headers = lower_headers([("X-Gogs-Event", value), ("X-GitHub-Event", "push")])
    provider = detect(headers, b"{}")
    assert provider is not None and provider.name == "github"


def test_an_unknown_sender_is_not_detected() -> None:
    assert detect({"content-type": "application/json", "user-agent": "curl"}, b"{}") is None


def test_lower_headers_joins_a_repeated_header_so_no_second_value_slips_past() -> None:
    headers = lower_headers([("X-Hub-Signature-256", "sha256=aa"), ("x-hub-signature-256", "sha256=bb")])
    assert headers == {"x-hub-signature-256": "sha256=aa, sha256=bb"}
