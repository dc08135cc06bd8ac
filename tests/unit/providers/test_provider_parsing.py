"""Parsing: Fleet's own parser cases, refs, multi-ref pushes, deletions, content types and bad bodies."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from controller.providers.azure_devops import AZURE_DEVOPS
from controller.providers.base import (
    EventKind,
    MalformedDelivery,
    Provider,
    RefChange,
    UnsupportedContentType,
)
from controller.providers.bitbucket import BITBUCKET
from controller.providers.bitbucket_server import BITBUCKET_SERVER
from controller.providers.forgejo import FORGEJO
from controller.providers.gitea import GITEA
from controller.providers.github import GITHUB
from controller.providers.gitlab import GITLAB
from controller.providers.gogs import GOGS
from unit.providers.provider_fixtures import fixture

C = "af69d162de5a276abc86e0686b2b44033cd3f442"
ZERO = "0" * 40


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


# Fleet reference section 7.1, TestGetBranchTagFromRef.
@pytest.mark.parametrize(
    ("ref", "branch", "tag"),
    [
        pytest.param("refs/heads/master", "master", None, id="refs/heads/master"),
        pytest.param("refs/heads/test", "test", None, id="refs/heads/test"),
        pytest.param("refs/head/foo", None, None, id="refs/head/foo is neither"),
        pytest.param("refs/tags/v0.1.1", None, "v0.1.1", id="refs/tags/v0.1.1"),
        pytest.param("refs/tags/v0.1.2", None, "v0.1.2", id="refs/tags/v0.1.2"),
        pytest.param("refs/tag/v0.1.3", None, None, id="refs/tag/v0.1.3 is neither"),
        pytest.param("refs/heads/feature/wip", "feature/wip", None, id="slashes are kept"),
        pytest.param("refs/heads/", None, None, id="empty branch name is no branch"),
        pytest.param("", None, None, id="empty ref"),
    ],
)
def test_a_ref_gives_a_branch_or_a_tag_only_for_exact_prefixes(
    ref: str, branch: str | None, tag: str | None
) -> None:
    change = RefChange(ref=ref, commit=C)
    assert (change.branch, change.tag) == (branch, tag)


# Fleet reference section 7.2 (parser_test.go), the parse half; the secret half is in
# test_provider_signatures.
FLEET_PARSER_CASES = [
    pytest.param(
        GOGS,
        {"x-gogs-event": "push"},
        {
            "ref": "refs/heads/main",
            "after": C,
            "repository": {"html_url": "https://gogs.example.com/example/repo"},
        },
        ("https://gogs.example.com/example/repo",),
        (RefChange("refs/heads/main", C),),
        id="gogs push",
    ),
    pytest.param(
        GITHUB,
        {"x-github-event": "push"},
        {"ref": "refs/heads/main", "after": C, "repository": {"html_url": "https://github.com/example/repo"}},
        ("https://github.com/example/repo",),
        (RefChange("refs/heads/main", C),),
        id="github push",
    ),
    pytest.param(
        GITLAB,
        {"x-gitlab-event": "Push Hook"},
        {
            "ref": "refs/heads/main",
            "checkout_sha": C,
            "project": {"web_url": "https://gitlab.example.com/example/repo"},
        },
        ("https://gitlab.example.com/example/repo",),
        (RefChange("refs/heads/main", C),),
        id="gitlab push",
    ),
    pytest.param(
        GITLAB,
        {"x-gitlab-event": "Tag Push Hook"},
        {
            "ref": "refs/tags/v1.0.0",
            "checkout_sha": C,
            "project": {"web_url": "https://gitlab.example.com/example/repo"},
        },
        ("https://gitlab.example.com/example/repo",),
        (RefChange("refs/tags/v1.0.0", C),),
        id="gitlab tag push",
    ),
    pytest.param(
        BITBUCKET,
        {"x-hook-uuid": "some-uuid", "x-event-key": "repo:push"},
        {
            "repository": {"links": {"html": {"href": "https://bitbucket.org/example/repo"}}},
            "push": {"changes": [{"new": {"type": "branch", "name": "main", "target": {"hash": C}}}]},
        },
        ("https://bitbucket.org/example/repo",),
        (RefChange("refs/heads/main", C),),
        id="bitbucket cloud push",
    ),
    pytest.param(
        BITBUCKET,
        {"x-hook-uuid": "some-uuid", "x-event-key": "repo:push"},
        {
            "repository": {"links": {"html": {"href": "https://bitbucket.org/example/repo"}}},
            "push": {"changes": []},
        },
        ("https://bitbucket.org/example/repo",),
        (),
        id="bitbucket cloud push with empty changes",
    ),
    pytest.param(
        BITBUCKET_SERVER,
        {"x-event-key": "repo:refs_changed"},
        {
            "repository": {
                "links": {
                    "clone": [
                        {"href": "https://bitbucket.example.com/scm/example/repo.git", "name": "http"},
                        {"href": "ssh://git@bitbucket.example.com:7999/example/repo.git", "name": "ssh"},
                    ]
                }
            },
            "changes": [{"ref": {"id": "refs/heads/main"}, "toHash": C}],
        },
        (
            "https://bitbucket.example.com/scm/example/repo.git",
            "ssh://git@bitbucket.example.com:7999/example/repo.git",
        ),
        (RefChange("refs/heads/main", C),),
        id="bitbucket server push with only ref.id (Fleet extracts no branch from it; we fall back)",
    ),
    pytest.param(
        BITBUCKET_SERVER,
        {"x-event-key": "repo:refs_changed"},
        {
            "repository": {
                "links": {"clone": [{"href": "https://bitbucket.example.com/scm/example/repo.git"}]}
            },
            "changes": [],
        },
        ("https://bitbucket.example.com/scm/example/repo.git",),
        (),
        id="bitbucket server push with empty changes",
    ),
    pytest.param(
        AZURE_DEVOPS,
        {"x-vss-activityid": "a"},
        {
            "eventType": "git.push",
            "resource": {
                "refUpdates": [{"name": "refs/heads/main", "newObjectId": C}],
                "repository": {"remoteUrl": "https://dev.azure.com/example/repo/_git/repo"},
            },
        },
        ("https://dev.azure.com/example/repo/_git/repo",),
        (RefChange("refs/heads/main", C),),
        id="azure push",
    ),
    pytest.param(
        AZURE_DEVOPS,
        {"x-vss-activityid": "a"},
        {
            "eventType": "git.push",
            "resource": {
                "refUpdates": [],
                "repository": {"remoteUrl": "https://dev.azure.com/example/repo/_git/repo"},
            },
        },
        ("https://dev.azure.com/example/repo/_git/repo",),
        (),
        id="azure push with empty refUpdates",
    ),
]


@pytest.mark.parametrize(("provider", "headers", "payload", "urls", "changes"), FLEET_PARSER_CASES)
def test_fleets_parser_cases_give_the_same_urls_and_refs(
    provider: Provider,
    headers: dict[str, str],
    payload: object,
    urls: tuple[str, ...],
    changes: tuple[RefChange, ...],
) -> None:
    event = provider.parse(headers, body(payload))
    assert (event.kind, event.repo_urls, event.changes) == (EventKind.PUSH, urls, changes)


@pytest.mark.parametrize(
    ("provider", "payload"),
    [
        pytest.param(GOGS, {}, id="gogs"),
        pytest.param(GITHUB, {}, id="github"),
        pytest.param(GITLAB, {}, id="gitlab"),
        pytest.param(BITBUCKET_SERVER, {}, id="bitbucket server"),
        pytest.param(BITBUCKET, {}, id="bitbucket cloud"),
    ],
)
def test_fleets_missing_event_header_cases_are_other_events_not_errors(
    provider: Provider, payload: object
) -> None:
    """Fleet errors with "missing X-…-Event Header"; here the provider was never detected without it,
    and parsing the body alone gives an OTHER event that patches nothing."""
    event = provider.parse({}, body(payload))
    assert (event.kind, event.event, event.changes) == (EventKind.OTHER, "", ())


def test_fleets_azure_no_event_case_is_an_other_event() -> None:
    """Fleet: `unknown event ` error (500). An Azure body without eventType is simply not a push here."""
    event = AZURE_DEVOPS.parse({}, b"{}")
    assert (event.kind, event.event) == (EventKind.OTHER, "")


def test_a_gitlab_system_hook_push_is_a_push() -> None:
    """Deliberate difference: Fleet rejects every `System Hook` with 500, even a push."""
    event = GITLAB.parse(
        {"x-gitlab-event": "System Hook"},
        body({"event_name": "push", "ref": "refs/heads/main", "after": C, "checkout_sha": C}),
    )
    assert event.kind is EventKind.PUSH


def test_a_gitlab_system_hook_of_another_kind_is_other() -> None:
    event = GITLAB.parse(
        {"x-gitlab-event": "System Hook"}, fixture("gitlab/system-project-created.json").body
    )
    assert event.kind is EventKind.OTHER


def test_bitbucket_server_diagnostics_ping_is_a_ping() -> None:
    """Deliberate difference: Fleet answers the "Test connection" button with 500."""
    event = BITBUCKET_SERVER.parse(
        {"x-event-key": "diagnostics:ping", "x-request-id": "r-1"}, b'{"test": true}'
    )
    assert (event.kind, event.delivery_id) == (EventKind.PING, "r-1")


def test_a_bitbucket_server_mirror_synchronisation_is_a_push() -> None:
    payload = {
        "eventKey": "mirror:repo_synchronized",
        "changes": [{"refId": "refs/heads/main", "toHash": C, "type": "UPDATE"}],
    }
    event = BITBUCKET_SERVER.parse({"x-event-key": "mirror:repo_synchronized"}, body(payload))
    assert (event.kind, event.changes) == (EventKind.PUSH, (RefChange("refs/heads/main", C),))


def test_every_ref_of_a_multi_ref_bitbucket_cloud_push_counts() -> None:
    """Fleet reads changes[0] only. A branch update, a tag, an annotated tag and a deletion in one push."""
    payload = {
        "push": {
            "changes": [
                {"new": {"type": "branch", "name": "main", "target": {"hash": C}}},
                {"new": {"type": "tag", "name": "v1", "target": {"hash": "1" * 40}}},
                {"new": {"type": "annotated_tag", "name": "v2", "target": {"hash": "2" * 40}}},
                {"new": None, "old": {"type": "branch", "name": "gone", "target": {"hash": "3" * 40}}},
                {"new": {"type": "named_branch", "name": "hg", "target": {"hash": "4" * 40}}},
                {"new": None, "old": None},
            ]
        }
    }
    event = BITBUCKET.parse({"x-event-key": "repo:push"}, body(payload))
    assert event.changes == (
        RefChange("refs/heads/main", C),
        RefChange("refs/tags/v1", "1" * 40),
        RefChange("refs/tags/v2", "2" * 40),
        RefChange("refs/heads/gone", ""),
    )


def test_every_ref_of_a_multi_ref_bitbucket_server_push_counts() -> None:
    payload = {
        "changes": [
            {"refId": "refs/heads/main", "toHash": C, "type": "UPDATE"},
            {"ref": {"id": "refs/tags/v1"}, "toHash": "1" * 40, "type": "ADD"},
            {"refId": "refs/heads/old", "toHash": "5" * 40, "type": "DELETE"},
        ]
    }
    event = BITBUCKET_SERVER.parse({"x-event-key": "repo:refs_changed"}, body(payload))
    assert event.changes == (
        RefChange("refs/heads/main", C),
        RefChange("refs/tags/v1", "1" * 40),
        RefChange("refs/heads/old", ""),
    )


def test_every_ref_of_a_multi_ref_azure_push_counts() -> None:
    payload = {
        "eventType": "git.push",
        "resource": {
            "refUpdates": [
                {"name": "refs/heads/main", "newObjectId": C},
                {"name": "refs/heads/gone", "newObjectId": ZERO},
            ],
            "repository": {
                "remoteUrl": "https://dev.azure.com/o/p/_git/r",
                "sshUrl": "git@ssh.dev.azure.com:v3/o/p/r",
                "webUrl": "https://dev.azure.com/o/p/_git/r",
            },
        },
    }
    event = AZURE_DEVOPS.parse({}, body(payload))
    assert event.changes == (RefChange("refs/heads/main", C), RefChange("refs/heads/gone", ""))
    assert event.repo_urls == ("https://dev.azure.com/o/p/_git/r", "git@ssh.dev.azure.com:v3/o/p/r")


@pytest.mark.parametrize(
    ("provider", "headers", "payload"),
    [
        pytest.param(
            GITHUB, {"x-github-event": "push"}, {"ref": "refs/heads/x", "after": ZERO}, id="github zero sha"
        ),
        pytest.param(
            GITHUB,
            {"x-github-event": "push"},
            {"ref": "refs/heads/x", "after": C, "deleted": True},
            id="github deleted flag",
        ),
        pytest.param(
            GITEA, {"x-gitea-event": "push"}, {"ref": "refs/heads/x", "after": ZERO}, id="gitea zero sha"
        ),
        pytest.param(
            GITLAB,
            {"x-gitlab-event": "Push Hook"},
            {"ref": "refs/heads/x", "after": ZERO, "checkout_sha": None},
            id="gitlab null checkout_sha",
        ),
        pytest.param(
            GITLAB,
            {"x-gitlab-event": "Tag Push Hook"},
            {"ref": "refs/tags/v1", "after": ZERO},
            id="gitlab zero after",
        ),
        pytest.param(
            GITHUB,
            {"x-github-event": "push"},
            {"ref": "refs/heads/x", "after": "0" * 64},
            id="sha-256 repository zero sha",
        ),
    ],
)
def test_a_deletion_is_a_change_without_a_commit(
    provider: Provider, headers: dict[str, str], payload: object
) -> None:
    (change,) = provider.parse(headers, body(payload)).changes
    assert change.deleted and change.commit == ""


def test_a_github_ping_is_a_ping_with_the_repository_urls_when_present() -> None:
    payload = {"zen": "z", "hook": {}, "repository": {"html_url": "https://github.com/example/repo"}}
    event = GITHUB.parse({"x-github-event": "ping", "x-github-delivery": "d-9"}, body(payload))
    assert (event.kind, event.repo_urls, event.delivery_id) == (
        EventKind.PING,
        ("https://github.com/example/repo",),
        "d-9",
    )


@pytest.mark.parametrize(
    ("provider", "headers", "name"),
    [
        pytest.param(GITHUB, {"x-github-event": "push"}, "github/push.json", id="github"),
        pytest.param(GITEA, {"x-gitea-event": "push"}, "gitea/push-event.json", id="gitea"),
        pytest.param(GOGS, {"x-gogs-event": "push"}, "gogs/push-event.json", id="gogs"),
        pytest.param(FORGEJO, {"x-forgejo-event": "push"}, "gitea/push-event.json", id="forgejo"),
    ],
)
def test_a_form_encoded_body_parses_the_same_as_json(
    provider: Provider, headers: dict[str, str], name: str
) -> None:
    raw = fixture(name).body
    form = urlencode({"payload": raw.decode("utf-8")}).encode("ascii")
    as_form = provider.parse({**headers, "content-type": "application/x-www-form-urlencoded"}, form)
    as_json = provider.parse({**headers, "content-type": "application/json"}, raw)
    assert as_form == as_json


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(None, id="missing"),
        pytest.param("application/json", id="json"),
        pytest.param("application/json; charset=utf-8", id="json with charset"),
        pytest.param("Application/JSON ; charset=UTF-8", id="json in capitals"),
    ],
)
def test_json_and_a_missing_content_type_are_read_as_json(content_type: str | None) -> None:
    headers = {"x-github-event": "push"} | ({"content-type": content_type} if content_type else {})
    assert GITHUB.parse(headers, fixture("github/push.json").body).kind is EventKind.PUSH


@pytest.mark.parametrize(
    ("provider", "content_type"),
    [
        pytest.param(GITHUB, "text/plain", id="github text"),
        pytest.param(GITHUB, "application/xml", id="github xml"),
        pytest.param(GITLAB, "application/x-www-form-urlencoded", id="gitlab never sends forms"),
        pytest.param(BITBUCKET, "application/x-www-form-urlencoded", id="bitbucket cloud form"),
        pytest.param(BITBUCKET_SERVER, "multipart/form-data", id="bitbucket server multipart"),
        pytest.param(AZURE_DEVOPS, "application/x-www-form-urlencoded", id="azure form"),
    ],
)
def test_any_other_content_type_is_unsupported(provider: Provider, content_type: str) -> None:
    with pytest.raises(UnsupportedContentType):
        provider.parse({"content-type": content_type}, b"{}")


FORM = {"content-type": "application/x-www-form-urlencoded", "x-github-event": "push"}


@pytest.mark.parametrize(
    ("headers", "raw", "message"),
    [
        pytest.param({}, b"", "empty body", id="empty body"),
        pytest.param({}, b"not json", "not valid JSON", id="not json"),
        pytest.param({}, b"[1, 2]", "not a JSON object", id="array"),
        pytest.param({}, b'"text"', "not a JSON object", id="string"),
        pytest.param({}, b"\xff\xfe\x00", "not valid JSON", id="invalid utf-8"),
        pytest.param({}, b"[" * 100000, "not valid JSON", id="deep nesting"),
        pytest.param({}, b"1" * 5000, "not valid JSON", id="over-long integer"),
        pytest.param(
            {"x-github-event": "push"}, b'{"ref": 1}', "ref must be a string", id="ref not a string"
        ),
        pytest.param(
            {"x-github-event": "ping"},
            b'{"repository": []}',
            "repository must be an object",
            id="repository not an object, even for a ping",
        ),
        pytest.param(
            {"x-github-event": "push"},
            b'{"repository": {"html_url": 7}}',
            "repository.html_url must be a string",
            id="nested path is named",
        ),
        pytest.param(
            {"x-github-event": "push"},
            b'{"ref": "refs/heads/x", "deleted": "yes"}',
            "deleted must be a boolean",
            id="deleted not a boolean",
        ),
        pytest.param(FORM, b"payload=%7B", "not valid JSON", id="form with bad json"),
        pytest.param(FORM, b"other=1", "exactly one 'payload'", id="form without payload"),
        pytest.param(
            FORM, b"payload=%7B%7D&payload=%7B%7D", "exactly one 'payload'", id="form with two payloads"
        ),
        pytest.param(FORM, b"payload=%ff", "urlencoded", id="form with bad utf-8"),
        pytest.param(FORM, "payload=é".encode(), "urlencoded", id="form with raw non-ascii"),
        pytest.param(FORM, b"payload", "urlencoded", id="form field without ="),
        pytest.param(FORM, b"&".join([b"a=1"] * 50), "urlencoded", id="form with too many fields"),
    ],
)
def test_a_malformed_body_is_a_malformed_delivery_naming_what_is_wrong(
    headers: dict[str, str], raw: bytes, message: str
) -> None:
    with pytest.raises(MalformedDelivery, match=message):
        GITHUB.parse(headers, raw)


@pytest.mark.parametrize(
    ("provider", "headers", "raw", "path"),
    [
        pytest.param(
            GITLAB,
            {"x-gitlab-event": "Push Hook"},
            b'{"project": {"web_url": []}}',
            "project.web_url",
            id="gitlab project url",
        ),
        pytest.param(
            BITBUCKET,
            {"x-event-key": "repo:push"},
            b'{"push": {"changes": [1]}}',
            r"push.changes\[0\]",
            id="bitbucket change item",
        ),
        pytest.param(
            BITBUCKET,
            {"x-event-key": "repo:push"},
            b'{"push": {"changes": [{"new": {"type": "branch", "name": "m", ' b'"target": {"hash": 1}}}]}}',
            r"push.changes\[0\].new.target.hash",
            id="bitbucket commit hash",
        ),
        pytest.param(
            BITBUCKET_SERVER,
            {"x-event-key": "repo:refs_changed"},
            b'{"repository": {"links": {"clone": [{"href": 1}]}}}',
            r"repository.links.clone\[0\].href",
            id="bitbucket server clone href (Fleet panics here)",
        ),
        pytest.param(
            BITBUCKET_SERVER,
            {"x-event-key": "repo:refs_changed"},
            b'{"repository": {"links": {"clone": {}}}}',
            "repository.links.clone must be an array",
            id="bitbucket server clone not an array (Fleet panics here)",
        ),
        pytest.param(
            AZURE_DEVOPS, {}, b'{"eventType": 1}', "eventType must be a string", id="azure event type"
        ),
        pytest.param(
            AZURE_DEVOPS,
            {},
            b'{"eventType": "git.push", "resource": {"refUpdates": {}}}',
            "resource.refUpdates must be an array",
            id="azure ref updates",
        ),
    ],
)
def test_a_field_of_the_wrong_type_is_named_by_its_json_path(
    provider: Provider, headers: dict[str, str], raw: bytes, path: str
) -> None:
    with pytest.raises(MalformedDelivery, match=path):
        provider.parse(headers, raw)


def test_a_gogs_push_without_repository_has_no_urls_instead_of_panicking() -> None:
    """Fleet's Gogs path panics on a push without `repository`."""
    event = GOGS.parse({"x-gogs-event": "push"}, body({"ref": "refs/heads/main", "after": C}))
    assert (event.repo_urls, event.changes) == ((), (RefChange("refs/heads/main", C),))


