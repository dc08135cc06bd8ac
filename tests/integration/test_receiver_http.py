"""The receiver over real HTTP (gunicorn): status codes, limits, encodings, and no secret in any output.

Every answer here must be JSON and none may be a 500, whatever the input.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from support import service
from support.paths import EXAMPLE_GITREPOS, PROVIDER_FIXTURES
from support.waiting import wait_for

# The example Secret's values (manifests/examples/gitrepos.yaml): public test vectors.
EXAMPLE_SECRETS = ("IsWishesWereHorsesWedAllBeEatingSteak!", "sampleToken!")
GITHUB_KEY = EXAMPLE_SECRETS[0].encode()
PUSH = (PROVIDER_FIXTURES / "github/push.json").read_bytes()


def _start(tmp_path_factory: pytest.TempPathFactory, *flags: str) -> service.Service:
    log = tmp_path_factory.mktemp("receiver") / "service.log"
    started = service.start(
        [
            "serve",
            "receiver",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "offline",
            "--gitrepos",
            str(EXAMPLE_GITREPOS),
            "--graceful-timeout",
            "1",
            *flags,
        ],
        str(log),
    )
    try:
        started.receiver = "http://" + service.listening(started, "receiver")
        service.wait_ready(started.receiver, started)
    except AssertionError:
        started.stop()
        raise
    return started


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.Service]:
    """One receiver (example store, debug logging) for every test that does not need its own flags.

    Tests that write use a commit of their own, so their order does not matter.
    """
    started = _start(tmp_path_factory, "--log-level", "debug")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.Service]:
    """A receiver that takes bodies of at most 1 KiB."""
    started = _start(tmp_path_factory, "--max-body-size", "1KiB")
    yield started
    started.stop()


def _send(method: str, url: str, **kwargs: Any) -> requests.Response:
    """One request; every answer must be JSON and never a 500."""
    response = requests.request(method, url, timeout=10, **kwargs)
    assert response.status_code != 500, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    response.json()
    return response


def _push_with_commit(commit: str) -> bytes:
    payload = json.loads(PUSH)
    payload["after"] = commit
    return json.dumps(payload).encode()


def _signature(data: bytes, key: bytes = GITHUB_KEY) -> str:
    return "sha256=" + hmac.new(key, data, hashlib.sha256).hexdigest()


def _github(
    url: str,
    data: bytes,
    signature: str | None = None,
    content_type: str = "application/json",
    path: str = "/",
    **headers: str,
) -> requests.Response:
    sent = {
        "X-GitHub-Event": "push",
        "Content-Type": content_type,
        "X-Hub-Signature-256": signature if signature is not None else _signature(data),
        **headers,
    }
    return _send("POST", url + path, data=data, headers=sent)


def _result_of(response: requests.Response, name: str) -> str:
    results: dict[str, str] = {entry["name"]: entry["result"] for entry in response.json()["gitrepos"]}
    return results.get(name, "")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"{not json", "not valid JSON", id="not JSON"),
        pytest.param(b"[1, 2]", "not a JSON object", id="not an object"),
        pytest.param(b"", "empty body", id="empty"),
        pytest.param(b'{"ref": 5, "repository": {}}', "ref must be a string", id="wrong field type"),
    ],
)
def test_a_malformed_body_is_400_naming_the_problem(
    shared: service.Service, data: bytes, expected: str
) -> None:
    response = _github(shared.receiver, data)
    assert response.status_code == 400
    assert expected in response.json()["message"]


def test_a_delivery_without_a_provider_header_is_400(shared: service.Service) -> None:
    response = _send("POST", shared.receiver, data=PUSH, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "unknown sender" in response.json()["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_a_method_other_than_post_is_405_with_allow_post(shared: service.Service, method: str) -> None:
    response = _send(method, shared.receiver + "/gitjob", data=PUSH, headers={"X-GitHub-Event": "push"})
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_a_body_over_the_limit_is_413(small: service.Service) -> None:
    response = _github(small.receiver, PUSH)
    assert response.status_code == 413


def test_a_chunked_body_over_the_limit_is_413(small: service.Service) -> None:
    chunks = iter([PUSH[:800], PUSH[800:1600], PUSH[1600:]])
    response = _send(
        "POST",
        small.receiver,
        data=chunks,
        headers={"X-GitHub-Event": "push", "Content-Type": "application/json"},
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413


def _padded(size: int) -> bytes:
    data = b'{"pad": ""}'
    return data[:-2] + b"x" * (size - len(data)) + data[-2:]


@pytest.mark.parametrize("chunked", [pytest.param(False, id="sized"), pytest.param(True, id="chunked")])
def test_a_body_of_exactly_the_limit_is_read(small: service.Service, chunked: bool) -> None:
    data = _padded(1024)
    response = _send(
        "POST",
        small.receiver,
        data=iter([data[:500], data[500:]]) if chunked else data,
        headers={
            "X-GitHub-Event": "zen",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": _signature(data),
        },
    )
    assert (response.status_code, response.json()["outcome"]) == (200, "ignored")


def test_a_text_plain_body_is_415(shared: service.Service) -> None:
    response = _github(shared.receiver, PUSH, content_type="text/plain")
    assert response.status_code == 415


def test_failures_over_the_budget_are_429_and_a_verified_delivery_still_passes(
    tmp_path_factory: pytest.TempPathFactory
) -> None:
    limited = _start(tmp_path_factory, "--rate-limit", "0.01", "--rate-burst", "2")
    try:
        bad = {"X-GitHub-Event": "zen", "X-Hub-Signature-256": _signature(b"{}", b"wrong")}
        failures = [_send("POST", limited.receiver, data=b"{}", headers=bad) for _ in range(4)]
        good = {"X-GitHub-Event": "zen", "X-Hub-Signature-256": _signature(b"{}")}
        verified = _send("POST", limited.receiver, data=b"{}", headers=good)
    finally:
        limited.stop()
    assert [response.status_code for response in failures] == [401, 401, 429, 429]
    assert int(failures[-1].headers["Retry-After"]) >= 1
    assert verified.status_code == 200, verified.text


@pytest.mark.parametrize("path", ["/", "/gitjob", "/a/b/c"])
def test_a_delivery_is_accepted_on_any_path(shared: service.Service, path: str) -> None:
    commit = hashlib.sha1(path.encode()).hexdigest()
    response = _github(shared.receiver, _push_with_commit(commit), path=path)
    assert response.status_code == 200
    assert response.json()["refs"] == [{"ref": "refs/heads/master", "commit": commit}]


def test_a_form_encoded_github_delivery_signed_over_the_form_bytes_patches(shared: service.Service) -> None:
    form = urlencode({"payload": _push_with_commit("1" * 40).decode()}).encode()
    response = _github(shared.receiver, form, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.text
    assert _result_of(response, "sample-app") == "patched"


def test_a_signature_changed_by_one_character_is_401_and_writes_nothing(shared: service.Service) -> None:
    data = _push_with_commit("2" * 40)
    good = _signature(data)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")

    refused = _github(shared.receiver, data, signature=bad)
    assert refused.status_code == 401
    assert "signature does not match" in refused.json()["message"]
    # The request's log line says why too, for whoever reads the log rather than the provider's page.
    wait_for(lambda: '"status": 401' in shared.log(), timeout=10, message="the 401's request log line")
    (line,) = [json.loads(line) for line in shared.log().splitlines()
               if '"status": 401' in line and "signature does not match" in line][-1:]
    assert line["problem"].startswith(
        "github delivery not authenticated: the delivery's signature does not match")

    # Had the refused delivery written the commit, this one would find sample-app already current.
    accepted = _github(shared.receiver, data, signature=good)
    assert _result_of(accepted, "sample-app") == "patched"


def test_no_secret_value_appears_in_any_response_or_log_line(shared: service.Service) -> None:
    data = _push_with_commit("3" * 40)
    gitlab = (PROVIDER_FIXTURES / "gitlab/push-event.json").read_bytes()
    responses = [
        _github(shared.receiver, data, signature="sha256=" + "0" * 64),
        _github(shared.receiver, data, signature=""),
        _github(shared.receiver, data),
        _send(
            "POST",
            shared.receiver,
            data=gitlab,
            headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"},
        ),
        _send(
            "POST",
            shared.receiver,
            data=gitlab,
            headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": EXAMPLE_SECRETS[1]},
        ),
    ]
    assert [response.status_code for response in responses] == [401, 401, 200, 401, 200]
    outputs = [response.text + json.dumps(dict(response.headers)) for response in responses]
    outputs.append(shared.log())
    for secret_value in EXAMPLE_SECRETS:
        assert not [text for text in outputs if secret_value in text]


def test_a_raw_request_with_a_bad_content_length_is_a_4xx_not_a_crash(shared: service.Service) -> None:
    port = int(shared.receiver.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: abc\r\n"
            b"Connection: close\r\n\r\n"
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]


def test_a_client_that_stalls_its_body_holds_no_worker_thread(
    start_receiver: Callable[..., service.Service]
) -> None:
    """With one thread, a stalled body would block every other request; it gets 408 instead."""
    started = start_receiver("--threads", "1", "--request-timeout", "1")
    port = int(started.receiver.rsplit(":", 1)[1])
    stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
    stalled.sendall(
        b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"ref":'
    )
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert answer.status_code == 200
        head = stalled.recv(4096)
        assert head.startswith(b"HTTP/1.1 408"), head[:100]
    finally:
        stalled.close()
