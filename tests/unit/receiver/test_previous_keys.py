"""A rotation's overlap: the previous key verifies until the Secret's expiry, and says so."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from controller.providers.standard_webhooks import sign
from controller.serving.errors import NotAuthenticated
from unit.receiver.conftest import MakeReceiver
from unit.receiver.objects import C, gitrepo, github_push, hmac_hex, secret

ANNOTATION = "gitjob.fleet.cattle.io/previous-keys-expire"
WHSEC_KEY = b"r" * 32
WHSEC = "whsec_" + base64.b64encode(WHSEC_KEY).decode()


def _rotating(expires_in: timedelta, **data: str) -> dict[str, Any]:
    obj = secret(**data)
    expiry = (datetime.now(timezone.utc) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj["metadata"]["annotations"] = {ANNOTATION: expiry}
    return obj


def _github(receiver: Any, key: str, payload: bytes | None = None) -> Any:
    from controller.receiver.pipeline import Delivery
    data = payload or github_push(ref="refs/heads/master")
    return receiver.handle(Delivery({"content-type": "application/json", "x-github-event": "push",
                                     "x-hub-signature-256": "sha256=" + hmac_hex(key, data)}, data))


def test_the_current_key_verifies_and_says_so(make_receiver: MakeReceiver) -> None:
    rotating = _rotating(timedelta(hours=1), **{"github": "new", "github.previous": "old"})
    receiver, _ = make_receiver([rotating, gitrepo()])
    reply = _github(receiver, "new")
    assert (reply.status, reply.body["secret"], reply.body["summary"]["patched"]) == (200, "current", 1)


def test_the_previous_key_verifies_until_the_expiry_with_a_warning_event(
        make_receiver: MakeReceiver) -> None:
    rotating = _rotating(timedelta(hours=1), **{"github": "new", "github.previous": "old"})
    receiver, store = make_receiver([rotating, gitrepo()])
    reply = _github(receiver, "old")
    assert (reply.status, reply.body["secret"], reply.body["summary"]["patched"]) == (200, "previous", 1)
    warning = next(event for event in store.events if event["reason"] == "WebhookSecretPrevious")
    assert warning["type"] == "Warning" and "accepted until" in warning["message"]


def test_after_the_expiry_the_previous_key_is_refused_and_said_once(
        make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture) -> None:
    expired = _rotating(timedelta(seconds=-1), **{"github": "new", "github.previous": "old"})
    receiver, _ = make_receiver([expired, gitrepo()])
    for commit in ("1" * 40, "2" * 40):
        with pytest.raises(NotAuthenticated):
            _github(receiver, "old", github_push(ref="refs/heads/master", after=commit))
    said = [record for record in caplog.records if "previous webhook secret keys have expired" in record.msg]
    assert len(said) == 1


def test_a_previous_key_without_an_expiry_never_counts(make_receiver: MakeReceiver) -> None:
    receiver, _ = make_receiver([secret(**{"github": "new", "github.previous": "old"}), gitrepo()])
    with pytest.raises(NotAuthenticated):
        _github(receiver, "old")


def test_a_gitlab_signing_token_in_rotation_verifies_with_the_previous_key(
        make_receiver: MakeReceiver) -> None:
    from controller.receiver.pipeline import Delivery
    old_key = b"o" * 32
    receiver, _ = make_receiver([
        _rotating(timedelta(hours=1), **{
            "gitlab-signing": WHSEC,
            "gitlab-signing.previous": "whsec_" + base64.b64encode(old_key).decode()}),
        gitrepo(repo="https://gitlab.example.com/group/app")])
    data = (b'{"object_kind":"push","ref":"refs/heads/master","after":"' + C.encode()
            + b'","checkout_sha":"' + C.encode()
            + b'","project":{"web_url":"https://gitlab.example.com/group/app"}}')
    stamp = int(time.time())
    reply = receiver.handle(Delivery({"content-type": "application/json", "x-gitlab-event": "Push Hook",
                                      "webhook-id": "msg_1", "webhook-timestamp": str(stamp),
                                      "webhook-signature": sign(old_key, "msg_1", stamp, data)}, data))
    assert (reply.body["secret"], reply.body["summary"]["patched"], reply.body["delivery"]) == \
        ("previous", 1, "msg_1")
