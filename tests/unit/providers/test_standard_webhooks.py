"""Standard Webhooks verification against signatures made by an independent implementation.

The signatures come from the npm ``standardwebhooks`` package (support.interop), so a shared
misreading of the spec by our signer and our verifier cannot pass.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace

import pytest

from controller.providers.base import Verification
from controller.providers.standard_webhooks import decode_key, sign, verify
from support.interop import Signed, npm_signatures

KEY = base64.b64encode(b"a-32-byte-standard-webhooks-key!").decode()
SECRET = "whsec_" + KEY
NOW = 1_764_500_000
BODY = b'{"repository": "https://git.example.com/org/repo", "ref": "refs/heads/main"}'


@dataclass(frozen=True)
class Message:
    id: str = "msg_2Yqa1"
    timestamp: int = NOW
    body: bytes = BODY
    secret: str = SECRET


def _npm_signatures(messages: list[Message]) -> list[str]:
    return npm_signatures([Signed(m.secret, m.id, m.timestamp, m.body) for m in messages])


@pytest.fixture(scope="module")
def npm_signature() -> str:
    """The npm package's signature of the default message."""
    return _npm_signatures([Message()])[0]


def _headers(message: Message, signature: str) -> dict[str, str]:
    return {"webhook-id": message.id, "webhook-timestamp": str(message.timestamp),
            "webhook-signature": signature}


def test_our_signer_agrees_with_the_npm_package(npm_signature: str) -> None:
    assert sign(base64.b64decode(KEY), Message.id, NOW, BODY) == npm_signature


@pytest.mark.parametrize(("sent", "checked", "expected"), [
    pytest.param(Message(), Message(), Verification.VERIFIED, id="valid"),
    pytest.param(Message(), Message(id="msg_other"), Verification.FAILED, id="tampered-id"),
    pytest.param(Message(), Message(timestamp=NOW + 1), Verification.FAILED, id="tampered-timestamp"),
    pytest.param(Message(), Message(body=BODY + b" "), Verification.FAILED, id="tampered-body"),
    pytest.param(Message(secret="whsec_" + base64.b64encode(b"x" * 32).decode()), Message(),
                 Verification.FAILED, id="another-key"),
])
def test_a_signature_verifies_only_for_what_was_signed(sent: Message, checked: Message,
                                                       expected: Verification) -> None:
    signature = _npm_signatures([sent])[0]
    assert verify(_headers(checked, signature), checked.body, base64.b64decode(KEY), now=NOW) is expected


@pytest.mark.parametrize(("signatures", "expected"), [
    pytest.param("{sig}", Verification.VERIFIED, id="one-entry"),
    pytest.param("v1,bm90IGl0 {sig}", Verification.VERIFIED, id="second-of-two"),
    pytest.param("{sig} v1,bm90IGl0 v1,YWxzbyBub3Q=", Verification.VERIFIED, id="first-of-three"),
    pytest.param("v1a,{body}", Verification.NO_V1_SIGNATURE, id="v1a-entries-ignored"),
    pytest.param("v1a,{body} v1,bm90IGl0", Verification.FAILED, id="v1a-ignored-v1-wrong"),
    pytest.param("v1,{tampered}", Verification.FAILED, id="tampered-signature"),
    pytest.param("{body}", Verification.NO_V1_SIGNATURE, id="no-version-prefix"),
])
def test_any_v1_entry_may_match_and_other_versions_are_ignored(npm_signature: str, signatures: str,
                                                               expected: Verification) -> None:
    body = npm_signature[3:]
    tampered = ("A" if body[0] != "A" else "B") + body[1:]
    header = signatures.format(sig=npm_signature, body=body, tampered=tampered)
    assert verify(_headers(Message(), header), BODY, base64.b64decode(KEY), now=NOW) is expected


@pytest.mark.parametrize(("offset", "expected"), [
    pytest.param(-301, Verification.STALE_TIMESTAMP, id="older-than-5-minutes"),
    pytest.param(-299, Verification.VERIFIED, id="almost-5-minutes-old"),
    pytest.param(299, Verification.VERIFIED, id="almost-5-minutes-ahead"),
    pytest.param(301, Verification.STALE_TIMESTAMP, id="more-than-5-minutes-ahead"),
])
def test_timestamps_far_from_now_are_refused(offset: int, expected: Verification) -> None:
    message = replace(Message(), timestamp=NOW + offset)
    signature = _npm_signatures([message])[0]
    assert verify(_headers(message, signature), BODY, base64.b64decode(KEY), now=NOW) is expected


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-headers"),
    pytest.param({"webhook-id": "x", "webhook-timestamp": str(NOW)}, id="no-signature"),
    pytest.param({"webhook-signature": "v1,x", "webhook-timestamp": str(NOW)}, id="no-id"),
])
def test_a_missing_header_is_a_missing_signature(headers: dict[str, str]) -> None:
    assert verify(headers, BODY, b"k" * 32, now=NOW) is Verification.MISSING_SIGNATURE


@pytest.mark.parametrize("stamp", ["soon", "-1", "1e9", "99999999999999", "\u00b2", "\uff11\uff12\uff13",
                                   " 17"])
def test_a_timestamp_that_is_not_seconds_fails(stamp: str) -> None:
    headers = {"webhook-id": "x", "webhook-timestamp": stamp, "webhook-signature": "v1,x"}
    assert verify(headers, BODY, b"k" * 32, now=NOW) is Verification.FAILED


@pytest.mark.parametrize(("value", "key"), [
    pytest.param(SECRET.encode(), base64.b64decode(KEY), id="whsec"),
    pytest.param(KEY.encode(), None, id="no-prefix"),
    pytest.param(b"whsec:" + KEY.encode(), None, id="wrong-prefix"),
    pytest.param(b"whsec_not base64!", None, id="not-base64"),
    pytest.param(b"whsec_", None, id="empty"),
])
def test_only_whsec_values_are_keys(value: bytes, key: bytes | None) -> None:
    assert decode_key(value) == key
