"""AdmissionReview parsing (`reviews`) and the one response builder (`decisions`), which together
answer every review."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.admission.mutation import mutate_gitrepo
from controller.admission.decisions import MAX_WARNING_CHARS, Decision, build_response
from controller.admission.reviews import BadReview, Review, parse_review
from controller.admission.validation import validate_secret
from controller.admission.wire import PatchOperation
from unit.admission.conftest import MakeObject, ToBody


def _without(review: dict[str, Any], *path: str) -> dict[str, Any]:
    target = review
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return review


def _with(review: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    target = review
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return review


def test_a_v1_review_is_parsed_into_a_read_only_view(
    make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody
) -> None:
    body = make_review(operation="UPDATE", obj=make_gitrepo(), old=make_gitrepo(), dry_run=True, uid="u-1")

    review = parse_review(to_body(body))

    assert review.api_version == "admission.k8s.io/v1"
    assert review.uid == "u-1"
    assert review.operation == "UPDATE"
    assert (review.kind.group, review.kind.version, review.kind.kind) == (
        "fleet.cattle.io",
        "v1alpha1",
        "GitRepo",
    )
    assert (review.resource.group, review.resource.resource) == ("fleet.cattle.io", "gitrepos")
    assert review.request_resource == review.resource
    assert (review.name, review.namespace, review.sub_resource) == ("sample", "fleet-default", "")
    assert review.user.username == "kubernetes-admin"
    assert review.user.groups == ("kubeadm:cluster-admins", "system:authenticated")
    assert review.object == make_gitrepo() and review.old_object == make_gitrepo()
    assert review.dry_run is True
    assert review.options is not None and review.options["kind"] == "UpdateOptions"


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_the_response_echoes_api_version_kind_and_uid(
    api_version: str, make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody
) -> None:
    review = parse_review(to_body(make_review(obj=make_gitrepo(), api_version=api_version, uid="abc-123")))

    response = build_response(review, Decision(allowed=True), mutating=True)

    assert response["apiVersion"] == api_version
    assert response["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == "abc-123"
    assert response["response"]["allowed"] is True


def test_delete_with_a_null_object_is_a_valid_review(
    make_review: MakeObject, make_secret: MakeObject, to_body: ToBody
) -> None:
    review = parse_review(
        to_body(make_review(operation="DELETE", group="", resource="secrets", old=make_secret()))
    )

    assert review.object is None and review.old_object is not None


def test_the_name_falls_back_to_metadata_name_when_the_request_has_none(
    make_review: MakeObject, make_secret: MakeObject, to_body: ToBody
) -> None:
    review = parse_review(to_body(make_review(group="", resource="secrets", name="", obj=make_secret())))

    assert review.name == "" and review.object_name == "gitjob-webhook"


Edit = Callable[[dict[str, Any]], dict[str, Any]]


def _edit(change: Edit) -> Edit:
    """A case that edits a well-formed GitRepo CREATE review."""
    return change


MALFORMED = [
    pytest.param(b"\xff\xfe{}", "not UTF-8", id="not-utf8"),
    pytest.param(b"{", "not JSON", id="not-json"),
    pytest.param(b'{"a": NaN}', "not JSON", id="nan-is-not-json"),
    pytest.param(b"[" * 100_000, "not JSON", id="deep-nesting"),
    pytest.param(b"[]", "not a JSON object", id="array"),
    pytest.param(b'"review"', "not a JSON object", id="string"),
    pytest.param(
        _edit(lambda r: _with(r, "admission.k8s.io/v2", "apiVersion")), "apiVersion", id="api-version"
    ),
    pytest.param(_edit(lambda r: _without(r, "apiVersion")), "apiVersion", id="no-api-version"),
    pytest.param(_edit(lambda r: _with(r, "AdmissionRequest", "kind")), "kind must be", id="kind"),
    pytest.param(_edit(lambda r: _without(r, "request")), "request must be an object", id="no-request"),
    pytest.param(_edit(lambda r: _with(r, [], "request")), "request must be an object", id="request-array"),
    pytest.param(_edit(lambda r: _without(r, "request", "uid")), "request.uid", id="no-uid"),
    pytest.param(_edit(lambda r: _with(r, "", "request", "uid")), "request.uid", id="empty-uid"),
    pytest.param(_edit(lambda r: _with(r, 42, "request", "uid")), "request.uid", id="numeric-uid"),
    pytest.param(_edit(lambda r: _with(r, "u" * 129, "request", "uid")), "request.uid is over 128 characters",
                 id="uid-that-would-make-a-large-answer"),
    pytest.param(
        _edit(lambda r: _with(r, "PATCH", "request", "operation")), "request.operation", id="operation"
    ),
    pytest.param(
        _edit(lambda r: _without(r, "request", "operation")), "request.operation", id="no-operation"
    ),
    pytest.param(_edit(lambda r: _with(r, "x", "request", "object")), "request.object", id="object-string"),
    pytest.param(
        _edit(lambda r: _with(r, [1], "request", "oldObject")), "request.oldObject", id="old-object-list"
    ),
    pytest.param(
        _edit(lambda r: _with(r, None, "request", "object")), "request.object is required", id="no-object"
    ),
    pytest.param(_edit(lambda r: _without(r, "request", "kind")), "request.kind", id="no-kind"),
    pytest.param(_edit(lambda r: _with(r, "GitRepo", "request", "kind")), "request.kind", id="kind-string"),
    pytest.param(
        _edit(lambda r: _without(r, "request", "kind", "kind")), "request.kind", id="kind-without-kind"
    ),
    pytest.param(
        _edit(lambda r: _with(r, 1, "request", "resource", "group")), "request.resource", id="group-int"
    ),
    pytest.param(
        _edit(lambda r: _with(r, "", "request", "resource", "resource")),
        "request.resource",
        id="resource-empty",
    ),
    pytest.param(
        _edit(lambda r: _with(r, {}, "request", "requestResource")),
        "request.requestResource",
        id="req-resource",
    ),
    pytest.param(
        _edit(lambda r: _with(r, 7, "request", "subResource")), "request.subResource", id="sub-resource"
    ),
    pytest.param(
        _edit(lambda r: _with(r, ["x"], "request", "namespace")), "request.namespace", id="namespace"
    ),
    pytest.param(_edit(lambda r: _with(r, "yes", "request", "dryRun")), "request.dryRun", id="dry-run"),
    pytest.param(
        _edit(lambda r: _with(r, "admin", "request", "userInfo")), "request.userInfo", id="user-info"
    ),
    pytest.param(_edit(lambda r: _with(r, "g", "request", "userInfo", "groups")), "groups", id="groups"),
]


@pytest.mark.parametrize(("case", "reason"), MALFORMED)
def test_a_malformed_review_is_a_bad_review_with_a_reason(
    case: bytes | Edit, reason: str, make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody
) -> None:
    body = case if isinstance(case, bytes) else to_body(case(make_review(obj=make_gitrepo())))

    with pytest.raises(BadReview) as raised:
        parse_review(body)

    assert reason in raised.value.reason


def test_an_oversized_body_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(BadReview, match="limit is 100"):
        parse_review(b"x" * 101, max_bytes=100)


def test_the_default_size_limit_is_three_mebibytes(
    make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody
) -> None:
    body = to_body(make_review(obj=make_gitrepo()))
    at_limit = body + b" " * (3 * 1024 * 1024 - len(body))  # JSON allows trailing whitespace

    parse_review(at_limit)
    with pytest.raises(BadReview, match="limit"):
        parse_review(at_limit + b" ")


@pytest.mark.parametrize(("values", "refused"), [
    pytest.param(b'"' + b"x" * 1_000_000 + b'",', False, id="one-long-string"),
    pytest.param(b'["clusters/a/app"],' * 60_000, False, id="60k-short-paths"),
    pytest.param(b"0," * 1_400_000, True, id="1.4M-numbers"),
    pytest.param(b"{}," * 1_000_000, True, id="1M-empty-objects"),
])
def test_a_review_of_millions_of_tiny_values_is_refused_before_it_is_parsed(
    make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody, values: bytes, refused: bool
) -> None:
    # Under the 3 MiB limit, but eight of them parsed at once outgrew the admission pod's memory.
    review = make_review(obj=make_gitrepo())
    body = to_body(review).replace(b'"spec": {', b'"spec": {"padding": [' + values + b'0], ', 1)
    assert body != to_body(review) and len(body) < 3 * 1024 * 1024
    if refused:
        with pytest.raises(BadReview, match="more than 16 MiB"):
            parse_review(body)
    else:
        parse_review(body)


# --- build_response ------------------------------------------------------------------


@pytest.fixture
def gitrepo_review(make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody) -> Review:
    return parse_review(to_body(make_review(obj=make_gitrepo())))


def test_an_allowed_response_has_no_status_block(gitrepo_review: Review) -> None:
    response = build_response(gitrepo_review, Decision(allowed=True), mutating=False)["response"]

    assert "status" not in response and "patch" not in response and "patchType" not in response


@pytest.mark.parametrize(
    ("code", "expected_code", "reason"),
    [
        pytest.param(422, 422, "Invalid", id="invalid"),
        pytest.param(403, 403, "Forbidden", id="forbidden"),
        pytest.param(None, 403, "Forbidden", id="default"),
        pytest.param(418, 418, None, id="unmapped"),
    ],
)
def test_a_denial_carries_a_failure_status(
    gitrepo_review: Review, code: int | None, expected_code: int, reason: str | None
) -> None:
    decision = Decision(allowed=False, code=code, message="no", reasons=("unknown-key",))

    response = build_response(gitrepo_review, decision, mutating=False)["response"]

    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == expected_code and status["message"] == "no" and status["status"] == "Failure"
    assert status.get("reason") == reason


def test_a_denial_without_a_message_still_explains_itself(gitrepo_review: Review) -> None:
    response = build_response(gitrepo_review, Decision(allowed=False), mutating=False)["response"]

    assert response["status"]["message"]


def test_a_mutating_patch_is_base64_json_with_its_type(gitrepo_review: Review) -> None:
    patch: tuple[PatchOperation, ...] = ({"op": "add", "path": "/spec/pollingInterval", "value": "1h"},)

    response = build_response(gitrepo_review, Decision(allowed=True, patch=patch), mutating=True)["response"]

    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == list(patch)


def test_an_empty_patch_sends_neither_patch_nor_patch_type(gitrepo_review: Review) -> None:
    response = build_response(gitrepo_review, Decision(allowed=True), mutating=True)["response"]

    assert "patch" not in response and "patchType" not in response


def test_a_validating_response_never_carries_a_patch(gitrepo_review: Review) -> None:
    decision = Decision(allowed=True, patch=({"op": "add", "path": "/x", "value": 1},))

    with pytest.raises(ValueError, match="validating"):
        build_response(gitrepo_review, decision, mutating=False)


def test_a_denial_cannot_carry_a_patch() -> None:
    with pytest.raises(ValueError):
        Decision(allowed=False, patch=({"op": "add", "path": "/x", "value": 1},))


@pytest.mark.parametrize(
    "key",
    [pytest.param("", id="empty"), pytest.param("a/b", id="prefixed"), pytest.param("-x", id="leading-dash")],
)
def test_an_audit_key_the_api_server_would_drop_is_a_programming_error(key: str) -> None:
    with pytest.raises(ValueError, match="audit"):
        Decision(allowed=True, audit={key: "v"})


def test_a_long_warning_is_cut_to_120_characters_with_an_ellipsis(gitrepo_review: Review) -> None:
    decision = Decision(allowed=True, warnings=("w" * 300, "short"))

    warnings = build_response(gitrepo_review, decision, mutating=True)["response"]["warnings"]

    assert len(warnings[0]) == MAX_WARNING_CHARS and warnings[0].endswith("…")
    assert warnings[1] == "short"


def test_warnings_lose_control_characters_and_duplicates(gitrepo_review: Review) -> None:
    decision = Decision(allowed=True, warnings=("a\nb", "a\nb", "  ", "c\x00"))

    warnings = build_response(gitrepo_review, decision, mutating=True)["response"]["warnings"]

    assert warnings == ["a b", "c"]


@pytest.mark.parametrize("allowed", [pytest.param(True, id="allowed"), pytest.param(False, id="denied")])
def test_every_decision_has_audit_annotations(gitrepo_review: Review, allowed: bool) -> None:
    decision = Decision(allowed=allowed, reasons=("a", "b"), audit={"keys": "github"})

    audit = build_response(gitrepo_review, decision, mutating=False)["response"]["auditAnnotations"]

    assert audit == {"decision": "allowed" if allowed else "denied", "reasons": "a,b", "keys": "github"}


def test_a_module_may_refine_the_decision_annotation(gitrepo_review: Review) -> None:
    audit = build_response(
        gitrepo_review, Decision(allowed=True, audit={"decision": "defaulted"}), mutating=True
    )

    assert audit["response"]["auditAnnotations"]["decision"] == "defaulted"


# --- never anything but BadReview ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
REQUEST_FIELDS = (
    "uid",
    "kind",
    "resource",
    "subResource",
    "requestKind",
    "requestResource",
    "requestSubResource",
    "name",
    "namespace",
    "operation",
    "userInfo",
    "object",
    "oldObject",
    "dryRun",
    "options",
)


def _answer_everything(body: bytes) -> None:
    """Parse, decide with both webhooks, and build both responses; only BadReview may escape."""
    try:
        review = parse_review(body)
    except BadReview:
        return
    for decision, mutating in (
        (mutate_gitrepo(review, webhook_mode="auto", global_secret_exists=True), True),
        (mutate_gitrepo(review, webhook_mode="on", global_secret_exists=False), True),
        (validate_secret(review, controller_namespace="cattle-fleet-system"), False),
        (Decision(allowed=False, message="x"), False),
    ):
        json.dumps(build_response(review, decision, mutating=mutating), allow_nan=False)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_nothing_but_bad_review(body: bytes) -> None:
    _answer_everything(body)


@given(json_values)
def test_arbitrary_json_raises_nothing_but_bad_review(document: Any) -> None:
    _answer_everything(json.dumps(document).encode())


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(REQUEST_FIELDS),
    value=json_values,
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]),
    target=st.sampled_from([("fleet.cattle.io", "gitrepos"), ("", "secrets")]),
)
def test_a_review_with_any_field_replaced_raises_nothing_but_bad_review(
    field: str, value: Any, operation: str, target: tuple[str, str], make_review: MakeObject,
    make_gitrepo: MakeObject, make_secret: MakeObject,
) -> None:
    obj = make_gitrepo() if target[1] == "gitrepos" else make_secret({"github": "s3cr3t"})
    review = make_review(
        operation=operation,
        group=target[0],
        resource=target[1],
        name=obj["metadata"]["name"],
        namespace=obj["metadata"]["namespace"],
        obj=obj,
        old=obj,
    )
    review["request"][field] = value

    _answer_everything(json.dumps(review).encode())


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=st.dictionaries(
        st.sampled_from(["pollingInterval", "webhookSecret", "disablePolling", "repo"]),
        json_values,
        max_size=4,
    )
    | json_values,
    metadata=json_values,
)
def test_a_gitrepo_with_any_spec_or_metadata_raises_nothing(
    spec: Any, metadata: Any, make_review: MakeObject
) -> None:
    _answer_everything(json.dumps(make_review(obj={"metadata": metadata, "spec": spec})).encode())
