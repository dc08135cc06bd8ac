"""The admission server behind the emulator's admission chain, driven by real kubectl and the client.

The project's own webhook configurations from manifests/webhooks.yaml are applied with kubectl,
`gitjob-webhook certs inject` writes the CA into them, and the Service they name is mapped to
the admission server under test.
"""

from __future__ import annotations

import base64
import subprocess

import pytest
from kubernetes import client

from controller.certs import issue as certs
from support import service
from support.paths import MANIFESTS
from support.service import command
from support.waiting import free_port

GITREPO = """\
apiVersion: fleet.cattle.io/v1alpha1
kind: GitRepo
metadata:
  name: {name}
  namespace: fleet-default
spec:
  repo: https://github.com/example/app
{extra}"""


@pytest.fixture
def admission_cluster(emulator, kubeconfig_path, kubectl, run_service, tmp_path):
    """Webhook configurations applied and injected, admission server running, global Secret present."""
    certs.ensure_certificates(
        str(tmp_path / "certs"), certs.service_names("gitjob-webhook-admission", "cattle-fleet-system")
    )
    # Before the server starts, so that its first sync already sees webhook mode on.
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"},
            "stringData": {"github": "s3cret"},
        }
    )
    port = free_port()
    started = run_service(
        "serve",
        "admission",
        "--listen",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        kubeconfig_path,
        "--tls-cert",
        str(tmp_path / "certs" / "tls.crt"),
        "--tls-key",
        str(tmp_path / "certs" / "tls.key"),
    )
    emulator.map_service("cattle-fleet-system", "gitjob-webhook-admission", port)
    applied = kubectl("apply", "-f", str(MANIFESTS / "webhooks.yaml"))
    assert applied.returncode == 0, applied.stderr
    injected = subprocess.run(
        command(
            "certs", "inject", "--ca", str(tmp_path / "certs" / "ca.crt"), "--kubeconfig", kubeconfig_path
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert injected.returncode == 0, injected.stderr
    service.wait_ready(f"https://127.0.0.1:{port}", started, verify=str(tmp_path / "certs" / "ca.crt"))
    return started


def test_certs_inject_writes_the_ca_into_both_webhook_configurations(emulator, admission_cluster, tmp_path):
    ca = (tmp_path / "certs" / "ca.crt").read_bytes()
    for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        stored = emulator.get(plural, None, "gitjob-webhook-admission")
        assert [base64.b64decode(w["clientConfig"]["caBundle"]) for w in stored["webhooks"]] == [ca]


def test_kubectl_apply_of_a_gitrepo_comes_back_with_a_one_hour_interval(emulator, admission_cluster, kubectl):
    result = kubectl("apply", "-f", "-", input=GITREPO.format(name="app", extra=""))
    assert result.returncode == 0, result.stderr
    stored = emulator.get("gitrepos", "fleet-default", "app")
    assert stored["spec"]["pollingInterval"] == "1h"
    assert stored["metadata"]["annotations"]["gitjob.fleet.cattle.io/polling-interval-defaulted"] == "true"
    again = kubectl("apply", "-f", "-", input=GITREPO.format(name="app", extra=""))
    assert again.returncode == 0 and "unchanged" in again.stdout


def test_an_explicit_interval_is_kept_with_a_warning_kubectl_prints(emulator, admission_cluster, kubectl):
    result = kubectl("apply", "-f", "-", input=GITREPO.format(name="fast", extra="  pollingInterval: 15s\n"))
    assert result.returncode == 0, result.stderr
    assert emulator.get("gitrepos", "fleet-default", "fast")["spec"]["pollingInterval"] == "15s"
    assert "Warning: " in result.stderr and "15s" in result.stderr


def test_the_official_client_gets_the_same_defaulting(emulator, admission_cluster, kube_client):
    api = client.CustomObjectsApi(kube_client)
    body = {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": "by-client", "namespace": "fleet-default"},
        "spec": {"repo": "https://github.com/example/app"},
    }
    created = api.create_namespaced_custom_object(
        "fleet.cattle.io", "v1alpha1", "fleet-default", "gitrepos", body
    )
    assert created["spec"]["pollingInterval"] == "1h"


def test_a_broken_webhook_secret_is_denied_with_what_to_fix(emulator, admission_cluster, kubectl):
    emulator.delete("secrets", "cattle-fleet-system", "gitjob-webhook")
    secret = base64.b64encode(b"s3cret\n").decode()
    manifest = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: gitjob-webhook
  namespace: cattle-fleet-system
data:
  GitHub: {secret}
"""
    result = kubectl("apply", "-f", "-", input=manifest)
    assert result.returncode != 0
    assert result.stderr == (
        'Error from server (Forbidden): error when creating "STDIN": secrets "gitjob-webhook" is forbidden: '
        "admission webhook "
        '"secrets.gitjob-webhook.fleet.cattle.io" denied the request: '
        "Secret cattle-fleet-system/gitjob-webhook "
        'is not a valid webhook secret: key "GitHub" is not a provider key (did you mean "github"?) and ends '
        "with a newline (it was probably created with --from-file; recreate it with --from-literal or strip "
        "the newline). Allowed keys: azure-password, azure-username, bitbucket, bitbucket-server, github, "
        "gitlab, gogs.\n"
    )
    assert emulator.get("secrets", "cattle-fleet-system", "gitjob-webhook") is None
    denial = next(line for line in admission_cluster.log().splitlines() if "admission denied" in line)
    assert '"operation": "CREATE"' in denial and "s3cret" not in denial


SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: cattle-fleet-system
stringData:
{data}"""


def test_a_valid_webhook_secret_and_other_secrets_are_admitted(emulator, admission_cluster, kubectl):
    other = kubectl("apply", "-f", "-", input=SECRET.format(name="unrelated", data="  anything: goes\n"))
    assert other.returncode == 0, other.stderr
    emulator.delete("secrets", "cattle-fleet-system", "gitjob-webhook")
    valid = kubectl(
        "apply",
        "-f",
        "-",
        input=SECRET.format(name="gitjob-webhook", data="  github: s3cret\n  gitlab: t0ken\n"),
    )
    assert valid.returncode == 0, valid.stderr
    assert emulator.get("secrets", "cattle-fleet-system", "gitjob-webhook") is not None
