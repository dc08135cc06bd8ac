"""Hostile deliveries against the real receiver (gunicorn, offline store): signatures, replays, sizes."""

from __future__ import annotations

import hashlib
import hmac
import http.client
from collections.abc import Callable

import pytest
import requests

from resilience.reskit import GLOBAL_SECRET, REPO, commit_for, gitrepo, global_secret, push_body, push_headers
from support import service

OWN_SECRET = "own-gitrepo-secret-77e1"
GITLAB_TOKEN = "gitlab-token-value-93bd"
OBJECTS = [
    global_secret(gitlab=GITLAB_TOKEN),
    gitrepo("main"),
    gitrepo("own", "https://github.com/example/own", webhookSecret="own-secret"),
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "own-secret", "namespace": "fleet-default"},
        "stringData": {"github": OWN_SECRET},
    },
]


@pytest.fixture
def receiver(offline_receiver: Callable[..., service.Service]) -> service.Service:
    return offline_receiver(OBJECTS, "--max-body-size", "64KiB")


def _post(url: str, body: bytes, headers: dict[str, str], path: str = "/") -> requests.Response:
    return requests.post(url + path, data=body, headers=headers, timeout=10)


def _raw_post(url: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    """POST with the path sent exactly as given (requests would normalise it)."""
    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _signed(commit_label: str, secret: str = GLOBAL_SECRET) -> tuple[bytes, dict[str, str]]:
    body = push_body(commit_for(commit_label))
    return body, push_headers(body, commit_label, secret)


def test_a_signature_over_a_different_body_is_401(receiver: service.Service) -> None:
    body, _ = _signed("a")
    other = push_body(commit_for("other"))
    response = _post(receiver.receiver, body, push_headers(other, "a"))
    assert response.status_code == 401 and "gitrepos" not in response.json()


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-1], id="truncated"),
        pytest.param(lambda s: s[:20], id="truncated-short"),
        pytest.param(lambda s: "sha1=" + s[len("sha256="):], id="sha1-prefix"),
        pytest.param(lambda s: "sha512=" + s[len("sha256="):], id="sha512-prefix"),
        pytest.param(lambda s: s[len("sha256="):], id="no-prefix"),
        pytest.param(lambda s: "sha256=" + s[len("sha256="):].upper(), id="uppercase-hex"),
        pytest.param(lambda s: s + ", " + s, id="repeated"),
        pytest.param(lambda s: "", id="empty"),
    ],
)
def test_a_mangled_signature_is_401(receiver: service.Service, mangle: Callable[[str], str]) -> None:
    body, headers = _signed("mangled")
    headers["X-Hub-Signature-256"] = mangle(headers["X-Hub-Signature-256"])
    assert _post(receiver.receiver, body, headers).status_code == 401


def test_an_empty_secret_value_never_verifies(offline_receiver: Callable[..., service.Service]) -> None:
    started = offline_receiver([global_secret(""), gitrepo("main")])
    body = push_body(commit_for("empty"))
    headers = push_headers(body, "empty")
    headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()
    response = _post(started.receiver, body, headers)
    assert response.status_code == 401


def test_a_replayed_delivery_is_a_duplicate_and_writes_nothing(receiver: service.Service) -> None:
    body, headers = _signed("replay")
    first = _post(receiver.receiver, body, headers)
    assert first.status_code == 200 and first.json()["summary"]["patched"] == 1
    again = _post(receiver.receiver, body, headers)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert "gitrepos" not in again.json() or not any(
        g["result"] == "patched" for g in again.json()["gitrepos"]
    )


def test_an_oversized_body_is_413_with_a_length_or_chunked(receiver: service.Service) -> None:
    big = b'{"ref":"refs/heads/main","pad":"' + b"x" * 70_000 + b'"}'
    headers = push_headers(big, "big")
    assert _post(receiver.receiver, big, headers).status_code == 413
    chunked = requests.post(
        receiver.receiver, data=iter([big[:30_000], big[30_000:]]), headers=headers, timeout=10
    )
    assert chunked.status_code == 413


@pytest.mark.parametrize(
    "path", ["/../", "/a/../../etc/passwd", "/%00", "/%2e%2e/", "/hooks;x", "/" + "a" * 3000]
)
def test_odd_paths_are_deliveries_or_a_clean_4xx(receiver: service.Service, path: str) -> None:
    body, headers = _signed(f"path-{path[:10]}")
    status = _raw_post(receiver.receiver, path, body, headers)
    assert status in (200, 400, 404, 414), status


def test_a_very_long_path_is_refused_without_a_5xx(receiver: service.Service) -> None:
    assert 400 <= _raw_post(receiver.receiver, "/" + "a" * 20_000, b"{}", {"X-GitHub-Event": "ping"}) < 500


@pytest.mark.parametrize("path", ["//", "//hooks", "/a//b", "/hooks/"])
def test_doubled_and_trailing_slashes_are_still_deliveries(receiver: service.Service, path: str) -> None:
    # Ingress rewrites vary; over real HTTP gunicorn hands "//x" over as "/" (the Werkzeug test client would
    # pass "//" through and get Flask's 308 merge-slashes redirect, which is why this runs over HTTP).
    body, headers = _signed(f"slashes-{path}")
    assert _raw_post(receiver.receiver, path, body, headers) == 200


def test_no_secret_or_token_appears_in_logs_or_responses(receiver: service.Service) -> None:
    answers = []
    for number, secret in enumerate((GLOBAL_SECRET, OWN_SECRET, "wrong")):
        for repo in (REPO, "https://github.com/example/own"):
            body = push_body(commit_for(secret, repo), repo)
            answers.append(
                _post(receiver.receiver, body, push_headers(body, f"leak-{number}-{repo}", secret)).text
            )
    gitlab = (
        b'{"object_kind":"push","ref":"refs/heads/main","after":"'
        + commit_for("gl").encode()
        + b'","project":{"web_url":"https://gitlab.com/example/repo"}}'
    )
    for token in (GITLAB_TOKEN, "sent-wrong-gitlab-token-4411"):
        answers.append(
            _post(
                receiver.receiver,
                gitlab,
                {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token, "Content-Type": "application/json"},
            ).text
        )
    answers.append(
        _post(
            receiver.receiver,
            b"{}",
            {
                "X-Vss-ActivityId": "x",
                "Content-Type": "application/json",
                "Authorization": "Basic c2VudC11c2VyOnNlbnQtcGFzc3dvcmQtOTk=",
            },
        ).text
    )
    log = receiver.log()
    for value in (
        GLOBAL_SECRET,
        OWN_SECRET,
        GITLAB_TOKEN,
        "sent-wrong-gitlab-token-4411",
        "sent-password-99",
        "c2VudC11c2VyOnNlbnQtcGFzc3dvcmQtOTk=",
    ):
        assert value not in log
        assert not any(value in answer for answer in answers)
