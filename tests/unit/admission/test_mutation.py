"""GitRepo defaulting: spec.pollingInterval set if absent, in webhook mode only."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.admission.mutation import mutate_gitrepo
from controller.admission.decisions import MAX_WARNING_CHARS, Decision, build_response
from controller.admission.reviews import Review, parse_review
from controller.fleet.gitrepos import DEFAULTED_ANNOTATION
from unit.admission.conftest import MakeObject, ToBody


class Options(TypedDict):
    """The keyword arguments of `mutate_gitrepo`."""

    webhook_mode: str
    global_secret_exists: bool
    polling_interval: NotRequired[str]
    require_signature: NotRequired[bool]


ON: Options = {"webhook_mode": "on", "global_secret_exists": False}

ReviewOf = Callable[..., Review]


@pytest.fixture
def review_of(make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody) -> ReviewOf:
    """Review of a GitRepo write: `review_of(spec=..., annotations=..., operation=...)`."""

    def build(
        *,
        obj: dict[str, Any] | None = None,
        operation: str = "CREATE",
        dry_run: bool = False,
        api_version: str = "admission.k8s.io/v1",
        **gitrepo: Any,
    ) -> Review:
        new = obj if obj is not None else make_gitrepo(**gitrepo)
        old = new if operation == "UPDATE" else None
        body = make_review(operation=operation, obj=new, old=old, dry_run=dry_run, api_version=api_version)
        return parse_review(to_body(body))

    return build


def applied(review: Review, decision: Decision) -> dict[str, Any]:
    """The object as the API server stores it after applying the patch."""
    result: dict[str, Any] = jsonpatch.apply_patch(review.object, list(decision.patch))
    return result


REPO = "https://github.com/rancher/fleet-examples"


@pytest.mark.parametrize(
    ("mode", "global_secret", "spec", "defaulted", "source"),
    [
        pytest.param("on", False, {"repo": REPO}, True, "on/flag", id="on"),
        pytest.param("auto", True, {"repo": REPO}, True, "auto/global-secret", id="auto-global-secret"),
        pytest.param(
            "auto",
            False,
            {"repo": REPO, "webhookSecret": "hook"},
            True,
            "auto/gitrepo-secret",
            id="auto-gitrepo-secret",
        ),
        pytest.param("auto", False, {"repo": REPO}, False, "auto/no-secret", id="auto-no-secret"),
        pytest.param(
            "auto",
            False,
            {"repo": REPO, "webhookSecret": ""},
            False,
            "auto/no-secret",
            id="auto-empty-webhook-secret",
        ),
        pytest.param("off", True, {"repo": REPO, "webhookSecret": "hook"}, False, "off/flag", id="off"),
    ],
)
def test_webhook_mode_decides_whether_the_interval_is_defaulted(
    review_of: ReviewOf, mode: str, global_secret: bool, spec: dict[str, Any], defaulted: bool, source: str
) -> None:
    review = review_of(spec=spec)

    decision = mutate_gitrepo(review, webhook_mode=mode, global_secret_exists=global_secret)

    assert decision.allowed is True
    assert bool(decision.patch) is defaulted
    assert decision.audit["webhookMode"] == source
    if defaulted:
        assert decision.audit["decision"] == "defaulted" and decision.audit["pollingInterval"] == "1h"
        assert decision.reasons[0] == "defaulted-polling-interval"
    else:
        assert decision.reasons[0] == "webhook-mode-off"


def test_a_gitrepo_without_an_interval_gets_1h_and_the_annotation(review_of: ReviewOf) -> None:
    review = review_of(spec={"repo": REPO})

    decision = mutate_gitrepo(review, **ON)

    result = applied(review, decision)
    assert result["spec"] == {"repo": REPO, "pollingInterval": "1h"}
    assert result["metadata"]["annotations"] == {DEFAULTED_ANNOTATION: "true"}


def test_the_annotation_path_escapes_the_slash(review_of: ReviewOf) -> None:
    decision = mutate_gitrepo(review_of(spec={"repo": REPO}, annotations={"team": "a"}), **ON)

    paths = {operation["path"] for operation in decision.patch}
    assert paths == {
        "/spec/pollingInterval",
        "/metadata/annotations/gitjob.fleet.cattle.io~1polling-interval-defaulted",
    }


def test_the_configured_interval_is_used(review_of: ReviewOf) -> None:
    review = review_of(spec={"repo": REPO})

    decision = mutate_gitrepo(review, webhook_mode="on", global_secret_exists=False, polling_interval="2h30m")

    assert applied(review, decision)["spec"]["pollingInterval"] == "2h30m"
    assert decision.audit["pollingInterval"] == "2h30m"


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(
            {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo", "metadata": {"name": "x"}},
            id="no-spec-no-annotations",
        ),
        pytest.param(
            {"metadata": {"name": "x", "annotations": None}, "spec": None}, id="null-spec-null-annotations"
        ),
        pytest.param(
            {"metadata": {"name": "x", "annotations": {}}, "spec": {"pollingInterval": None}},
            id="null-interval",
        ),
        pytest.param({"spec": {"repo": REPO}}, id="no-metadata"),
        pytest.param({"metadata": None, "spec": {}}, id="null-metadata"),
        pytest.param(
            {"metadata": {"annotations": {DEFAULTED_ANNOTATION: "false", "a/b": "c"}}, "spec": {}},
            id="annotation-false",
        ),
    ],
)
def test_missing_or_null_branches_are_created(review_of: ReviewOf, obj: dict[str, Any]) -> None:
    review = review_of(obj=obj)

    result = applied(review, mutate_gitrepo(review, **ON))

    assert result["spec"]["pollingInterval"] == "1h"
    assert result["metadata"]["annotations"][DEFAULTED_ANNOTATION] == "true"


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_reviewing_the_patched_object_again_yields_no_patch(review_of: ReviewOf, operation: str) -> None:
    review = review_of(spec={"repo": REPO}, operation=operation)
    first = mutate_gitrepo(review, **ON)

    # Reinvocation (reinvocationPolicy: IfNeeded) sends the object as we left it.
    again = mutate_gitrepo(review_of(obj=applied(review, first), operation=operation), **ON)

    assert first.patch and not again.patch
    assert again.warnings == ()
    assert again.reasons == ("already-defaulted",)


def test_a_later_webhook_dropping_the_interval_is_corrected_on_reinvocation(review_of: ReviewOf) -> None:
    review = review_of(spec={"repo": REPO})
    stripped = applied(review, mutate_gitrepo(review, **ON))
    del stripped["spec"]["pollingInterval"]

    again = mutate_gitrepo(review_of(obj=stripped), **ON)

    assert again.patch == ({"op": "add", "path": "/spec/pollingInterval", "value": "1h"},)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=st.dictionaries(
        st.sampled_from(["repo", "branch", "paths", "pollingInterval", "webhookSecret"]),
        st.none() | st.text(max_size=5) | st.lists(st.text(max_size=3), max_size=2),
        max_size=5,
    ),
    annotations=st.none()
    | st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=5), max_size=3),
    polling_interval=st.sampled_from(["1h", "30m", "1h0m0s", "45s"]),
)
def test_defaulting_is_idempotent_for_any_gitrepo(
    spec: dict[str, Any], annotations: dict[str, str] | None, polling_interval: str, make_review: MakeObject,
    to_body: ToBody,
) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "x"}, "spec": spec}
    if annotations is not None:
        obj["metadata"]["annotations"] = annotations
    options: Options = {
        "webhook_mode": "on", "global_secret_exists": True, "polling_interval": polling_interval
    }
    review = parse_review(to_body(make_review(obj=obj)))

    first = mutate_gitrepo(review, **options)
    result = applied(review, first)
    again = mutate_gitrepo(parse_review(to_body(make_review(obj=result))), **options)

    assert not again.patch
    if spec.get("pollingInterval") is None:
        assert result["spec"]["pollingInterval"] == polling_interval
    else:
        assert result == obj  # an explicit interval, even a bad one, is never touched


@pytest.mark.parametrize(
    ("interval", "warned"),
    [
        pytest.param("15s", True, id="15s"),
        pytest.param("4m59s", True, id="just-under-5m"),
        pytest.param("5m", False, id="5m"),
        pytest.param("1h", False, id="1h"),
        pytest.param("24h", False, id="24h"),
    ],
)
def test_an_explicit_interval_is_kept_and_a_short_one_is_called_redundant(
    review_of: ReviewOf, interval: object, warned: bool
) -> None:
    decision = mutate_gitrepo(review_of(spec={"repo": REPO, "pollingInterval": interval}), **ON)

    assert decision.allowed and not decision.patch
    assert decision.audit["decision"] == "unchanged" and decision.audit["pollingInterval"] == interval
    if warned:
        assert decision.warnings == (
            f"pollingInterval {interval} is redundant in webhook mode; "
            "webhooks trigger syncs, 1h polling is enough",
        )
        assert decision.reasons == ("short-polling-interval",)
    else:
        assert decision.warnings == () and decision.reasons == ("explicit-polling-interval",)


def test_zero_is_fleets_15s_default_and_is_called_redundant_too(review_of: ReviewOf) -> None:
    decision = mutate_gitrepo(review_of(spec={"repo": REPO, "pollingInterval": "0"}), **ON)

    assert not decision.patch
    assert decision.warnings and "15s default" in decision.warnings[0]


def test_an_interval_equal_to_a_short_configured_default_is_not_warned_about(review_of: ReviewOf) -> None:
    review = review_of(spec={"repo": REPO, "pollingInterval": "1m"})

    decision = mutate_gitrepo(review, webhook_mode="on", global_secret_exists=False, polling_interval="1m")

    assert decision.warnings == ()


def test_a_short_interval_is_not_warned_about_outside_webhook_mode(review_of: ReviewOf) -> None:
    decision = mutate_gitrepo(
        review_of(spec={"repo": REPO, "pollingInterval": "15s"}),
        webhook_mode="auto",
        global_secret_exists=False,
    )

    assert decision.warnings == () and not decision.patch


@pytest.mark.parametrize(
    "interval",
    [
        pytest.param("1d", id="days"),
        pytest.param("-1m", id="negative"),
        pytest.param("soon", id="word"),
        pytest.param("", id="empty"),
        pytest.param(30, id="number"),
        pytest.param({"h": 1}, id="object"),
        pytest.param("x" * 5000, id="huge"),
        pytest.param("99999999999h", id="beyond-go"),
    ],
)
def test_an_invalid_interval_is_allowed_untouched_with_a_warning(review_of: ReviewOf,
                                                                 interval: object) -> None:
    decision = mutate_gitrepo(review_of(spec={"repo": REPO, "pollingInterval": interval}), **ON)

    assert decision.allowed and not decision.patch
    assert decision.reasons == ("invalid-polling-interval",)
    assert len(decision.audit["pollingInterval"]) <= 64
    (warning,) = decision.warnings
    assert "is not a Go duration Fleet can use" in warning and len(warning) <= 120


def test_a_changed_interval_keeps_the_old_annotation_and_is_not_touched(review_of: ReviewOf) -> None:
    review = review_of(
        spec={"repo": REPO, "pollingInterval": "30m"},
        annotations={DEFAULTED_ANNOTATION: "true"},
        operation="UPDATE",
    )

    decision = mutate_gitrepo(review, **ON)

    assert not decision.patch and decision.reasons == ("explicit-polling-interval",)


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_the_annotation_is_never_removed_by_the_webhook(review_of: ReviewOf, mode: str) -> None:
    review = review_of(
        spec={"repo": REPO, "pollingInterval": "1h"},
        annotations={DEFAULTED_ANNOTATION: "true"},
        operation="UPDATE",
    )

    assert not mutate_gitrepo(review, webhook_mode=mode, global_secret_exists=False).patch


@pytest.mark.parametrize(
    ("require_signature", "expected"),
    [
        pytest.param(
            False,
            "disablePolling without a webhook secret: deliveries are unauthenticated; "
            "set spec.webhookSecret or gitjob-webhook",
            id="unauthenticated",
        ),
        pytest.param(
            True,
            "disablePolling without a webhook secret: deliveries are refused (--require-signature), "
            "so it will not sync",
            id="refused",
        ),
    ],
)
def test_disabled_polling_without_any_secret_is_warned_about(
    review_of: ReviewOf, require_signature: bool, expected: str
) -> None:
    review = review_of(spec={"repo": REPO, "disablePolling": True})

    decision = mutate_gitrepo(
        review, webhook_mode="auto", global_secret_exists=False, require_signature=require_signature
    )

    assert decision.warnings == (expected,)
    assert "polling-disabled-without-secret" in decision.reasons


@pytest.mark.parametrize(
    ("global_secret", "spec"),
    [
        pytest.param(True, {"repo": REPO, "disablePolling": True}, id="global-secret"),
        pytest.param(
            False, {"repo": REPO, "disablePolling": True, "webhookSecret": "s"}, id="gitrepo-secret"
        ),
        pytest.param(False, {"repo": REPO, "disablePolling": False}, id="polling-enabled"),
    ],
)
def test_disabled_polling_with_a_secret_is_fine(
    review_of: ReviewOf, global_secret: bool, spec: dict[str, Any]
) -> None:
    decision = mutate_gitrepo(review_of(spec=spec), webhook_mode="auto", global_secret_exists=global_secret)

    assert decision.warnings == ()


def test_disabled_polling_also_gets_the_default_in_webhook_mode(review_of: ReviewOf) -> None:
    # Fleet ignores the interval while polling is disabled; the default keeps a later
    # re-enable from falling back to 15 s polling.
    decision = mutate_gitrepo(review_of(spec={"repo": REPO, "disablePolling": True}), **ON)

    assert decision.patch


@pytest.mark.parametrize(
    ("operation", "group", "resource", "sub_resource"),
    [
        pytest.param("DELETE", "fleet.cattle.io", "gitrepos", None, id="delete"),
        pytest.param("CONNECT", "fleet.cattle.io", "gitrepos", None, id="connect"),
        pytest.param("UPDATE", "fleet.cattle.io", "gitrepos", "status", id="status-subresource"),
        pytest.param("CREATE", "fleet.cattle.io", "bundles", None, id="other-fleet-resource"),
        pytest.param("CREATE", "", "configmaps", None, id="core-resource"),
        pytest.param("CREATE", "example.com", "gitrepos", None, id="other-group"),
    ],
)
def test_anything_but_a_gitrepo_write_is_allowed_without_a_patch(
    make_review: MakeObject, make_gitrepo: MakeObject, to_body: ToBody, operation: str, group: str,
    resource: str, sub_resource: str | None,
) -> None:
    obj = make_gitrepo(spec={"repo": REPO})
    body = make_review(
        operation=operation,
        group=group,
        resource=resource,
        sub_resource=sub_resource,
        obj=None if operation == "DELETE" else obj,
        old=obj,
    )

    decision = mutate_gitrepo(parse_review(to_body(body)), **ON)

    assert decision.allowed and not decision.patch and not decision.warnings
    assert decision.audit == {"decision": "skipped"} and decision.reasons == ("not-a-gitrepo-write",)


@pytest.mark.parametrize(
    "spec",
    [pytest.param({"repo": REPO}, id="defaulted"), pytest.param({"pollingInterval": "10s"}, id="warned")],
)
def test_dry_run_gets_the_same_answer(review_of: ReviewOf, spec: dict[str, Any]) -> None:
    assert mutate_gitrepo(review_of(spec=spec, dry_run=True), **ON) == mutate_gitrepo(
        review_of(spec=spec), **ON
    )


def test_a_malformed_spec_is_left_for_the_schema_to_reject(review_of: ReviewOf) -> None:
    decision = mutate_gitrepo(review_of(obj={"metadata": {"name": "x"}, "spec": "oops"}), **ON)

    assert decision.allowed and not decision.patch and decision.reasons == ("malformed-spec",)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"webhook_mode": "sometimes", "global_secret_exists": False}, id="bad-mode"),
        pytest.param(
            {"webhook_mode": "on", "global_secret_exists": False, "polling_interval": "1d"}, id="bad-interval"
        ),
    ],
)
def test_bad_configuration_is_a_value_error(review_of: ReviewOf, options: Options) -> None:
    with pytest.raises(ValueError):
        mutate_gitrepo(review_of(spec={"repo": REPO}), **options)


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_the_mutating_response_carries_the_patch_for_both_versions(
    review_of: ReviewOf, api_version: str
) -> None:
    review = review_of(spec={"repo": REPO}, api_version=api_version)
    decision = mutate_gitrepo(review, **ON)

    response = build_response(review, decision, mutating=True)

    assert response["apiVersion"] == api_version and response["response"]["uid"] == review.uid
    assert response["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["response"]["patch"])) == list(decision.patch)
    assert response["response"]["auditAnnotations"]["decision"] == "defaulted"


@pytest.mark.parametrize(
    ("spec", "written_short"),
    [
        pytest.param({"pollingInterval": "1s"}, True, id="short"),
        pytest.param({"pollingInterval": "0"}, True, id="zero"),
        pytest.param({"pollingInterval": "0.000000000000000000000000001h"}, False, id="long-value-is-cut"),
        pytest.param({"disablePolling": True}, True, id="disabled"),
    ],
)
@pytest.mark.parametrize("require_signature", [False, True])
def test_every_warning_fits_in_120_characters(
    review_of: ReviewOf, spec: dict[str, Any], written_short: bool, require_signature: bool
) -> None:
    review = review_of(spec=spec)
    decision = mutate_gitrepo(
        review,
        webhook_mode="on",
        global_secret_exists=False,
        polling_interval="1h0m0s",
        require_signature=require_signature,
    )

    warnings = build_response(review, decision, mutating=True)["response"].get("warnings", [])

    assert warnings and all(len(warning) <= MAX_WARNING_CHARS for warning in warnings)
    if written_short:  # our own wording fits without the builder's ellipsis
        assert all(len(warning) <= MAX_WARNING_CHARS for warning in decision.warnings)
