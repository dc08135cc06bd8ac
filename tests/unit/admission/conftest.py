"""Builders for AdmissionReview bodies shaped exactly as the API server sends them."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pytest

KINDS = {
    ("fleet.cattle.io", "gitrepos"): ("v1alpha1", "GitRepo"),
    ("", "secrets"): ("v1", "Secret"),
    ("", "configmaps"): ("v1", "ConfigMap"),
    ("apps", "deployments"): ("v1", "Deployment"),
}
OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}

MakeObject = Callable[..., dict[str, Any]]
"""The fixtures below that build a JSON object from keyword arguments (see the functions they return)."""
ToBody = Callable[[Mapping[str, Any]], bytes]


def admission_review(
    *,
    operation: str = "CREATE",
    group: str = "fleet.cattle.io",
    resource: str = "gitrepos",
    name: str = "sample",
    namespace: str = "fleet-default",
    obj: Mapping[str, Any] | None = None,
    old: Mapping[str, Any] | None = None,
    sub_resource: str | None = None,
    dry_run: bool = False,
    api_version: str = "admission.k8s.io/v1",
    uid: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview dict with every request field the API server fills in."""
    version, kind = KINDS.get((group, resource), ("v1", resource.rstrip("s").title()))
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": dict(gvk),
        "requestResource": dict(gvr),
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "kubernetes-admin",
            "uid": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "groups": ["kubeadm:cluster-admins", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=00ff"]},
        },
        "object": copy.deepcopy(dict(obj)) if obj is not None else None,
        "oldObject": copy.deepcopy(dict(old)) if old is not None else None,
        "dryRun": dry_run,
        "options": (
            {
                "kind": OPTIONS_KIND[operation],
                "apiVersion": "meta.k8s.io/v1",
                "fieldManager": "kubectl-client-side-apply",
            }
            if operation in OPTIONS_KIND
            else None
        ),
    }
    if operation == "DELETE":
        request["options"] = {
            "kind": "DeleteOptions",
            "apiVersion": "meta.k8s.io/v1",
            "propagationPolicy": "Background",
        }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def encode(review: Mapping[str, Any]) -> bytes:
    """The bytes the API server POSTs."""
    return json.dumps(review).encode("utf-8")


def gitrepo(
    *,
    name: str = "sample",
    namespace: str = "fleet-default",
    spec: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A GitRepo as stored, with the metadata the API server adds."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": "0b6f1f5e-7a1c-4d3e-9a55-2c1f7b1d9e01",
        "resourceVersion": "1234",
        "generation": 1,
        "creationTimestamp": "2025-01-01T00:00:00Z",
    }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": metadata,
        "spec": (
            dict(spec)
            if spec is not None
            else {"repo": "https://github.com/rancher/fleet-examples", "branch": "main"}
        ),
    }


def secret(
    data: Mapping[str, str | bytes] | None = None,
    *,
    string_data: Mapping[str, str] | None = None,
    raw_data: Mapping[str, Any] | None = None,
    name: str = "gitjob-webhook",
    namespace: str = "cattle-fleet-system",
) -> dict[str, Any]:
    """A v1 Secret; `data` values are base64-encoded here, `raw_data` is sent verbatim."""
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "uid": "5d0c9b8e-2f7a-4b1c-8e3d-7a6b5c4d3e2f"},
    }
    if data is not None:
        obj["data"] = {
            key: base64.b64encode(value if isinstance(value, bytes) else value.encode("utf-8")).decode(
                "ascii"
            )
            for key, value in data.items()
        }
    if raw_data is not None:
        obj["data"] = dict(raw_data)
    if string_data is not None:
        obj["stringData"] = dict(string_data)
    return obj


@pytest.fixture(scope="session")
def make_review() -> MakeObject:
    """Build an AdmissionReview dict (see `admission_review`)."""
    return admission_review


@pytest.fixture(scope="session")
def make_gitrepo() -> MakeObject:
    """Build a GitRepo object (see `gitrepo`)."""
    return gitrepo


@pytest.fixture(scope="session")
def make_secret() -> MakeObject:
    """Build a Secret object (see `secret`)."""
    return secret


@pytest.fixture(scope="session")
def to_body() -> ToBody:
    """Serialise an AdmissionReview dict to the request body."""
    return encode
