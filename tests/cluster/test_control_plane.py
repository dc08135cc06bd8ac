"""The test harness itself: the real control plane, its isolation and the fault proxy do what the
other tests rely on."""

from __future__ import annotations

import json
import pathlib
import re
import time
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, config as kube_config
from kubernetes.client.exceptions import ApiException

from cluster import binaries
from cluster.controlplane import ControlPlane
from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from support.waiting import wait_for

PINNED = binaries.kubernetes_version()


def gitrepo(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"repo": "https://github.com/example/app", **spec}}


def gitrepos_path(namespace: str, name: str = "") -> str:
    return f"/apis/fleet.cattle.io/v1alpha1/namespaces/{namespace}/gitrepos" + (f"/{name}" if name else "")


def create(plane: ControlPlane, path: str, body: dict[str, Any]) -> dict[str, Any]:
    created = plane.request("POST", path, body)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


def token_of(kubeconfig: pathlib.Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def test_the_api_server_is_the_version_pinned_in_tools_k8s(control_plane: ControlPlane) -> None:
    version = control_plane.request("GET", "/version").json()
    assert version["gitVersion"] == PINNED  # v1.37.2 today; never v0.0.0-master, an unstamped build
    assert re.fullmatch(r"v1\.\d+\.\d+", version["gitVersion"])
    assert (version["major"], version["minor"]) == tuple(PINNED.removeprefix("v").split(".")[:2])


def test_etcd_is_the_version_kubernetes_pins(control_plane: ControlPlane) -> None:
    assert control_plane.etcd_version() == binaries.etcd_version()
    assert control_plane.etcd_version().startswith("3.")


def test_the_cached_kubectl_is_the_pinned_version(cluster: Cluster) -> None:
    run = cluster.kubectl("version", "-o", "json")
    assert run.returncode == 0, run.stderr
    versions = json.loads(run.stdout)
    assert versions["clientVersion"]["gitVersion"] == versions["serverVersion"]["gitVersion"] == PINNED


def test_a_status_patch_changes_the_status_and_never_the_spec(cluster: Cluster) -> None:
    namespace = cluster.namespace()
    plane = cluster.control_plane
    created = create(plane, gitrepos_path(namespace), gitrepo("app", namespace, branch="main"))
    patch = {"spec": {"branch": "other"}, "status": {"webhookCommit": "a" * 40,
                                                     "lastWebhookTime": "2026-01-02T03:04:05Z"}}
    patched = plane.request("PATCH", gitrepos_path(namespace, "app") + "/status", patch,
                            "application/merge-patch+json")
    assert patched.status_code == 200, patched.text
    stored = plane.request("GET", gitrepos_path(namespace, "app")).json()
    assert stored["status"]["webhookCommit"] == "a" * 40
    assert stored["spec"]["branch"] == "main"
    assert stored["metadata"]["generation"] == created["metadata"]["generation"]


def test_the_gitrepo_schema_refuses_an_empty_repo_and_keeps_unknown_fields(cluster: Cluster) -> None:
    namespace = cluster.namespace()
    plane = cluster.control_plane
    refused = plane.request("POST", gitrepos_path(namespace), gitrepo("bad", namespace, repo=""))
    assert refused.status_code == 422
    assert "spec.repo" in refused.json()["message"]
    kept = create(plane, gitrepos_path(namespace), gitrepo("ok", namespace, correctDrift={"enabled": True}))
    assert kept["spec"]["correctDrift"] == {"enabled": True}


def test_kubectl_prints_the_repo_and_commit_columns(cluster: Cluster) -> None:
    namespace = cluster.namespace()
    cluster.apply(gitrepo("app", namespace))
    run = cluster.kubectl("get", "gitrepos", "-n", namespace)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[0].split() == ["NAME", "REPO", "COMMIT"]


def test_rbac_applies_to_a_service_account_token(cluster: Cluster) -> None:
    namespace = cluster.namespace()
    kubeconfig = cluster.service_account_kubeconfig(namespace, "reader")
    secrets_url = f"{cluster.control_plane.url}/api/v1/namespaces/{namespace}/secrets"
    auth = {"Authorization": f"Bearer {token_of(kubeconfig)}"}
    ca = str(cluster.control_plane.ca_file)
    assert requests.get(secrets_url, headers=auth, verify=ca, timeout=10).status_code == 403
    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "read-secrets", "namespace": namespace},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "read-secrets", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-secrets"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]},
    ])
    # The authorizer reads RBAC objects from an informer: the grant applies shortly after.
    wait_for(lambda: requests.get(secrets_url, headers=auth, verify=ca, timeout=10).status_code == 200,
             timeout=10, message="the RoleBinding to take effect")


