"""PATCH content types, `/status` subresource semantics, generation and no-op writes (spec 6.6-6.9)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from kubeapi import Emulator

from .helpers import GROUP, PLURAL, VERSION, api_error, gitrepo, raw_request

ITEM = "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/gitrepos/r"


@pytest.fixture
def crd(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def repo(crd: client.CustomObjectsApi) -> dict[str, Any]:
    return crd.create_namespaced_custom_object(
        GROUP, VERSION, "fleet-local", PLURAL, gitrepo("r", labels={"team": "a"}, pollingInterval="15s")
    )


def patch(
    emulator: Emulator, content_type: str, body: Any, path: str = ITEM, query: str = ""
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw_request(emulator, "PATCH", path + query, data, {"Content-Type": content_type})


def test_status_merge_patch_changes_only_status_and_not_generation(
    crd: client.CustomObjectsApi, repo: dict[str, Any]
) -> None:
    out = crd.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "fleet-local",
        PLURAL,
        "r",
        {
            "status": {"webhookCommit": "abc", "lastWebhookTime": "2026-01-01T00:00:00Z"},
            "spec": {"pollingInterval": "1h"},
            "metadata": {"labels": {"team": "b"}, "annotations": {"x": "y"}},
        },
    )
    assert out["status"] == {"webhookCommit": "abc", "lastWebhookTime": "2026-01-01T00:00:00Z"}
    assert out["spec"] == repo["spec"] and out["metadata"]["labels"] == {"team": "a"}
    assert "annotations" not in out["metadata"]
    assert out["metadata"]["generation"] == 1
    assert int(out["metadata"]["resourceVersion"]) > int(repo["metadata"]["resourceVersion"])


def test_spec_merge_patch_bumps_generation_and_keeps_status(
    crd: client.CustomObjectsApi, repo: dict[str, Any]
) -> None:
    crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, "fleet-local", PLURAL, "r", {"status": {"c": "1"}}
    )
    out = crd.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "fleet-local",
        PLURAL,
        "r",
        {"spec": {"pollingInterval": "1h0m0s"}, "status": {"c": "forged"}},
    )
    assert out["spec"]["pollingInterval"] == "1h0m0s"
    assert out["metadata"]["generation"] == 2
    assert out["status"] == {"c": "1"}


def test_metadata_only_patch_does_not_bump_generation(
    crd: client.CustomObjectsApi, repo: dict[str, Any]
) -> None:
    out = crd.patch_namespaced_custom_object(
        GROUP, VERSION, "fleet-local", PLURAL, "r", {"metadata": {"annotations": {"a": "b"}}}
    )
    assert out["metadata"]["generation"] == 1 and out["metadata"]["annotations"] == {"a": "b"}


def test_status_replace_takes_only_status_from_the_body(
    crd: client.CustomObjectsApi, repo: dict[str, Any]
) -> None:
    body = dict(repo, spec={"repo": "https://evil"}, status={"ok": True})
    out = crd.replace_namespaced_custom_object_status(GROUP, VERSION, "fleet-local", PLURAL, "r", body)
    assert out["spec"] == repo["spec"] and out["status"] == {"ok": True}
    status, err = api_error(
        lambda: crd.replace_namespaced_custom_object_status(GROUP, VERSION, "fleet-local", PLURAL, "r", body)
    )
    assert (status, err["reason"]) == (
        409,
        "Conflict",
    ), "the /status endpoint applies the rv precondition too"


def test_no_op_patch_does_not_bump_resource_version(
    crd: client.CustomObjectsApi, repo: dict[str, Any], emulator: Emulator
) -> None:
    before = emulator.resource_version
    out = crd.patch_namespaced_custom_object(
        GROUP, VERSION, "fleet-local", PLURAL, "r", {"spec": {"pollingInterval": "15s"}}
    )
    assert out["metadata"]["resourceVersion"] == repo["metadata"]["resourceVersion"]
    assert emulator.resource_version == before


def test_patch_that_sets_a_stale_resource_version_gives_409(emulator: Emulator, repo: dict[str, Any]) -> None:
    status, err = patch(
        emulator,
        "application/merge-patch+json",
        {"metadata": {"resourceVersion": "1"}, "spec": {"branch": "x"}},
    )
    assert (status, err["reason"]) == (409, "Conflict")
    status, out = patch(
        emulator,
        "application/merge-patch+json",
        {"metadata": {"resourceVersion": repo["metadata"]["resourceVersion"]}, "spec": {"branch": "x"}},
    )
    assert status == 200 and out["spec"]["branch"] == "x"


def test_merge_patch_null_deletes_and_lists_are_replaced(emulator: Emulator, repo: dict[str, Any]) -> None:
    patch(emulator, "application/merge-patch+json", {"spec": {"paths": ["a", "b"]}})
    status, out = patch(
        emulator, "application/merge-patch+json", {"spec": {"paths": ["c"], "pollingInterval": None}}
    )
    assert status == 200
    assert out["spec"] == {"repo": repo["spec"]["repo"], "paths": ["c"]}


def test_json_patch_applies_operations(emulator: Emulator, repo: dict[str, Any]) -> None:
    status, out = patch(
        emulator,
        "application/json-patch+json",
        [
            {"op": "test", "path": "/spec/pollingInterval", "value": "15s"},
            {"op": "replace", "path": "/spec/pollingInterval", "value": "1m"},
            {"op": "add", "path": "/metadata/labels/env", "value": "dev"},
        ],
    )
    assert status == 200
    assert out["spec"]["pollingInterval"] == "1m" and out["metadata"]["labels"] == {"team": "a", "env": "dev"}


@pytest.mark.parametrize(
    "content_type, body, code, reason",
    [
        pytest.param(
            "application/json-patch+json",
            [{"op": "test", "path": "/spec/repo", "value": "x"}],
            422,
            "Invalid",
            id="json-patch-test-fails",
        ),
        pytest.param(
            "application/json-patch+json", {"op": "add"}, 400, "BadRequest", id="json-patch-not-a-list"
        ),
        pytest.param(
            "application/merge-patch+json", b"{broken", 400, "BadRequest", id="malformed-merge-patch"
        ),
        pytest.param(
            "application/strategic-merge-patch+json",
            {"spec": {}},
            415,
            "UnsupportedMediaType",
            id="strategic-on-custom-resource",
        ),
        pytest.param("application/xml", {"spec": {}}, 415, "UnsupportedMediaType", id="unknown-patch-type"),
        pytest.param(
            "application/apply-patch+yaml",
            {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo", "metadata": {"name": "r"}},
            400,
            "BadRequest",
            id="apply-without-field-manager",
        ),
    ],
)
def test_bad_patches_are_rejected(
    emulator: Emulator, repo: dict[str, Any], content_type: str, body: Any, code: int, reason: str
) -> None:
    status, err = patch(emulator, content_type, body)
    assert (status, err["reason"], err["code"]) == (code, reason, code)


def test_strategic_merge_patch_on_a_secret_acts_as_a_merge_patch(
    emulator: Emulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Yg=="}})
    status, out = patch(
        emulator,
        "application/strategic-merge-patch+json",
        {"data": {"a": None, "c": "Yw=="}},
        "/api/v1/namespaces/default/secrets/s",
    )
    assert status == 200 and out["data"] == {"b": "Yg==", "c": "Yw=="}


def test_server_side_apply_creates_with_201_then_merges(emulator: Emulator) -> None:
    doc = {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": "ssa"},
        "spec": {"repo": "https://example.com/r", "branch": "main"},
    }
    path = "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/gitrepos/ssa"
    status, out = patch(emulator, "application/apply-patch+yaml", doc, path, "?fieldManager=test")
    assert status == 201 and out["metadata"]["generation"] == 1
    doc["spec"]["branch"] = "dev"
    status, out = patch(emulator, "application/apply-patch+yaml", doc, path, "?fieldManager=test")
    assert status == 200 and out["spec"]["branch"] == "dev" and out["metadata"]["generation"] == 2


def test_patch_of_a_missing_object_gives_404(crd: client.CustomObjectsApi) -> None:
    status, err = api_error(
        lambda: crd.patch_namespaced_custom_object(
            GROUP, VERSION, "fleet-local", PLURAL, "ghost", {"spec": {}}
        )
    )
    assert (status, err["message"]) == (404, 'gitrepos.fleet.cattle.io "ghost" not found')


def test_patch_that_breaks_validation_gives_422(crd: client.CustomObjectsApi, repo: dict[str, Any]) -> None:
    status, err = api_error(
        lambda: crd.patch_namespaced_custom_object(
            GROUP, VERSION, "fleet-local", PLURAL, "r", {"spec": {"pollingInterval": "often"}}
        )
    )
    assert status == 422 and "spec.pollingInterval" in err["message"]
