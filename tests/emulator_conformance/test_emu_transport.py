"""TLS, bearer tokens, discovery, kubeconfig, request log, failure and delay hooks (6.1-6.2, test hooks)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from kubernetes import client, config

from kubeapi import Emulator

from .helpers import api_error, gitrepo, raw_request


@pytest.mark.parametrize("token", [pytest.param(None, id="missing"), pytest.param("wrong", id="wrong")])
def test_requests_without_the_right_token_get_401(emulator: Emulator, token: str | None) -> None:
    status, body = raw_request(emulator, "GET", "/api/v1/namespaces", token=token)
    assert status == 401
    assert (body["reason"], body["message"], body["code"]) == ("Unauthorized", "Unauthorized", 401)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(emulator: Emulator, scheme: str) -> None:
    status, body = raw_request(
        emulator, "GET", "/api/v1/namespaces", headers={"Authorization": f"{scheme} {emulator.token}"}
    )
    assert status == 200 and body["kind"] == "NamespaceList"


def test_tls_is_verified_against_the_emulator_ca(emulator: Emulator) -> None:
    assert emulator.url.startswith("https://127.0.0.1:") and emulator.ca_file
    with pytest.raises(requests.exceptions.SSLError):
        with requests.Session() as session:
            session.get(emulator.url + "/version", timeout=5)


def test_plain_http_without_token_is_available() -> None:
    with Emulator(tls=False, token=None) as emu:
        assert emu.url.startswith("http://") and emu.ca_file is None
        status, body = raw_request(emu, "GET", "/api/v1/namespaces/default")
        assert status == 200 and body["metadata"]["labels"] == {"kubernetes.io/metadata.name": "default"}


def test_kubeconfig_works_with_load_kube_config(emulator: Emulator, tmp_path: Path) -> None:
    path = emulator.write_kubeconfig(tmp_path / "kc")
    cfg = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        names = [n.metadata.name for n in client.CoreV1Api(api_client).list_namespace().items]
    assert names == ["cattle-fleet-system", "default", "fleet-default", "fleet-local"]


def test_token_users_are_reported_in_the_request_log(emulator: Emulator) -> None:
    emulator.add_token("app-token", "system:serviceaccount:cattle-fleet-system:gitjob-webhook")
    raw_request(emulator, "GET", "/api/v1/namespaces", token="app-token")
    assert emulator.requests[-1].user == "system:serviceaccount:cattle-fleet-system:gitjob-webhook"


def test_discovery_documents_are_served(emulator: Emulator) -> None:
    assert raw_request(emulator, "GET", "/version")[1]["minor"] == "37"
    assert raw_request(emulator, "GET", "/api")[1]["versions"] == ["v1"]
    core = raw_request(emulator, "GET", "/api/v1")[1]
    assert core["groupVersion"] == "v1" and {"namespaces", "secrets", "configmaps", "events"} <= {
        r["name"] for r in core["resources"]
    }
    groups = {g["name"] for g in raw_request(emulator, "GET", "/apis")[1]["groups"]}
    assert groups == {
        "events.k8s.io",
        "coordination.k8s.io",
        "fleet.cattle.io",
        "admissionregistration.k8s.io",
    }
    assert (
        raw_request(emulator, "GET", "/apis/fleet.cattle.io")[1]["preferredVersion"]["version"] == "v1alpha1"
    )
    fleet = {
        r["name"]: r for r in raw_request(emulator, "GET", "/apis/fleet.cattle.io/v1alpha1")[1]["resources"]
    }
    assert fleet["gitrepos"]["kind"] == "GitRepo" and fleet["gitrepos"]["namespaced"] is True
    assert {"singularName", "verbs", "shortNames"} <= set(fleet["gitrepos"])
    assert fleet["gitrepos/status"]["verbs"] == ["get", "patch", "update"]


def test_openapi_v3_index_points_at_documents_with_field_validation(emulator: Emulator) -> None:
    index = raw_request(emulator, "GET", "/openapi/v3")[1]["paths"]
    assert {"api/v1", "apis/fleet.cattle.io/v1alpha1"} <= set(index)
    url = index["apis/fleet.cattle.io/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/fleet.cattle.io/v1alpha1?hash=")
    doc = raw_request(emulator, "GET", url)[1]
    op = doc["paths"]["/apis/fleet.cattle.io/v1alpha1/namespaces/{namespace}/gitrepos/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {
        "group": "fleet.cattle.io",
        "version": "v1alpha1",
        "kind": "GitRepo",
    }
    assert "fieldValidation" in {p["name"] for p in op["parameters"]}


def test_request_log_records_method_path_query_content_type_status_and_body(
    emulator: Emulator, kube_client: client.ApiClient
) -> None:
    crd = client.CustomObjectsApi(kube_client)
    emulator.create(gitrepo("r"))
    crd.patch_namespaced_custom_object_status(
        "fleet.cattle.io", "v1alpha1", "fleet-local", "gitrepos", "r", {"status": {"webhookCommit": "abc"}}
    )
    rec = emulator.requests[-1]
    assert (rec.method, rec.path, rec.content_type, rec.status, rec.body) == (
        "PATCH",
        "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/gitrepos/r/status",
        "application/merge-patch+json",
        200,
        {"status": {"webhookCommit": "abc"}},
    )
    client.CoreV1Api(kube_client).list_namespace(label_selector="a=b")
    assert emulator.requests[-1].query == {"labelSelector": "a=b"}


def test_fail_next_answers_matching_requests_with_a_status_error(
    emulator: Emulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    emulator.fail_next("GET", r"/namespaces/default$", 503, count=2)
    for _ in range(2):
        status, err = api_error(lambda: core.read_namespace("default"))
        assert (status, err["reason"], err["kind"]) == (503, "ServiceUnavailable", "Status")
    assert core.read_namespace("default").metadata.name == "default"
    assert [r.status for r in emulator.requests] == [503, 503, 200]


def test_fail_next_429_may_carry_retry_after(emulator: Emulator) -> None:
    # Note: the official client's urllib3 retry honours Retry-After on 429, so look at it raw.
    emulator.fail_next("GET", "/api/v1/namespaces$", 429, retry_after=1)
    with requests.Session() as session:
        with session.get(
            emulator.url + "/api/v1/namespaces",
            verify=emulator.ca_file,
            timeout=5,
            headers={"Authorization": f"Bearer {emulator.token}"},
        ) as resp:
            assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
            assert resp.json()["reason"] == "TooManyRequests"
            assert resp.json()["details"] == {"retryAfterSeconds": 1}


def test_fail_next_ignores_other_methods_and_paths(emulator: Emulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    emulator.fail_next("PATCH", "/secrets/", 500)
    core.read_namespace("default")
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    status, err = api_error(lambda: core.patch_namespaced_secret("s", "default", {"data": {}}))
    assert (status, err["reason"]) == (500, "InternalError")


def test_delay_holds_matching_requests(emulator: Emulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    emulator.delay("GET", "/namespaces$", 0.3, count=1)
    start = time.monotonic()
    core.list_namespace()
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    core.list_namespace()
    assert time.monotonic() - start < 0.3


def test_reset_returns_to_the_seeded_namespaces_and_clears_hooks_and_log(emulator: Emulator) -> None:
    emulator.create(gitrepo("r"))
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}})
    emulator.fail_next("*", ".", 500)
    emulator.reset()
    assert emulator.list("gitrepos") == [] and emulator.get("namespaces", None, "extra") is None
    assert raw_request(emulator, "GET", "/api/v1/namespaces")[0] == 200
    assert [n["metadata"]["name"] for n in emulator.list("namespaces")] == sorted(emulator.namespaces)
    assert len(emulator.requests) == 1


def test_seeding_api_fills_server_metadata_like_a_post(emulator: Emulator) -> None:
    obj = emulator.create(gitrepo("seeded", pollingInterval="1m"))
    assert obj["metadata"]["generation"] == 1 and obj["metadata"]["uid"]
    assert emulator.get("gitrepos", "fleet-local", "seeded") == obj
    emulator.delete("gitrepos", "fleet-local", "seeded")
    assert emulator.get("gitrepos", "fleet-local", "seeded") is None