def test_the_python_client_works_with_a_service_account_kubeconfig(cluster: Cluster) -> None:
    namespace = cluster.namespace()
    kubeconfig = cluster.service_account_kubeconfig(namespace, "nobody")
    api_client: client.ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig))
    try:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api_client).list_namespaced_secret(namespace)
        assert refused.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in str(refused.value.body)
    finally:
        api_client.close()  # type: ignore[no-untyped-call]


def test_clean_up_removes_what_the_test_created_and_keeps_what_was_there(
        control_plane: ControlPlane, tmp_path: pathlib.Path) -> None:
    view = Cluster(control_plane, tmp_path, "clean-up")
    hooks = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    roles = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    try:
        namespace = view.namespace()
        held = gitrepo("held", namespace)
        held["metadata"]["finalizers"] = ["fleet.cattle.io/test"]
        create(control_plane, gitrepos_path(namespace), held)
        create(control_plane, gitrepos_path("fleet-default"), gitrepo("shared", "fleet-default"))
        create(control_plane, "/api/v1/namespaces/cattle-fleet-system/secrets",
               {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gitjob-webhook"}})
        create(control_plane, roles, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                      "metadata": {"name": "test-role"}, "rules": []})
        # Its server is gone and it refuses everything: clean-up must remove it before the rest.
        create(control_plane, hooks, {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "stopped-server"},
            "webhooks": [{"name": "all.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "failurePolicy": "Fail", "clientConfig": {"url": "https://127.0.0.1:9/"},
                          "rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"],
                                     "operations": ["CREATE", "UPDATE", "DELETE"]}]}]})
    finally:
        view.cleanup()
    assert control_plane.request("GET", f"{hooks}/stopped-server").status_code == 404
    assert control_plane.request("GET", "/apis/fleet.cattle.io/v1alpha1/gitrepos").json()["items"] == []
    assert control_plane.request("GET", "/api/v1/namespaces/cattle-fleet-system/secrets/gitjob-webhook"
                                 ).status_code == 404
    assert control_plane.request("GET", f"/api/v1/namespaces/{namespace}").status_code == 404
    assert control_plane.request("GET", f"{roles}/test-role").status_code == 404
    assert control_plane.request("GET", f"{roles}/cluster-admin").status_code == 200
    assert control_plane.request("GET", "/api/v1/namespaces/fleet-default").status_code == 200


def test_the_fault_proxy_forwards_and_logs_requests(fault_proxy: FaultProxy, cluster: Cluster) -> None:
    run = cluster.kubectl("get", "namespaces", "fleet-default", "-o", "name",
                          kubeconfig=fault_proxy.kubeconfig)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "namespace/fleet-default"
    [record] = [r for r in fault_proxy.requests if r.path == "/api/v1/namespaces/fleet-default"]
    assert record.method == "GET" and record.status == 200
    assert record.user_agent.startswith("kubectl/" + PINNED)


@pytest.mark.parametrize(("status", "retry_after"), [
    pytest.param(500, None, id="internal error"),
    pytest.param(429, 2, id="too many requests"),
])
def test_the_fault_proxy_answers_an_injected_failure_once(
        fault_proxy: FaultProxy, control_plane: ControlPlane, status: int, retry_after: int | None) -> None:
    fault_proxy.fail_next("GET", r"/secrets$", status, retry_after=retry_after)
    url = f"{fault_proxy.url}/api/v1/namespaces/fleet-default/secrets"
    auth = {"Authorization": f"Bearer {control_plane.token}"}
    with requests.Session() as session:
        first = session.get(url, headers=auth, verify=str(control_plane.ca_file), timeout=10)
        second = session.get(url, headers=auth, verify=str(control_plane.ca_file), timeout=10)
    assert first.status_code == status
    assert (first.json()["kind"], first.json()["code"]) == ("Status", status)
    assert first.headers.get("Retry-After") == (str(retry_after) if retry_after else None)
    assert second.status_code == 200
    assert [r.status for r in fault_proxy.requests] == [status, 200]


