"""``secret rotate`` as a pure change of a Secret: what moves to ``.previous``, what is new, and that the
result is a Secret the admission webhook admits."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from controller.admission.reviews import parse_review
from controller.admission.validation import validate_secret
from controller.cli.errors import Failure, UsageError
from controller.cli.secret import _rotated
from controller.fleet.secrets import PREVIOUS_EXPIRY_ANNOTATION, decode_data, parse_expiry, utc_now
from controller.providers import by_name
from controller.providers.standard_webhooks import decode_key

WHSEC = "whsec_" + base64.b64encode(b"s" * 32).decode()


def _secret(annotations: dict[str, str] | None = None, /, **values: str) -> dict[str, Any]:
    """A Secret as the API server returns it; ``github_previous=`` is the key ``github.previous``."""
    metadata: dict[str, Any] = {"name": "gitjob-webhook", "namespace": "cattle-fleet-system",
                                "resourceVersion": "7"}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
            "data": {key.replace("_previous", ".previous").replace("_", "-"):
                     base64.b64encode(value.encode()).decode() for key, value in values.items()}}


def _rotate(secret: dict[str, Any], provider: str, key: str | None = None,
            from_file: str | None = None) -> tuple[dict[str, bytes], dict[str, str], dict[str, Any]]:
    found = by_name(provider)
    assert found is not None
    rotated, new = _rotated(secret, found, timedelta(hours=24), from_file, key)
    return dict(decode_data(rotated).values), new, rotated


def _admitted(new: dict[str, Any], old: dict[str, Any]) -> bool:
    request = {"uid": "u", "operation": "UPDATE", "kind": {"group": "", "version": "v1", "kind": "Secret"},
               "resource": {"group": "", "version": "v1", "resource": "secrets"}, "name": "gitjob-webhook",
               "namespace": "cattle-fleet-system", "object": new, "oldObject": old, "userInfo": {}}
    review = parse_review(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                      "request": request}).encode())
    decision = validate_secret(review, controller_namespace="cattle-fleet-system", now=utc_now())
    return decision.allowed


@pytest.mark.parametrize(("before", "provider", "key", "previous", "changed", "kept"), [
    pytest.param({"github": "old"}, "github", None, {"github.previous": b"old"}, ["github"], {}, id="github"),
    pytest.param({"github": "gh", "gitlab": "gl"}, "gitlab", None, {"gitlab.previous": b"gl"}, ["gitlab"],
                 {"github": b"gh"}, id="other-providers-untouched"),
    pytest.param({"azure_username": "fleet", "azure_password": "pw"}, "azure-devops", None,
                 {"azure-username.previous": b"fleet", "azure-password.previous": b"pw"}, ["azure-password"],
                 {"azure-username": b"fleet"}, id="azure-pair-rotates-together-user-kept"),
    pytest.param({"generic": WHSEC}, "generic", None, {"generic.previous": WHSEC.encode()}, ["generic"], {},
                 id="generic-whsec"),
    pytest.param({"gitlab": "tok", "gitlab_signing": WHSEC}, "gitlab", "gitlab", {"gitlab.previous": b"tok"},
                 ["gitlab"], {"gitlab-signing": WHSEC.encode()}, id="one-key-of-two"),
])
def test_rotation_moves_the_current_value_aside_and_writes_a_new_one(
        before: dict[str, str], provider: str, key: str | None, previous: dict[str, bytes],
        changed: list[str], kept: dict[str, bytes]) -> None:
    old = _secret(**before)
    values, new, rotated = _rotate(old, provider, key)
    assert {k: v for k, v in values.items() if k.endswith(".previous")} == previous
    assert sorted(new) == changed
    for name in changed:
        assert values[name] == new[name].encode() and values[name] != previous[name + ".previous"]
        if name in ("generic", "gitlab-signing"):
            assert decode_key(values[name]) is not None and len(decode_key(values[name]) or b"") == 32
        else:
            assert len(values[name]) >= 43   # 32 random bytes, URL-safe base64
    for name, value in kept.items():
        assert values[name] == value
    expiry = parse_expiry(rotated["metadata"]["annotations"][PREVIOUS_EXPIRY_ANNOTATION])
    assert expiry is not None and timedelta(hours=23) < expiry - utc_now() <= timedelta(hours=24)
    assert rotated["metadata"]["resourceVersion"] == "7"   # a concurrent change makes the PUT fail
    assert _admitted(rotated, old)


def test_each_rotation_makes_a_different_value() -> None:
    old = _secret(github="old")
    assert _rotate(old, "github")[1] != _rotate(old, "github")[1]


def test_a_value_from_a_file_is_taken_stripped(tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text(WHSEC + "\n")
    values, new, rotated = _rotate(_secret(gitlab_signing="whsec_" + base64.b64encode(b"o" * 32).decode()),
                                   "gitlab", "gitlab-signing", str(token))
    assert values["gitlab-signing"] == WHSEC.encode() and new == {"gitlab-signing": WHSEC}


def test_an_ended_rotation_is_replaced() -> None:
    ended = (utc_now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = _secret({PREVIOUS_EXPIRY_ANNOTATION: ended}, github="second", github_previous="first",
                  gitlab="gl", gitlab_previous="gl-first")
    values, _, rotated = _rotate(old, "github")
    assert values["github.previous"] == b"second" and "gitlab.previous" not in values
    assert _admitted(rotated, old)


@pytest.mark.parametrize(("before", "annotations", "provider", "key", "from_file", "error", "message"), [
    pytest.param({"github": "a", "github_previous": "b"},
                 {PREVIOUS_EXPIRY_ANNOTATION: "2999-01-01T00:00:00Z"}, "github", None, None, Failure,
                 "already under way", id="rotation-under-way"),
    pytest.param({"github": "a", "github_previous": "b"}, None, "github", None, None, Failure,
                 "already under way", id="previous-without-expiry-counts-as-under-way"),
    pytest.param({"gitlab": "a"}, None, "github", None, None, Failure, "no github key", id="no-key"),
    pytest.param({"gitlab_signing": WHSEC}, None, "gitlab", "gitlab-signing", None, UsageError,
                 "GitLab makes signing tokens", id="signing-token-needs-a-file"),
    pytest.param({"github": "a"}, None, "github", "gitlab", None, UsageError, "is not a github key",
                 id="key-of-another-provider"),
    pytest.param({"gitlab": "a", "gitlab_signing": WHSEC}, None, "gitlab", None, "/dev/null", UsageError,
                 "pick the key with --key", id="one-file-two-keys"),
    pytest.param({"github": "a"}, None, "github", None, "/nonexistent/token", UsageError, "cannot read",
                 id="unreadable-file"),
])
def test_rotations_that_cannot_be_done_say_why(before: dict[str, str], annotations: dict[str, str] | None,
                                               provider: str, key: str | None, from_file: str | None,
                                               error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _rotate(_secret(annotations, **before), provider, key, from_file)
