"""Every recorded delivery that is not a push gets a 2xx: pings ``ping``, everything else ``ignored``.

Fleet answers 500 for every event it did not subscribe to (and for Bitbucket Server's "Test
connection"), so providers show the hook as failing and may disable it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from unit.providers.provider_fixtures import DELIVERIES, Delivery
from unit.receiver.conftest import MakeReceiver
from unit.receiver.objects import body, github_headers, gitrepo, outcome, secret

PUSH_FIXTURES = frozenset({
    "azuredevops/git.push.json", "bitbucket-server/repo-refs-changed.json", "bitbucket/repo-push.json",
    "gitea/push-event.json", "github/push.json", "gitlab/push-event.json", "gitlab/system-push-event.json",
    "gitlab/system-tag-event.json", "gitlab/tag-event.json", "gogs/push-event.json"})
PING_FIXTURES = frozenset({"github/ping.json"})

OTHER_EVENTS = [pytest.param(delivery, id=delivery.name) for delivery in DELIVERIES
                if delivery.name not in PUSH_FIXTURES | PING_FIXTURES]


@pytest.mark.parametrize("delivery", OTHER_EVENTS)
def test_a_non_push_event_is_200_ignored(make_receiver: MakeReceiver, delivery: Delivery) -> None:
    receiver, store = make_receiver([gitrepo(branch="main")])

    status, answer = outcome(receiver, delivery.headers, delivery.body)

    assert (status, answer["outcome"]) == (200, "ignored"), answer
    assert store.events == []


BITBUCKET_SERVER_PING = body({"test": True})


@pytest.mark.parametrize(("headers", "data"), [
    pytest.param({"X-GitHub-Event": "ping"}, None, id="github ping"),
    pytest.param({"X-Event-Key": "diagnostics:ping"}, BITBUCKET_SERVER_PING,
                 id="bitbucket server diagnostics:ping"),
])
def test_a_ping_is_200_ping(
    make_receiver: MakeReceiver, payload: Callable[[str], bytes], headers: dict[str, str], data: bytes | None
) -> None:
    receiver, _ = make_receiver([])
    status, answer = outcome(receiver, headers, data if data is not None else payload("github/ping.json"))
    assert (status, answer["outcome"]) == (200, "ping")


def test_a_signed_ping_says_the_secret_is_right(
    make_receiver: MakeReceiver, payload: Callable[[str], bytes]
) -> None:
    """A provider's test delivery tells the operator at once whether the configured secret is right."""
    receiver, _ = make_receiver([secret(github="s3cret")])
    data = payload("github/ping.json")

    status, answer = outcome(receiver, github_headers(data, key="s3cret", event="ping"), data)
    assert (status, answer["authenticated"]) == (200, True)
    assert "verified" in answer["message"]

    status, _ = outcome(receiver, github_headers(data, key="wrong", event="ping"), data)
    assert status == 401