def test_the_fault_proxy_delays_a_request(fault_proxy: FaultProxy, control_plane: ControlPlane) -> None:
    fault_proxy.delay("*", r"^/version$", 0.5, count=1)
    auth = {"Authorization": f"Bearer {control_plane.token}"}
    started = time.monotonic()
    answer = requests.get(f"{fault_proxy.url}/version", headers=auth, verify=str(control_plane.ca_file),
                          timeout=10)
    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.5


def test_the_fault_proxy_streams_a_watch_and_cuts_it(fault_proxy: FaultProxy, cluster: Cluster) -> None:
    namespace = cluster.namespace()
    plane = cluster.control_plane
    url = f"{fault_proxy.url}{gitrepos_path(namespace)}?watch=true"
    with requests.get(url, headers={"Authorization": f"Bearer {plane.token}"}, verify=str(plane.ca_file),
                      stream=True, timeout=30) as watch:
        assert watch.status_code == 200
        lines = watch.iter_lines()
        create(plane, gitrepos_path(namespace), gitrepo("app", namespace))
        event = json.loads(next(lines))
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "app")
        assert fault_proxy.cut_streams() == 1
        with pytest.raises(requests.RequestException):
            for _ in lines:
                pass


def test_a_refusing_fault_proxy_looks_unreachable(
        fault_proxy: FaultProxy, control_plane: ControlPlane) -> None:
    auth = {"Authorization": f"Bearer {control_plane.token}"}
    url, ca = f"{fault_proxy.url}/version", str(control_plane.ca_file)
    fault_proxy.refuse(True)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, headers=auth, verify=ca, timeout=10)
    fault_proxy.refuse(False)
    assert requests.get(url, headers=auth, verify=ca, timeout=10).status_code == 200


def watch_status(plane: ControlPlane, namespace: str, resource_version: str) -> dict[str, Any]:
    """How a watch of GitRepos from ``resource_version`` starts: the Status of an HTTP error or of
    a first ERROR event, else code 200 (its first event is a replayed change)."""
    url = f"{plane.url}{gitrepos_path(namespace)}?watch=true&resourceVersion={resource_version}"
    with requests.get(url, headers={"Authorization": f"Bearer {plane.token}"}, verify=str(plane.ca_file),
                      stream=True, timeout=10) as answer:
        if answer.status_code != 200:
            status: dict[str, Any] = answer.json()
            return status
        event = json.loads(next(answer.iter_lines()))
    return event["object"] if event["type"] == "ERROR" else {"code": 200}


def test_restarting_the_api_server_keeps_port_and_data_and_expires_old_watches(
        private_control_plane: ControlPlane) -> None:
    plane = private_control_plane
    created = create(plane, gitrepos_path("fleet-default"), gitrepo("kept", "fleet-default"))
    create(plane, gitrepos_path("fleet-default"), gitrepo("later", "fleet-default"))
    url = plane.url
    plane.restart_apiserver()
    assert plane.url == url
    assert plane.request("GET", gitrepos_path("fleet-default", "kept")).status_code == 200
    # The new server's watch cache starts at the current revision: a reflector resuming from
    # before the restart gets 410 Expired and must relist.
    expired = watch_status(plane, "fleet-default", created["metadata"]["resourceVersion"])
    assert (expired["code"], expired["reason"]) == (410, "Expired")


@pytest.mark.parametrize("private_control_plane", [["--watch-cache=false"]], indirect=True)
def test_a_watch_from_a_compacted_resource_version_is_gone(private_control_plane: ControlPlane) -> None:
    plane = private_control_plane
    old = create(plane, gitrepos_path("fleet-default"), gitrepo("app", "fleet-default"))
    for commit in ("1", "2"):
        patch = {"status": {"commit": commit * 40}}
        assert plane.request("PATCH", gitrepos_path("fleet-default", "app") + "/status", patch,
                             "application/merge-patch+json").status_code == 200
    since = old["metadata"]["resourceVersion"]
    assert watch_status(plane, "fleet-default", since)["code"] == 200
    plane.compact()
    expired = watch_status(plane, "fleet-default", since)
    assert (expired["code"], expired["reason"]) == (410, "Expired")
