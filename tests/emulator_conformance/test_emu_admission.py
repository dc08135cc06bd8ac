"""Admission webhooks: selection, the AdmissionReview sent, mutation, denial shaping, warnings, failure
policies, reinvocation and the re-check before commit (spec 6.13)."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from kubernetes import client

from kubeapi import Emulator
from kubeapi.api import Context
from kubeapi.resources import by_plural

from .conftest import WebhookServer
from .helpers import GROUP, PLURAL, VERSION, api_error, gitrepo

GITREPO_RULE = {
    "operations": ["CREATE", "UPDATE"],
    "apiGroups": ["fleet.cattle.io"],
    "apiVersions": ["v1alpha1"],
    "resources": ["gitrepos"],
}


def hook(
    name: str,
    server: WebhookServer | None,
    path: str,
    rules: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    cc = (
        {"url": server.url(path), "caBundle": server.ca_bundle}
        if server
        else {"url": "https://127.0.0.1:1/unreachable"}
    )
    return {
        "name": name,
        "clientConfig": cc,
        "rules": rules or [GITREPO_RULE],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5,
        **extra,
    }


def install(
    kube_client: client.ApiClient,
    mutating: list[dict[str, Any]] = (),  # type: ignore[assignment]
    validating: list[dict[str, Any]] = (),
) -> None:  # type: ignore[assignment]
    adm = client.AdmissionregistrationV1Api(kube_client)
    if mutating:
        adm.create_mutating_webhook_configuration(
            {"metadata": {"name": "mutating"}, "webhooks": list(mutating)}
        )
    if validating:
        adm.create_validating_webhook_configuration(
            {"metadata": {"name": "validating"}, "webhooks": list(validating)}
        )


def patch_response(request: dict[str, Any], ops: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "uid": request["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
        **extra,
    }


def deny(message: str | None = None, code: int | None = None) -> Any:
    def respond(request: dict[str, Any]) -> dict[str, Any]:
        status: dict[str, Any] = {}
        if message is not None:
            status["message"] = message
        if code is not None:
            status["code"] = code
        return {"uid": request["uid"], "allowed": False, "status": status}

    return respond


@pytest.fixture
def crd(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def test_mutating_webhook_patch_is_applied_before_persisting(
    kube_client: client.ApiClient,
    crd: client.CustomObjectsApi,
    webhook_server: WebhookServer,
    emulator: Emulator,
) -> None:
    webhook_server.responders["/mutate"] = lambda r: patch_response(
        r, [{"op": "add", "path": "/spec/pollingInterval", "value": "1h0m0s"}]
    )
    install(kube_client, mutating=[hook("gitrepo.fleet.cattle.io", webhook_server, "/mutate")])
    out = crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("m"))
    assert out["spec"]["pollingInterval"] == "1h0m0s" and out["metadata"]["generation"] == 1
    assert emulator.get("gitrepos", "fleet-local", "m")["spec"]["pollingInterval"] == "1h0m0s"


def test_admission_review_request_has_every_field(
    kube_client: client.ApiClient, crd: client.CustomObjectsApi, webhook_server: WebhookServer
) -> None:
    install(
        kube_client,
        validating=[
            hook(
                "v.fleet.cattle.io",
                webhook_server,
                "/validate",
                rules=[dict(GITREPO_RULE, resources=["gitrepos", "gitrepos/status"])],
            )
        ],
    )
    crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("f"))
    crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, "fleet-local", PLURAL, "f", {"status": {"a": "b"}}
    )
    create, status_update = webhook_server.reviews
    assert create["apiVersion"] == "admission.k8s.io/v1" and create["kind"] == "AdmissionReview"
    assert create["path"] == "/validate" and create["query"] == "timeout=5s"
    req = create["request"]
    gvk = {"group": "fleet.cattle.io", "version": "v1alpha1", "kind": "GitRepo"}
    gvr = {"group": "fleet.cattle.io", "version": "v1alpha1", "resource": "gitrepos"}
    assert re.fullmatch(r"[0-9a-f-]{36}", req["uid"])
    assert (req["kind"], req["resource"], req["requestKind"], req["requestResource"]) == (gvk, gvr, gvk, gvr)
    assert "subResource" not in req
    assert (req["name"], req["namespace"], req["operation"]) == ("f", "fleet-local", "CREATE")
    assert req["userInfo"] == {
        "username": "kubernetes-admin",
        "groups": ["kubeadm:cluster-admins", "system:authenticated"],
    }
    assert req["object"]["spec"]["repo"] and req["oldObject"] is None and req["dryRun"] is False
    assert req["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    upd = status_update["request"]
    assert (upd["operation"], upd["subResource"], upd["requestSubResource"]) == ("UPDATE", "status", "status")
    assert upd["options"]["kind"] == "UpdateOptions" and upd["oldObject"]["metadata"]["name"] == "f"
    assert upd["object"]["status"] == {"a": "b"}


@pytest.mark.parametrize(
    "respond, code, suffix",
    [
        pytest.param(
            deny("pollingInterval too short"), 403, ": pollingInterval too short", id="no-code-is-403"
        ),
        pytest.param(deny("bad", 422), 422, ": bad", id="code-from-status"),
        pytest.param(deny(None), 403, " without explanation", id="no-message"),
    ],
)
def test_denial_is_shaped_like_kube_apiserver(
    kube_client: client.ApiClient,
    core: client.CoreV1Api,
    webhook_server: WebhookServer,
    respond: Any,
    code: int,
    suffix: str,
) -> None:
    webhook_server.responders["/secret"] = respond
    install(
        kube_client,
        validating=[
            hook(
                "secret.gitjob-webhook.fleet.cattle.io",
                webhook_server,
                "/secret",
                rules=[
                    {"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["secrets"]}
                ],
            )
        ],
    )
    status, err = api_error(
        lambda: core.create_namespaced_secret("cattle-fleet-system", {"metadata": {"name": "gitjob-webhook"}})
    )
    assert (status, err["code"]) == (code, code)
    assert err["message"] == (
        'secrets "gitjob-webhook" is forbidden: admission webhook '
        f'"secret.gitjob-webhook.fleet.cattle.io" denied the request{suffix}'
    )


def test_denial_of_a_custom_resource_names_resource_and_group(
    kube_client: client.ApiClient, crd: client.CustomObjectsApi, webhook_server: WebhookServer
) -> None:
    webhook_server.responders["/v"] = deny("no")
    install(kube_client, validating=[hook("v.fleet.cattle.io", webhook_server, "/v")])
    status, err = api_error(
        lambda: crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("d"))
    )
    assert (status, err["reason"]) == (403, "Forbidden")
    assert err["message"] == (
        'gitrepos.fleet.cattle.io "d" is forbidden: admission webhook "v.fleet.cattle.io" '
        "denied the request: no"
    )


def test_webhook_warnings_come_back_as_warning_headers(
    kube_client: client.ApiClient, crd: client.CustomObjectsApi, webhook_server: WebhookServer
) -> None:
    webhook_server.responders["/w"] = lambda r: {
        "uid": r["uid"],
        "allowed": True,
        "warnings": ['pollingInterval is "short"'],
    }
    install(kube_client, validating=[hook("w.fleet.cattle.io", webhook_server, "/w")])
    _, code, headers = crd.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, "fleet-local", PLURAL, gitrepo("w")
    )
    assert code == 201 and headers["Warning"] == '299 - "pollingInterval is \\"short\\""'


@pytest.mark.parametrize(
    "policy, allowed",
    [
        pytest.param("Fail", False, id="fail"),
        pytest.param("Ignore", True, id="ignore"),
        pytest.param(None, False, id="default-is-fail"),
    ],
)
def test_failure_policy_decides_what_an_unreachable_webhook_does(
    kube_client: client.ApiClient, crd: client.CustomObjectsApi, policy: str | None, allowed: bool
) -> None:
    extra = {"failurePolicy": policy} if policy else {}
    install(kube_client, mutating=[hook("down.fleet.cattle.io", None, "/", **extra)])

    def create():
        return crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("u"))

    if allowed:
        assert create()["metadata"]["name"] == "u"
        return
    status, err = api_error(create)
    assert (status, err["reason"]) == (500, "InternalError")
    assert (
        'failed calling webhook "down.fleet.cattle.io": failed to call webhook: Post '
        '"https://127.0.0.1:1/unreachable?timeout=5s"' in err["message"]
    )


@pytest.mark.parametrize(
    "answer, fragment",
    [
        pytest.param(
            lambda r: {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": "other", "allowed": True},
            },
            "expected response.uid=",
            id="uid",
        ),
        pytest.param(
            lambda r: {
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "response": {"uid": r["uid"], "allowed": True},
            },
            "expected webhook response of " "admission.k8s.io/v1, Kind=AdmissionReview",
            id="apiVersion",
        ),
    ],
)
def test_invalid_webhook_responses_are_call_failures(
    kube_client: client.ApiClient,
    crd: client.CustomObjectsApi,
    webhook_server: WebhookServer,
    answer: Any,
    fragment: str,
) -> None:
    webhook_server.raw["/bad"] = answer
    install(kube_client, validating=[hook("bad.fleet.cattle.io", webhook_server, "/bad")])
    status, err = api_error(
        lambda: crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("i"))
    )
    assert status == 500 and fragment in err["message"]


def test_webhook_timeout_seconds_is_honoured(
    kube_client: client.ApiClient, crd: client.CustomObjectsApi, webhook_server: WebhookServer
) -> None:
    def slow(request: dict[str, Any]) -> dict[str, Any]:
        time.sleep(1.5)
        return {"uid": request["uid"], "allowed": True}

    webhook_server.responders["/slow"] = slow
    install(kube_client, validating=[hook("slow.fleet.cattle.io", webhook_server, "/slow", timeoutSeconds=1)])
    start = time.monotonic()
    status, err = api_error(
        lambda: crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("t"))
    )
    assert status == 500 and "context deadline exceeded" in err["message"]
    assert time.monotonic() - start < 1.45


def test_service_references_are_mapped_to_a_local_port_and_verified_by_service_name(
    emulator: Emulator,
    kube_client: client.ApiClient,
    crd: client.CustomObjectsApi,
    webhook_server: WebhookServer,
) -> None:
    emulator.map_service("cattle-fleet-system", "webhook", webhook_server.port)
    h = hook("svc.fleet.cattle.io", webhook_server, "/")
    h["clientConfig"] = {
        "service": {"namespace": "cattle-fleet-system", "name": "webhook", "path": "/svc", "port": 443},
        "caBundle": webhook_server.ca_bundle,
    }
    install(kube_client, validating=[h])
    crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("s"))
    assert [r["path"] for r in webhook_server.reviews] == ["/svc"]


def test_wrong_ca_bundle_fails_the_call(
    kube_client: client.ApiClient, crd: client.CustomObjectsApi, webhook_server: WebhookServer
) -> None:
    other = base64.b64encode(Emulator.__module__.encode()).decode()  # not a certificate
    h = hook("ca.fleet.cattle.io", webhook_server, "/")
    h["clientConfig"]["caBundle"] = other
    install(kube_client, validating=[h])
    status, _ = api_error(
        lambda: crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("c"))
    )
    assert status == 500 and webhook_server.reviews == []


SECRET_HOOK_CONDITIONS = [
    {"name": "only-gitjob-webhook", "expression": "request.name == 'gitjob-webhook'"},
    {
        "name": "not-deleting-or-named",
        "expression": "request.operation == 'DELETE' || "
        "(has(object.metadata.name) && object.metadata.name in ['gitjob-webhook'])",
    },
]


@pytest.mark.parametrize(
    "namespace, name, labels, called",
    [
        pytest.param("cattle-fleet-system", "gitjob-webhook", {}, True, id="the-secret"),
        pytest.param("cattle-fleet-system", "other", {}, False, id="match-condition-excludes-other-names"),
        pytest.param("default", "gitjob-webhook", {}, False, id="namespace-selector-excludes-default"),
        pytest.param("cattle-fleet-system", "gitjob-webhook", {"skip": "true"}, False, id="object-selector"),
    ],
)
def test_selectors_and_match_conditions_scope_a_secret_webhook(
    kube_client: client.ApiClient,
    core: client.CoreV1Api,
    webhook_server: WebhookServer,
    namespace: str,
    name: str,
    labels: dict[str, str],
    called: bool,
) -> None:
    install(
        kube_client,
        validating=[
            hook(
                "secret.fleet.cattle.io",
                webhook_server,
                "/s",
                rules=[
                    {
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["secrets"],
                        "scope": "Namespaced",
                    }
                ],
                namespaceSelector={
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": ["cattle-fleet-system"],
                        }
                    ]
                },
                objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
                matchConditions=SECRET_HOOK_CONDITIONS,
            )
        ],
    )
    core.create_namespaced_secret(namespace, {"metadata": {"name": name, "labels": labels}})
    core.delete_namespaced_secret(name, namespace)
    ops = [r["request"]["operation"] for r in webhook_server.reviews]
    assert ops == (["CREATE", "DELETE"] if called else [])
    if called:
        delete = webhook_server.reviews[1]["request"]
        assert delete["object"] is None and delete["oldObject"]["metadata"]["name"] == name
        assert delete["options"] == {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}


def test_match_condition_error_fails_closed(
    kube_client: client.ApiClient, core: client.CoreV1Api, webhook_server: WebhookServer
) -> None:
    install(
        kube_client,
        validating=[
            hook(
                "secret.fleet.cattle.io",
                webhook_server,
                "/s",
                rules=[
                    {
                        "operations": ["DELETE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["secrets"],
                    }
                ],
                matchConditions=[{"name": "unguarded", "expression": "object.metadata.name == 'x'"}],
            )
        ],
    )
    core.create_namespaced_secret("default", {"metadata": {"name": "x"}})
    status, err = api_error(lambda: core.delete_namespaced_secret("x", "default"))
    assert status == 500 and "matchCondition" in err["message"]


@pytest.mark.parametrize(
    "resources, called_for",
    [
        pytest.param(["gitrepos"], ["create"], id="main-resource-only"),
        pytest.param(["gitrepos/status"], ["status"], id="status-only"),
        pytest.param(["gitrepos/*"], ["create", "status"], id="resource-and-subresources"),
        pytest.param(["*"], ["create"], id="star-is-main-resources"),
        pytest.param(["*/*"], ["create", "status"], id="star-star"),
    ],
)
def test_rules_distinguish_the_status_subresource(
    kube_client: client.ApiClient,
    crd: client.CustomObjectsApi,
    webhook_server: WebhookServer,
    resources: list[str],
    called_for: list[str],
) -> None:
    install(
        kube_client,
        validating=[
            hook(
                "r.fleet.cattle.io",
                webhook_server,
                "/r",
                rules=[
                    {"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": resources}
                ],
            )
        ],
    )
    crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("x"))
    crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, "fleet-local", PLURAL, "x", {"status": {"a": "b"}}
    )
    seen = [
        "status" if r["request"].get("subResource") else "create"
        for r in webhook_server.reviews
        if r["request"]["resource"]["resource"] == "gitrepos"
    ]
    assert seen == called_for


def test_webhook_configurations_are_never_admitted(
    kube_client: client.ApiClient, webhook_server: WebhookServer
) -> None:
    install(
        kube_client,
        validating=[
            hook(
                "all",
                webhook_server,
                "/all",
                rules=[{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
            )
        ],
    )
    client.AdmissionregistrationV1Api(kube_client).create_mutating_webhook_configuration(
        {"metadata": {"name": "another"}, "webhooks": []}
    )
    assert webhook_server.reviews == []


def test_reinvocation_if_needed_calls_a_mutating_webhook_again_after_later_mutations(
    kube_client: client.ApiClient, crd: client.CustomObjectsApi, webhook_server: WebhookServer
) -> None:
    webhook_server.responders["/first"] = lambda r: patch_response(
        r,
        (
            []
            if "branch" not in r["object"]["spec"]
            else [{"op": "add", "path": "/spec/paths", "value": ["seen-branch"]}]
        ),
    )
    webhook_server.responders["/second"] = lambda r: patch_response(
        r, [{"op": "add", "path": "/spec/branch", "value": "main"}]
    )
    install(
        kube_client,
        mutating=[
            hook("a-first", webhook_server, "/first", reinvocationPolicy="IfNeeded"),
            hook("b-second", webhook_server, "/second"),
        ],
    )
    out = crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, gitrepo("re"))
    assert out["spec"]["branch"] == "main" and out["spec"]["paths"] == ["seen-branch"]
    assert [r["path"] for r in webhook_server.reviews] == ["/first", "/second", "/first"]


def test_object_changed_during_the_webhook_call_gives_409(
    kube_client: client.ApiClient,
    crd: client.CustomObjectsApi,
    emulator: Emulator,
    webhook_server: WebhookServer,
) -> None:
    current = emulator.create(gitrepo("race"))

    def meddle(request: dict[str, Any]) -> dict[str, Any]:
        emulator.api.patch(
            by_plural("gitrepos"),
            "fleet-local",
            "race",
            "application/merge-patch+json",
            b'{"spec":{"branch":"sneaky"}}',
            Context(admission=False),
        )
        return {"uid": request["uid"], "allowed": True}

    webhook_server.responders["/meddle"] = meddle
    install(
        kube_client,
        validating=[
            hook("meddle", webhook_server, "/meddle", rules=[dict(GITREPO_RULE, operations=["UPDATE"])])
        ],
    )
    current["spec"]["branch"] = "mine"
    status, err = api_error(
        lambda: crd.replace_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "race", current)
    )
    assert (status, err["reason"]) == (409, "Conflict")
    assert emulator.get("gitrepos", "fleet-local", "race")["spec"]["branch"] == "sneaky"