def test_repository_urls_are_de_duplicated_in_payload_order() -> None:
    url = "https://github.com/example/repo"
    payload = {
        "ref": "refs/heads/main",
        "after": C,
        "repository": {"html_url": url, "clone_url": url, "ssh_url": "git@github.com:example/repo.git"},
    }
    event = GITHUB.parse({"x-github-event": "push"}, body(payload))
    assert event.repo_urls == (url, "git@github.com:example/repo.git")


def test_gitlab_falls_back_to_the_repository_object_when_the_project_has_no_urls() -> None:
    payload = {
        "ref": "refs/heads/main",
        "checkout_sha": C,
        "repository": {
            "homepage": "https://gitlab.example.com/g/r",
            "git_http_url": "https://gitlab.example.com/g/r.git",
            "git_ssh_url": "git@gitlab.example.com:g/r.git",
        },
    }
    event = GITLAB.parse({"x-gitlab-event": "Push Hook"}, body(payload))
    assert event.repo_urls == (
        "https://gitlab.example.com/g/r",
        "https://gitlab.example.com/g/r.git",
        "git@gitlab.example.com:g/r.git",
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {"x-gitlab-event-uuid": "e-1", "x-gitlab-webhook-uuid": "w-1"}, "e-1", id="event uuid first"
        ),
        pytest.param({"x-gitlab-webhook-uuid": "w-1"}, "w-1", id="webhook uuid otherwise"),
    ],
)
def test_gitlab_delivery_id_comes_from_its_uuid_headers(headers: dict[str, str], expected: str) -> None:
    assert GITLAB.parse({"x-gitlab-event": "Push Hook", **headers}, b"{}").delivery_id == expected


def test_azure_delivery_id_falls_back_to_the_activity_id_header() -> None:
    assert (
        AZURE_DEVOPS.parse({"x-vss-activityid": "act-1"}, b'{"eventType": "git.push"}').delivery_id == "act-1"
    )


def test_bitbucket_cloud_delivery_id_is_the_request_uuid() -> None:
    delivery = fixture("bitbucket/repo-push.json")
    event = BITBUCKET.parse({**delivery.headers, "x-request-uuid": "u-1"}, delivery.body)
    assert event.delivery_id == "u-1"
