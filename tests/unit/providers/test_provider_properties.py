"""No input makes detection, verification or parsing raise anything but the two delivery errors."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.providers import PROVIDERS, detect
from controller.providers.base import MalformedDelivery, UnsupportedContentType, Verification
from unit.providers.provider_fixtures import DELIVERIES

HEADER_NAMES = st.sampled_from(
    sorted(
        {name for d in DELIVERIES for name in d.headers}
        | {
            "content-type",
            "x-hub-signature-256",
            "x-hook-uuid",
            "authorization",
            "x-forgejo-event",
            "x-vss-activityid",
        }
    )
)
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "push",
            "ping",
            "Push Hook",
            "System Hook",
            "repo:push",
            "repo:refs_changed",
            "diagnostics:ping",
            "application/json",
            "application/x-www-form-urlencoded",
            "sha256=",
            "",
        ]
    ),
)
HEADERS = st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            [
                "ref",
                "after",
                "checkout_sha",
                "repository",
                "project",
                "push",
                "changes",
                "new",
                "old",
                "target",
                "hash",
                "type",
                "name",
                "refId",
                "toHash",
                "links",
                "clone",
                "self",
                "href",
                "html",
                "html_url",
                "eventType",
                "resource",
                "refUpdates",
                "newObjectId",
                "id",
                "object_kind",
                "event_name",
                "deleted",
                "eventKey",
            ]
        ),
        children,
        max_size=5,
    ),
    max_leaves=25,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([d.body for d in DELIVERIES]),
)
SECRETS = st.dictionaries(
    st.sampled_from(
        ["github", "gitlab", "bitbucket", "bitbucket-server", "gogs", "azure-username", "azure-password"]
    ),
    st.binary(max_size=12),
    max_size=7,
)


@settings(max_examples=300, deadline=None)
@given(headers=HEADERS, body=BODIES, secret=SECRETS)
def test_no_delivery_makes_any_provider_raise_an_unexpected_error(
    headers: dict[str, str], body: bytes, secret: dict[str, bytes]
) -> None:
    detect(headers, body)
    for provider in PROVIDERS:
        provider.recognises(headers, body)
        assert isinstance(provider.verify(headers, body, secret), Verification)
        try:
            event = provider.parse(headers, body)
        except (MalformedDelivery, UnsupportedContentType):
            continue
        assert event.provider == provider.name
        assert all(isinstance(url, str) and url for url in event.repo_urls)
