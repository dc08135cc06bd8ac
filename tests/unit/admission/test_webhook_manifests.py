"""manifests/webhooks.yaml: schema-valid, and wired the way the admission code expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller.fleet.secrets import GLOBAL_SECRET as SECRET_NAME

MANIFEST = Path(__file__).resolve().parents[3] / "manifests" / "webhooks.yaml"
NAMESPACE = "cattle-fleet-system"


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(MANIFEST.read_text()) if document]


@pytest.fixture(scope="module")
def mutating(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (configuration,) = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    (webhook,) = configuration["webhooks"]
    return {"configuration": configuration, "webhook": webhook}


@pytest.fixture(scope="module")
def validating(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (configuration,) = [d for d in documents if d["kind"] == "ValidatingWebhookConfiguration"]
    (webhook,) = configuration["webhooks"]
    return {"configuration": configuration, "webhook": webhook}


def test_the_file_holds_exactly_the_two_configurations(documents: list[dict[str, Any]]) -> None:
    assert sorted(d["kind"] for d in documents) == [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_every_document_passes_strict_schema_validation(
    documents: list[dict[str, Any]], version: str
) -> None:
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize(
    ("which", "name", "path"),
    [
        pytest.param(
            "mutating", "gitrepos.gitjob-webhook.fleet.cattle.io", "/mutate/gitrepos", id="mutating"
        ),
        pytest.param(
            "validating", "secrets.gitjob-webhook.fleet.cattle.io", "/validate/secrets", id="validating"
        ),
    ],
)
def test_both_webhooks_point_at_the_admission_service(
    request: pytest.FixtureRequest, which: str, name: str, path: str
) -> None:
    found = request.getfixturevalue(which)
    webhook = found["webhook"]

    assert found["configuration"]["metadata"]["name"] == "gitjob-webhook-admission"
    assert webhook["name"] == name
    assert webhook["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert webhook["clientConfig"]["service"] == {
        "namespace": NAMESPACE,
        "name": "gitjob-webhook-admission",
        "path": path,
        "port": 443,
    }
    assert webhook["clientConfig"].get("caBundle", "") == ""  # filled by `certs inject` or cert-manager
    assert webhook["sideEffects"] == "None"
    assert 1 <= webhook["timeoutSeconds"] <= 5
    assert webhook["matchPolicy"] == "Equivalent"


def test_the_mutating_webhook_defaults_gitrepos_and_never_blocks_them(mutating: dict[str, Any]) -> None:
    webhook = mutating["webhook"]

    assert webhook["rules"] == [
        {
            "apiGroups": ["fleet.cattle.io"],
            "apiVersions": ["v1alpha1"],
            "resources": ["gitrepos"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", NAMESPACE]}
        ]
    }


def test_the_validating_webhook_sees_only_the_webhook_secret(validating: dict[str, Any]) -> None:
    webhook = validating["webhook"]

    assert webhook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["secrets"],
            "operations": ["CREATE", "UPDATE", "DELETE"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["namespaceSelector"] == {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [NAMESPACE]}]
    }
    # request.name, not object.metadata.name: object is null on DELETE.
    assert webhook["matchConditions"] == [
        {"name": "only-gitjob-webhook-secret", "expression": f"request.name == '{SECRET_NAME}'"}
    ]
    assert webhook["failurePolicy"] == "Fail"


@pytest.mark.parametrize(
    "phrase",
    [
        pytest.param("an admission outage must never block GitRepo writes", id="why-ignore"),
        pytest.param("must not slip through", id="why-fail"),
        pytest.param("can never deadlock", id="no-deadlock"),
        pytest.param("older than 1.28", id="old-clusters"),
    ],
)
def test_the_failure_policies_say_why_in_a_comment(phrase: str) -> None:
    assert phrase in " ".join(line.strip(" #") for line in MANIFEST.read_text().splitlines())
