"""The generic trigger: recognised by its signature alone, verified, parsed, never unauthenticated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from controller.providers import detect
from controller.providers.base import EventKind, MalformedDelivery, Verification
from controller.providers.generic import GENERIC
from controller.providers.standard_webhooks import sign
from unit.receiver.objects import C

KEY = b"g" * 32
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
REPO = "https://git.example.com/org/app"


def _body(**fields: Any) -> bytes:
    return json.dumps({"repository": REPO, "ref": "refs/heads/master", "commit": C, **fields}).encode()


def _signed(body: bytes, key: bytes = KEY) -> dict[str, str]:
    stamp = int(time.time())
    return {"content-type": "application/json", "webhook-id": "msg_9", "webhook-timestamp": str(stamp),
            "webhook-signature": sign(key, "msg_9", stamp, body)}


def _x_signature(body: bytes, key: bytes = WHSEC.encode()) -> dict[str, str]:
    return {"content-type": "application/json",
            "x-signature": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()}


@pytest.mark.parametrize(("headers", "provider"), [
    pytest.param({"webhook-signature": "v1,x"}, "generic", id="standard-webhooks-alone"),
    pytest.param({"x-signature": "sha256=00"}, "generic", id="x-signature-alone"),
    pytest.param({"webhook-signature": "v1,x", "x-gitlab-event": "Push Hook"}, "gitlab",
                 id="gitlab-signs-the-same-way"),
    pytest.param({"x-signature": "sha256=00", "x-github-event": "push"}, "github", id="a-provider-first"),
])
def test_a_signature_alone_is_the_generic_trigger_only_without_a_provider_header(
        headers: dict[str, str], provider: str) -> None:
    found = detect(headers, b"{}")
    assert found is not None and found.name == provider


# Headers made when the test runs (a Standard Webhooks timestamp made at collection could be stale).
@pytest.mark.parametrize(("headers", "expected"), [
    pytest.param(lambda: _signed(_body()), Verification.VERIFIED, id="standard-webhooks"),
    pytest.param(lambda: _signed(_body(), key=b"x" * 32), Verification.FAILED,
                 id="standard-webhooks-other-key"),
    pytest.param(lambda: _x_signature(_body()), Verification.VERIFIED, id="x-signature"),
    pytest.param(lambda: _x_signature(_body(), key=b"other"), Verification.FAILED,
                 id="x-signature-other-key"),
    pytest.param(lambda: {"content-type": "application/json"}, Verification.MISSING_SIGNATURE, id="unsigned"),
])
def test_both_signature_forms_verify_with_the_generic_key(headers: Callable[[], dict[str, str]],
                                                          expected: Verification) -> None:
    assert GENERIC.verify(headers(), _body(), {"generic": WHSEC.encode()}) is expected


def test_a_push_names_the_repository_ref_and_commit() -> None:
    event = GENERIC.parse(_signed(_body()), _body())
    assert (event.kind, event.repo_urls, event.delivery_id) == (EventKind.PUSH, (REPO,), "msg_9")
    assert [(change.ref, change.commit) for change in event.changes] == [("refs/heads/master", C)]


def test_a_ping_is_a_ping() -> None:
    assert GENERIC.parse({}, b'{"event": "ping"}').kind is EventKind.PING


@pytest.mark.parametrize("body", [
    pytest.param({"ref": "refs/heads/main", "commit": C}, id="no-repository"),
    pytest.param({"repository": REPO, "ref": "main", "commit": C}, id="short-ref"),
    pytest.param({"repository": REPO, "ref": "refs/heads/main"}, id="no-commit"),
    pytest.param({"repository": REPO, "ref": "refs/heads/main", "commit": "abc"}, id="not-a-sha"),
    pytest.param({"repository": "notaurl", "ref": "refs/heads/main", "commit": C}, id="repository-not-a-url"),
    pytest.param({"repository": "https://host", "ref": "refs/heads/main", "commit": C},
                 id="repository-without-a-path"),
])
def test_a_push_without_its_three_facts_is_malformed(body: dict[str, str]) -> None:
    with pytest.raises(MalformedDelivery):
        GENERIC.parse({}, json.dumps(body).encode())
