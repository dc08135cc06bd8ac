"""The receiver reads only the Secrets GitRepos name, by the manifests' RBAC on a real API server.

The rendered RBAC of manifests/ is applied to the real kube-apiserver; the admission side's access
sync runs under the admission ServiceAccount's own token, and what the receiver's ServiceAccount may
read is asked of the real authorizer.
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cluster.isolation import Cluster
from controller.admission.access import AccessSync
from controller.settings import Settings
from controller.store.kube import KubeStore
from support.paths import MANIFESTS
from support.waiting import wait_for

CONTROLLER = "cattle-fleet-system"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
              "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def _rendered_rbac(cluster: Cluster) -> list[dict[str, Any]]:
    run = cluster.kubectl("kustomize", str(MANIFESTS))
    assert run.returncode == 0, run.stderr
    return [obj for obj in yaml.safe_load_all(run.stdout) if obj and obj["kind"] in RBAC_KINDS]


@pytest.fixture
def rbac(cluster: Cluster) -> Cluster:
    """The manifests' RBAC and admission policy, applied to the real server (and the policy in force)."""
    objects = _rendered_rbac(cluster)
    for obj in objects:
        if obj["kind"].startswith("ValidatingAdmissionPolicy"):
            cluster.track(obj["kind"], obj["metadata"]["name"])
    cluster.apply(objects)
    # The API server takes a policy into account a moment after it is stored.
    admission = cluster.service_account_kubeconfig(CONTROLLER, "gitjob-webhook-admission")
    probe = yaml.safe_dump({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                            "metadata": {"name": "gitjob-webhook-receiver-secrets", "namespace": CONTROLLER},
                            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    wait_for(lambda: "may only let the receiver" in cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=probe, kubeconfig=admission).stderr,
        timeout=30, message="the admission policy in force")
    return cluster


def _can(cluster: Cluster, kubeconfig: pathlib.Path, *request: str) -> bool:
    run: subprocess.CompletedProcess[str] = cluster.kubectl(*request, kubeconfig=kubeconfig)
    return run.returncode == 0


def _secret(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"github": "s3cret"}}


def _gitrepo(namespace: str, name: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"repo": f"https://github.com/example/{namespace}-{name}", "webhookSecret": secret}}


@pytest.fixture
def admission_store(rbac: Cluster) -> Iterator[KubeStore]:
    """The admission side's store, under the admission ServiceAccount's own token."""
    kubeconfig = str(rbac.service_account_kubeconfig(CONTROLLER, "gitjob-webhook-admission"))
    store = KubeStore.connect(Settings(kubeconfig=kubeconfig, namespace=CONTROLLER), kubeconfig,
                              per_gitrepo_secrets=False)
    store.start()
    try:
        wait_for(lambda: store.readiness()[0], timeout=30, message="the admission store")
        yield store
    finally:
        store.stop()


def test_the_receiver_reads_exactly_the_secrets_gitrepos_name(rbac: Cluster,
                                                              admission_store: KubeStore) -> None:
    namespace = rbac.namespace("team")
    rbac.apply([_secret(namespace, "team-hook"), _secret(namespace, "unrelated"),
                _gitrepo(namespace, "app", "team-hook")])
    receiver = rbac.service_account_kubeconfig(CONTROLLER, "gitjob-webhook-receiver")
    read_named = ("get", "secret", "team-hook", "-n", namespace)
    assert not _can(rbac, receiver, *read_named)

    sync = AccessSync(admission_store, CONTROLLER)
    wait_for(lambda: any(gitrepo.namespace == namespace for gitrepo in admission_store.gitrepos()),
             message="the GitRepo in the admission cache")
    granted, _ = sync.run_once()

    assert granted == {namespace: ("team-hook",)}
    assert _can(rbac, receiver, *read_named)
    assert _can(rbac, receiver, "get", "secrets", "-n", namespace, "--field-selector",
                "metadata.name=team-hook")
    assert not _can(rbac, receiver, "get", "secret", "unrelated", "-n", namespace)
    assert not _can(rbac, receiver, "get", "secrets", "-n", namespace)
    assert _can(rbac, receiver, "get", "secrets", "-n", CONTROLLER, "--field-selector",
                "metadata.name=gitjob-webhook")


def test_access_is_taken_back_when_no_gitrepo_names_the_secret(rbac: Cluster,
                                                               admission_store: KubeStore) -> None:
    namespace = rbac.namespace("team")
    rbac.apply([_secret(namespace, "team-hook"), _gitrepo(namespace, "app", "team-hook")])
    receiver = rbac.service_account_kubeconfig(CONTROLLER, "gitjob-webhook-receiver")
    sync = AccessSync(admission_store, CONTROLLER)
    wait_for(lambda: sync.run_once()[0], message="the grant")
    assert rbac.kubectl("delete", "gitrepo", "app", "-n", namespace).returncode == 0
    wait_for(lambda: not any(g.namespace == namespace for g in admission_store.gitrepos()),
             message="the GitRepo gone from the cache")

    _, revoked = sync.run_once()

    assert revoked == [namespace]
    assert not _can(rbac, receiver, "get", "secret", "team-hook", "-n", namespace)


@pytest.mark.parametrize(("manifest", "refused_by"), [
    pytest.param({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                  "metadata": {"name": "something-else"},
                  "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
                 "forbidden", id="another role name"),
    pytest.param({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                  "metadata": {"name": "gitjob-webhook-receiver-secrets"},
                  "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
                 "may only let the receiver read named Secrets", id="its role granting pods"),
    pytest.param({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                  "metadata": {"name": "gitjob-webhook-receiver-secrets"},
                  "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]},
                 "may only let the receiver read named Secrets", id="its role granting every secret"),
    pytest.param({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                  "metadata": {"name": "gitjob-webhook-receiver-secrets"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                              "name": "gitjob-webhook-receiver-secrets"},
                  "subjects": [{"kind": "ServiceAccount", "namespace": CONTROLLER,
                                "name": "gitjob-webhook-admission"}]},
                 "may only bind its Role to the receiver", id="binding its role to itself"),
])
def test_the_admission_account_cannot_grant_anything_else(rbac: Cluster, manifest: dict[str, Any],
                                                          refused_by: str) -> None:
    namespace = rbac.namespace("target")
    admission = rbac.service_account_kubeconfig(CONTROLLER, "gitjob-webhook-admission")
    obj = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    run = rbac.kubectl("apply", "--server-side", "--field-manager=attacker", "-f", "-",
                       input=yaml.safe_dump(obj), kubeconfig=admission)
    assert run.returncode != 0
    assert refused_by in run.stderr, run.stderr
