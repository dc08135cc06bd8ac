"""Arbitrary input never breaks a provider parser, the receiver app or the admission app."""

from __future__ import annotations

import base64
import json

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings, strategies as st

from controller.admission.app import create_app as create_admission_app
from controller.providers import PROVIDERS, detect
from controller.providers.base import MalformedDelivery, UnsupportedContentType
from controller.receiver.app import create_app as create_receiver_app
from controller.settings import Settings
from controller.store.offline import OfflineStore
from resilience.reskit import GLOBAL_SECRET, REPO, global_secret, gitrepo, push_body, push_headers

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEADER_NAMES = [
    "content-type",
    "x-github-event",
    "x-github-delivery",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-event",
    "x-gitlab-token",
    "x-gitlab-event-uuid",
    "x-gogs-event",
    "x-gogs-signature",
    "x-gitea-event",
    "x-gitea-signature",
    "x-forgejo-event",
    "x-forgejo-signature",
    "x-hook-uuid",
    "x-event-key",
    "x-request-id",
    "x-vss-activityid",
    "authorization",
    "content-encoding",
]
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "push",
            "ping",
            "Push Hook",
            "System Hook",
            "Tag Push Hook",
            "repo:push",
            "repo:refs_changed",
            "diagnostics:ping",
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "sha256=",
            "sha1=abc",
            "Basic " + base64.b64encode(b"user:pass").decode(),
            "",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
)
HEADERS = st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=6)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            [
                "ref",
                "after",
                "before",
                "repository",
                "html_url",
                "clone_url",
                "ssh_url",
                "url",
                "changes",
                "refChanges",
                "push",
                "resource",
                "refUpdates",
                "project",
                "links",
                "commits",
                "eventType",
                "event_name",
                "object_kind",
                "name",
                "new",
                "target",
                "hash",
                "href",
                "remoteUrl",
                "newObjectId",
                "git_http_url",
                "zen",
                "hook_id",
            ]
        )
        | st.text(max_size=10),
        children,
        max_size=5,
    ),
    max_leaves=25,
)
BODIES = st.one_of(
    st.binary(max_size=400),
    JSON_VALUE.map(lambda value: json.dumps(value).encode()),
    st.builds(lambda value: b"payload=" + json.dumps(value).encode(), JSON_VALUE),
)


@FAST
@given(HEADERS, BODIES)
def test_every_provider_only_raises_its_two_input_errors(headers: dict[str, str], body: bytes) -> None:
    assert detect(headers, body) in (None, *PROVIDERS)
    for provider in PROVIDERS:
        provider.recognises(headers, body)
        provider.verify(
            headers,
            body,
            {
                "github": b"k",
                "gitlab": b"k",
                "bitbucket": b"k",
                "bitbucket-server": b"k",
                "gogs": b"k",
                "azure-username": b"u",
                "azure-password": b"p",
            },
        )
        try:
            provider.parse(headers, body)
        except (MalformedDelivery, UnsupportedContentType):
            pass


STORE_OBJECTS = [
    global_secret(),
    gitrepo("main"),
    gitrepo("own", webhookSecret="own-secret"),
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "own-secret", "namespace": "fleet-default"},
        "stringData": {"github": "own-secret-value"},
    },
]


@pytest.fixture(scope="module")
def receiver_client() -> FlaskClient:
    settings_ = Settings(rate_limit=1e9, rate_burst=1_000_000, max_body_size=64 * 1024)
    return create_receiver_app(settings_, OfflineStore(STORE_OBJECTS)).test_client()


@pytest.fixture(scope="module")
def admission_client() -> FlaskClient:
    return create_admission_app(Settings(reconcile_period=3600), OfflineStore(STORE_OBJECTS)).test_client()


@FAST
@given(
    HEADERS,
    BODIES,
    st.sampled_from(["/", "/hooks", "/a//b", "/a/../b", "/%00", "/x" * 300]),
    st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
)
def test_the_receiver_never_answers_5xx_for_any_request(
    receiver_client: FlaskClient, headers: dict[str, str], body: bytes, path: str, method: str
) -> None:
    response = receiver_client.open(path, method=method, headers=headers, data=body)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert isinstance(response.get_json(silent=True), dict)


