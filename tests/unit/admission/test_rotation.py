"""The webhook Secret's rotation rules and Standard Webhooks values, judged by the Secret webhook."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from controller.admission.decisions import Decision
from controller.admission.reviews import parse_review
from controller.admission.rotation import rotation_problems
from controller.admission.validation import validate_secret

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
ANNOTATION = "gitjob.fleet.cattle.io/previous-keys-expire"


def _stamp(delta: timedelta) -> str:
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret(data: dict[str, str], expiry: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"}
    if expiry is not None:
        metadata["annotations"] = {ANNOTATION: expiry}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "stringData": data}


def _judge(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Decision:
    request: dict[str, Any] = {
        "uid": "u", "operation": "UPDATE" if old else "CREATE",
        "kind": {"group": "", "version": "v1", "kind": "Secret"},
        "resource": {"group": "", "version": "v1", "resource": "secrets"},
        "name": "gitjob-webhook", "namespace": "cattle-fleet-system", "object": obj, "userInfo": {}}
    if old is not None:
        request["oldObject"] = old
    review = parse_review(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                      "request": request}).encode())
    return validate_secret(review, controller_namespace="cattle-fleet-system", now=NOW)


@pytest.mark.parametrize(("data", "expiry", "problem"), [
    pytest.param({"github": "new", "github.previous": "old"}, None,
                 "previous keys need the annotation", id="previous-without-expiry"),
    pytest.param({"github": "new", "github.previous": "old"}, "tomorrow",
                 "is not an RFC 3339 time", id="expiry-not-a-time"),
    pytest.param({"github": "new", "github.previous": "old"}, _stamp(timedelta(minutes=-1)),
                 "has passed", id="expiry-past"),
    pytest.param({"github": "new", "github.previous": "old"}, _stamp(timedelta(days=31)),
                 "more than 30 days ahead", id="expiry-31-days-away"),
    pytest.param({"github.previous": "old"}, _stamp(timedelta(days=1)),
                 'has no "github" beside it', id="previous-without-current"),
    pytest.param({"azure-username": "u", "azure-password": "p", "azure-password.previous": "q"},
                 _stamp(timedelta(days=1)), 'has no "azure-username.previous" beside it', id="half-a-pair"),
    pytest.param({"gitlab-signing": "not-whsec"}, None, "is not a Standard Webhooks secret",
                 id="signing-token-without-prefix"),
    pytest.param({"generic": "whsec_" + base64.b64encode(b"k" * 8).decode()}, None,
                 "decodes to 8 bytes", id="generic-key-too-short"),
    pytest.param({"generic": "whsec_" + base64.b64encode(b"k" * 65).decode()}, None,
                 "decodes to 65 bytes", id="generic-key-too-long"),
    pytest.param({"generic": "whsec_!!!"}, None, "is not a Standard Webhooks secret",
                 id="generic-not-base64"),
    pytest.param({"github-previous": "x", "github": "y"}, None, 'did you mean "github.previous"?',
                 id="previous-misspelt"),
])
def test_a_bad_rotation_or_signing_key_is_denied_with_the_fix(data: dict[str, str], expiry: str | None,
                                                              problem: str) -> None:
    decision = _judge(_secret(data, expiry))
    assert not decision.allowed
    assert problem in decision.message


@pytest.mark.parametrize(("data", "expiry"), [
    pytest.param({"github": "new", "github.previous": "old"}, _stamp(timedelta(hours=24)), id="a-day"),
    pytest.param({"github": "new", "github.previous": "old"}, _stamp(timedelta(days=30)), id="30-days"),
    pytest.param({"azure-username": "u", "azure-password": "p", "azure-username.previous": "u",
                  "azure-password.previous": "q"}, _stamp(timedelta(hours=1)), id="a-pair"),
    pytest.param({"gitlab": "t", "gitlab-signing": WHSEC, "gitlab-signing.previous": WHSEC},
                 _stamp(timedelta(hours=1)), id="signing-token"),
    pytest.param({"generic": WHSEC}, None, id="generic-whsec"),
    pytest.param({"github": "x"}, "2026-01-01T00:00:00Z", id="annotation-without-previous-keys"),
])
def test_a_rotation_under_way_is_allowed(data: dict[str, str], expiry: str | None) -> None:
    assert _judge(_secret(data, expiry)).allowed


def test_an_update_that_leaves_an_expired_rotation_alone_is_allowed_with_a_warning() -> None:
    expired = _secret({"github": "new", "github.previous": "old"}, _stamp(timedelta(hours=-1)))
    relabelled = {**expired, "metadata": {**expired["metadata"], "labels": {"team": "a"}}}
    decision = _judge(relabelled, old=expired)
    assert decision.allowed
    assert any("previous keys expired" in warning for warning in decision.warnings)


def test_an_update_that_moves_the_expiry_into_the_past_is_denied() -> None:
    live = _secret({"github": "new", "github.previous": "old"}, _stamp(timedelta(hours=1)))
    ended = _secret({"github": "new", "github.previous": "old"}, _stamp(timedelta(hours=-1)))
    assert not _judge(ended, old=live).allowed


def test_thousands_of_previous_keys_get_problems_for_the_judged_ones_only() -> None:
    # One review naming 20,000 orphaned previous keys once cost seconds of the API server's write path.
    keys = [f"k{n:05d}.previous" for n in range(20_000)]
    secret = _secret(dict.fromkeys(keys, "old"), _stamp(timedelta(hours=1)))
    problems, reasons, _ = rotation_problems(secret, None, keys, 32, NOW)
    assert sorted(problems) == keys[:32]
    assert reasons == ["previous-without-current"] * 32
