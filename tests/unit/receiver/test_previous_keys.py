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


OLD_SIGNING = "whsec_" + base64.b64encode(b"o" * 32).decode()


def _gitlab(receiver: Any, token: str | None, signing: str | None) -> Any:
    from controller.receiver.pipeline import Delivery
    data = (b'{"object_kind":"push","ref":"refs/heads/master","after":"' + C.encode()
            + b'","checkout_sha":"' + C.encode()
            + b'","project":{"web_url":"https://gitlab.example.com/group/app"}}')
    headers = {"content-type": "application/json", "x-gitlab-event": "Push Hook"}
    if token is not None:
        headers["x-gitlab-token"] = token
    if signing is not None:
        stamp = int(time.time())
        key = base64.b64decode(signing[len("whsec_"):])
        headers.update({"webhook-id": "msg_1", "webhook-timestamp": str(stamp),
                        "webhook-signature": sign(key, "msg_1", stamp, data)})
    return receiver.handle(Delivery(headers, data))


@pytest.mark.parametrize(("rotated", "token", "signing", "verified"), [
    pytest.param({"gitlab.previous": "old"}, "old", WHSEC, "previous", id="old-token-new-signature"),
    pytest.param({"gitlab.previous": "old"}, "old", None, None, id="old-token-alone-is-not-enough"),
    pytest.param({"gitlab.previous": "old"}, "new", None, None, id="new-token-alone-is-not-enough"),
    pytest.param({"gitlab-signing.previous": OLD_SIGNING}, "new", OLD_SIGNING, "previous",
                 id="new-token-old-signature"),
    pytest.param({"gitlab-signing.previous": OLD_SIGNING}, None, OLD_SIGNING, None,
                 id="old-signature-alone-is-not-enough"),
    pytest.param({"gitlab.previous": "old", "gitlab-signing.previous": OLD_SIGNING}, "old", OLD_SIGNING,
                 "previous", id="both-old"),
    pytest.param({"gitlab.previous": "old", "gitlab-signing.previous": OLD_SIGNING}, "new", WHSEC,
                 "current", id="both-new"),
])
def test_a_rotation_never_makes_another_key_optional(
        make_receiver: MakeReceiver, rotated: dict[str, str], token: str | None, signing: str | None,
        verified: str | None) -> None:
    """The Secret holds a GitLab token and a signing token: a delivery needs both, whichever of
    them is in rotation."""
    receiver, _ = make_receiver([_rotating(timedelta(hours=1), **{"gitlab": "new", "gitlab-signing": WHSEC},
                                           **rotated),
                                 gitrepo(repo="https://gitlab.example.com/group/app")])
    if verified is None:
        with pytest.raises(NotAuthenticated):
            _gitlab(receiver, token, signing)
    else:
        assert _gitlab(receiver, token, signing).body["secret"] == verified


@pytest.mark.parametrize(("user", "password", "verified"), [
    pytest.param("old-user", "old-password", "previous", id="the-old-pair"),
    pytest.param("new-user", "new-password", "current", id="the-new-pair"),
    pytest.param("old-user", "new-password", None, id="old-user-new-password"),
    pytest.param("new-user", "old-password", None, id="new-user-old-password"),
])
def test_a_pair_rotates_as_a_pair(make_receiver: MakeReceiver, user: str, password: str,
                                  verified: str | None) -> None:
    from controller.receiver.pipeline import Delivery
    receiver, _ = make_receiver([
        _rotating(timedelta(hours=1), **{"azure-username": "new-user", "azure-password": "new-password",
                                         "azure-username.previous": "old-user",
                                         "azure-password.previous": "old-password"}),
        gitrepo(repo="https://dev.azure.com/org/project/_git/app")])
    data = (b'{"eventType":"git.push","resource":{"refUpdates":[{"name":"refs/heads/master","newObjectId":"'
            + C.encode() + b'"}],"repository":{"remoteUrl":"https://dev.azure.com/org/project/_git/app"}}}')
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    delivery = Delivery({"content-type": "application/json", "x-vss-activityid": "a",
                         "authorization": f"Basic {credentials}"}, data)
    if verified is None:
        with pytest.raises(NotAuthenticated):
            receiver.handle(delivery)
    else:
        assert receiver.handle(delivery).body["secret"] == verified