@FAST
@given(st.text(alphabet="0123456789abcdef", min_size=40, max_size=40), st.booleans())
def test_the_receiver_answers_well_formed_pushes_2xx_or_401(
    receiver_client: FlaskClient, commit: str, signed: bool
) -> None:
    body = push_body(commit, REPO)
    response = receiver_client.post(
        "/", data=body, headers=push_headers(body, f"d-{commit}-{signed}", GLOBAL_SECRET if signed else "bad")
    )
    assert response.status_code == (200 if signed else 401)


def _review(request: object, api_version: str = "admission.k8s.io/v1") -> bytes:
    return json.dumps({"apiVersion": api_version, "kind": "AdmissionReview", "request": request}).encode()


REQUESTS = st.fixed_dictionaries(
    {
        "uid": st.one_of(st.text(max_size=40), st.integers(), st.none()),
        "operation": st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH", ""]),
        "kind": st.one_of(
            st.just({"group": "fleet.cattle.io", "version": "v1alpha1", "kind": "GitRepo"}),
            st.just({"group": "", "version": "v1", "kind": "Secret"}),
            JSON_VALUE,
        ),
        "resource": st.one_of(
            st.just({"group": "fleet.cattle.io", "version": "v1alpha1", "resource": "gitrepos"}),
            st.just({"group": "", "version": "v1", "resource": "secrets"}),
            JSON_VALUE,
        ),
        "name": st.one_of(st.just("gitjob-webhook"), st.text(max_size=20), st.none()),
        "namespace": st.one_of(st.just("cattle-fleet-system"), st.text(max_size=20), st.none()),
        "userInfo": st.one_of(st.just({"username": "u"}), JSON_VALUE),
        "object": st.one_of(
            st.builds(
                lambda spec: {
                    "apiVersion": "fleet.cattle.io/v1alpha1",
                    "kind": "GitRepo",
                    "metadata": {"name": "x"},
                    "spec": spec,
                },
                JSON_VALUE,
            ),
            st.builds(
                lambda data: {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "gitjob-webhook"},
                    "data": data,
                    "stringData": data,
                },
                JSON_VALUE,
            ),
            JSON_VALUE,
        ),
        "oldObject": JSON_VALUE,
        "dryRun": st.one_of(st.booleans(), JSON_VALUE),
    }
)
REVIEW_BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUE.map(lambda value: json.dumps(value).encode()),
    st.builds(_review, REQUESTS, st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1", "v1"])),
)


@FAST
@given(
    REVIEW_BODIES,
    st.sampled_from(["/mutate/gitrepos", "/validate/secrets"]),
    st.sampled_from(["application/json", "text/plain", ""]),
)
def test_the_admission_server_never_answers_5xx_and_always_well_formed(
    admission_client: FlaskClient, body: bytes, path: str, content_type: str
) -> None:
    response = admission_client.post(
        path, data=body, headers={"Content-Type": content_type} if content_type else {}
    )
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    answer = response.get_json(silent=True)
    assert isinstance(answer, dict)
    if response.status_code == 200:
        sent = json.loads(body)
        assert answer["apiVersion"] == sent["apiVersion"] and answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == sent["request"]["uid"]
        assert isinstance(answer["response"]["allowed"], bool)
        assert all(len(warning) <= 120 for warning in answer["response"].get("warnings", []))
    else:
        assert answer["message"]


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 4 * 1024 * 1024])
def test_huge_fields_in_a_review_are_answered_without_a_5xx(admission_client: FlaskClient, size: int) -> None:
    body = _review(
        {
            "uid": "u",
            "operation": "CREATE",
            "name": "x",
            "namespace": "fleet-default",
            "kind": {"group": "fleet.cattle.io", "version": "v1alpha1", "kind": "GitRepo"},
            "resource": {"group": "fleet.cattle.io", "version": "v1alpha1", "resource": "gitrepos"},
            "userInfo": {"username": "u" * 1000},
            "object": {
                "apiVersion": "fleet.cattle.io/v1alpha1",
                "kind": "GitRepo",
                "metadata": {"name": "x", "annotations": {"big": "v" * size}},
                "spec": {"repo": "https://" + "h" * 10_000, "pollingInterval": "9" * 5000},
            },
        }
    )
    response = admission_client.post(
        "/mutate/gitrepos", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == (200 if len(body) <= 3 * 1024 * 1024 else 400)
    assert isinstance(response.get_json(), dict)


def test_a_deeply_nested_review_is_a_400_not_a_crash(admission_client: FlaskClient) -> None:
    body = (
        b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    response = admission_client.post(
        "/validate/secrets", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
