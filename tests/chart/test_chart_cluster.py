"""helm install, upgrade and uninstall of the chart on a real kube-apiserver.

There is no kubelet and no controller-manager here: the Deployments never get pods and never become
available by themselves. The order Helm writes in is read from the API server's own record (watch
events replayed from a resourceVersion taken before the action); where Helm waits for availability,
the test reports it the way the Deployment controller would (the Deployments' status), and shows the
webhook configurations appear only after that report.
"""

from __future__ import annotations

import base64
import datetime
import json
import pathlib
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from cryptography import x509

from chart import watching
from chart.helm import CHART, NAMESPACE, RELEASE, Helm
from cluster.isolation import Cluster
from support.paths import MANIFESTS
from support.waiting import wait_for

WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/{}webhookconfigurations"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
ADMISSION = "gitjob-webhook-admission"
COMPONENTS = ("gitjob-webhook-receiver", ADMISSION)
# Kinds of the chart's objects the cluster fixture's sweep does not know (helm uninstall deletes them;
# this is in case a test fails before it does).
UNSWEPT = {"PodDisruptionBudget": COMPONENTS, "NetworkPolicy": COMPONENTS,
           "ValidatingAdmissionPolicy": ("gitjob-webhook-receiver-secret-access",),
           "ValidatingAdmissionPolicyBinding": ("gitjob-webhook-receiver-secret-access",)}


@dataclass
class Release:
    """The chart as one test installs it: helm on the test's cluster, and what it reads back."""

    cluster: Cluster
    helm: Helm
    installed: bool = field(default=False)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run helm against the cluster, in the controller namespace."""
        return self.helm.run(*args, "--namespace", NAMESPACE, timeout=timeout)

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        """helm install of the chart; the test fails with helm's message if it does."""
        run = self("install", RELEASE, str(CHART), *args)
        assert run.returncode == 0, run.stderr
        self.installed = True
        return run

    def upgrade(self, *args: str) -> subprocess.CompletedProcess[str]:
        """helm upgrade of the chart."""
        run = self("upgrade", RELEASE, str(CHART), *args)
        assert run.returncode == 0, run.stderr
        return run

    def uninstall(self) -> subprocess.CompletedProcess[str]:
        """helm uninstall."""
        run = self("uninstall", RELEASE)
        assert run.returncode == 0, run.stderr
        self.installed = False
        return run

    def get(self, path: str) -> dict[str, Any] | None:
        """An object by API path, or None when there is none."""
        got = self.cluster.control_plane.request("GET", path)
        if got.status_code == 404:
            return None
        got.raise_for_status()
        result: dict[str, Any] = got.json()
        return result

    def secret(self, name: str) -> dict[str, Any]:
        """A Secret of the controller namespace."""
        found = self.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")
        assert found is not None, f"Secret {name} is missing"
        return found

    def webhook_configurations(self) -> dict[str, dict[str, Any] | None]:
        """Both webhook configurations by kind ("mutating", "validating"), None where absent."""
        return {kind: self.get(WEBHOOKS.format(kind) + f"/{ADMISSION}")
                for kind in ("mutating", "validating")}

    def report_available(self, name: str) -> str:
        """Write the status the Deployment controller writes once every replica is available; return
        the resourceVersion of that write."""
        path = f"{DEPLOYMENTS}/{name}"
        deployment = self.get(path)
        assert deployment is not None
        replicas = deployment["spec"]["replicas"]
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {"observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
                  "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                  "conditions": [
                      {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                       "message": "Deployment has minimum availability.", "lastUpdateTime": now,
                       "lastTransitionTime": now},
                      {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                       "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now,
                       "lastTransitionTime": now}]}
        written = self.cluster.control_plane.request("PATCH", f"{path}/status", {"status": status},
                                                     "application/merge-patch+json")
        assert written.status_code == 200, written.text
        return str(written.json()["metadata"]["resourceVersion"])


@pytest.fixture
def release(cluster: Cluster, helm: Helm) -> Iterator[Release]:
    """The chart, not yet installed, on the test's cluster; uninstalled and swept at teardown."""
    for kind, names in UNSWEPT.items():
        for name in names:
            cluster.track(kind, name, None if kind.startswith("ValidatingAdmission") else NAMESPACE)
    installed = Release(cluster, helm.with_kubeconfig(cluster.kubeconfig))
    try:
        yield installed
    finally:
        if installed.installed:
            installed("uninstall", RELEASE)


def _certificate(data: dict[str, str], key: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(data[key]))


def test_install_creates_the_webhooks_after_every_object_of_the_release(release: Release) -> None:
    plane = release.cluster.control_plane
    since = watching.current_revision(plane)
    release.install()
    created = watching.replay(plane, DEPLOYMENTS, since, watching.seen("ADDED", *COMPONENTS))
    created += watching.replay(plane, SERVICES, since, watching.seen("ADDED", ADMISSION, "gitjob"))
    last_object = max(event.revision for event in created if event.type == "ADDED")
    for kind in ("mutating", "validating"):
        webhooks = watching.replay(plane, WEBHOOKS.format(kind), since, watching.seen("ADDED", ADMISSION))
        assert watching.first(webhooks, "ADDED", ADMISSION).revision > last_object, kind
    hooks = yaml.safe_load_all(release("get", "hooks", RELEASE).stdout)
    assert {(h["kind"], h["metadata"]["annotations"]["helm.sh/hook"]) for h in hooks if h} == {
        ("MutatingWebhookConfiguration", "post-install,post-upgrade,post-rollback"),
        ("ValidatingWebhookConfiguration", "post-install,post-upgrade,post-rollback"),
        ("MutatingWebhookConfiguration", "pre-delete"), ("ValidatingWebhookConfiguration", "pre-delete")}
    assert "WebhookConfiguration" not in release("get", "manifest", RELEASE).stdout


def test_with_wait_the_webhooks_come_only_once_the_deployments_are_available(release: Release) -> None:
    lines: list[str] = []
    release.installed = True
    with release.helm.popen("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait",
                            "--timeout", "90s", "--debug") as helm:
        assert helm.stdout is not None and helm.stderr is not None
        log = helm.stderr
        reader = threading.Thread(target=lambda: lines.extend(iter(log.readline, "")), daemon=True)
        reader.start()
        try:
            # helm --debug logs this once it has created every release object and watches them
            # become ready (helm.sh/helm/v4 pkg/kube/statuswait.go).
            wait_for(lambda: any("waiting for resources" in line for line in lines), timeout=60,
                     message="helm to wait for the release's objects")
            assert release.get(f"{DEPLOYMENTS}/{ADMISSION}") is not None
            assert release.webhook_configurations() == {"mutating": None, "validating": None}
            assert helm.poll() is None
            available = [int(release.report_available(name)) for name in COMPONENTS]
            helm.wait(timeout=60)
        finally:
            if helm.poll() is None:
                helm.kill()
        reader.join(timeout=5)
        notes = helm.stdout.read()
    assert helm.returncode == 0, "".join(lines[-20:])
    for kind, configuration in release.webhook_configurations().items():
        assert configuration is not None, kind
        # Hooks are written once and left alone: their resourceVersion is their creation's.
        assert int(configuration["metadata"]["resourceVersion"]) > max(available), kind
    assert "gitjob-webhook status" in notes


def test_an_install_whose_deployments_never_become_available_never_creates_the_webhooks(
        release: Release) -> None:
    failed = release("install", RELEASE, str(CHART), "--wait", "--timeout", "2s")
    release.installed = True
    assert failed.returncode != 0
    assert f"Deployment/{NAMESPACE}/{ADMISSION} not ready" in failed.stderr
    assert release.get(f"{SERVICES}/{ADMISSION}") is not None
    assert release.webhook_configurations() == {"mutating": None, "validating": None}


def test_an_upgrade_applies_changed_values_and_keeps_the_generated_ca(release: Release) -> None:
    release.install()
    ca_before = release.secret("gitjob-webhook-ca")["data"]
    served_before = release.secret("gitjob-webhook-admission-tls")["data"]["tls.crt"]
    release.upgrade("--set", "receiver.replicas=3", "--set", "config.requireSignature=true")
    deployment = release.get(f"{DEPLOYMENTS}/gitjob-webhook-receiver")
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    (receiver,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "GITJOB_WEBHOOK_REQUIRE_SIGNATURE", "value": "true"} in receiver["env"]
    tls = release.secret("gitjob-webhook-admission-tls")
    assert release.secret("gitjob-webhook-ca")["data"] == ca_before
    assert tls["data"]["tls.crt"] == served_before
    for kind, configuration in release.webhook_configurations().items():
        assert configuration is not None, kind
        (webhook,) = configuration["webhooks"]
        assert webhook["clientConfig"]["caBundle"] == ca_before["tls.crt"], kind


def test_an_upgrade_near_expiry_issues_a_new_serving_certificate_from_the_same_ca(release: Release) -> None:
    release.install()
    ca_before = release.secret("gitjob-webhook-ca")["data"]
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    patched = release.cluster.kubectl("annotate", "--overwrite", "-n", NAMESPACE, "secret",
                                      "gitjob-webhook-admission-tls",
                                      f"gitjob-webhook.fleet.cattle.io/expires={soon}")
    assert patched.returncode == 0, patched.stderr
    served_before = release.secret("gitjob-webhook-admission-tls")["data"]["tls.crt"]
    release.upgrade("--force-conflicts")
    tls = release.secret("gitjob-webhook-admission-tls")
    assert tls["data"]["tls.crt"] != served_before
    assert release.secret("gitjob-webhook-ca")["data"] == ca_before
    _certificate(tls["data"], "tls.crt").verify_directly_issued_by(_certificate(ca_before, "tls.crt"))
    assert tls["metadata"]["annotations"]["gitjob-webhook.fleet.cattle.io/expires"] > soon


def test_a_rollback_restores_the_previous_values_and_the_webhooks_with_the_same_ca(release: Release) -> None:
    release.install()
    ca = release.secret("gitjob-webhook-ca")["data"]["tls.crt"]
    release.upgrade("--set", "admission.replicas=4")
    rolled = release("rollback", RELEASE, "1")
    assert rolled.returncode == 0, rolled.stderr
    deployment = release.get(f"{DEPLOYMENTS}/{ADMISSION}")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    for kind, configuration in release.webhook_configurations().items():
        assert configuration is not None, kind
        assert configuration["webhooks"][0]["clientConfig"]["caBundle"] == ca, kind


def _tls_secret(name: str, ca_pem: bytes) -> dict[str, Any]:
    """A serving Secret as cert-manager (or an operator) writes it: a certificate and its CA."""
    encoded = base64.b64encode(ca_pem).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"tls.crt": encoded, "tls.key": base64.b64encode(b"not a key").decode(),
                     "ca.crt": encoded}}


def _ca_bundles(release: Release) -> set[str]:
    bundles = set()
    for kind, configuration in release.webhook_configurations().items():
        assert configuration is not None, kind
        bundles |= {webhook["clientConfig"].get("caBundle", "") for webhook in configuration["webhooks"]}
    return bundles


def test_an_existing_secret_gives_its_ca_to_the_webhooks(release: Release, dev_certs: pathlib.Path) -> None:
    ca = (dev_certs / "ca.crt").read_bytes()
    release.cluster.apply(_tls_secret("my-admission-tls", ca))
    release.install("--set", "certificates.mode=existingSecret",
                    "--set", "certificates.existingSecret.name=my-admission-tls")
    assert _ca_bundles(release) == {base64.b64encode(ca).decode()}
    assert release.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/gitjob-webhook-admission-tls") is None


def _cert_manager_kind(kind: str, plural: str) -> dict[str, Any]:
    """A stand-in for a cert-manager CRD: the kind is served, its content not checked."""
    version = {"name": "v1", "served": True, "storage": True,
               "schema": {"openAPIV3Schema": {"type": "object",
                                              "x-kubernetes-preserve-unknown-fields": True}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.cert-manager.io"},
            "spec": {"group": "cert-manager.io", "scope": "Namespaced", "versions": [version],
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": f"{kind}List"}}}


def test_with_cert_manager_an_upgrade_gives_the_webhooks_the_issued_ca(release: Release,
                                                                       dev_certs: pathlib.Path) -> None:
    cluster = release.cluster
    cluster.apply([_cert_manager_kind("Certificate", "certificates"),
                   _cert_manager_kind("Issuer", "issuers")])
    wait_for(lambda: cluster.kubectl("get", "certificates.cert-manager.io", "-A").returncode == 0,
             timeout=30, message="the stand-in cert-manager kinds to be served")
    release.install("--set", "certificates.mode=certManager")
    # Until cert-manager has issued the certificate there is no CA to give: cainjector fills it in.
    assert _ca_bundles(release) == {""}
    for configuration in release.webhook_configurations().values():
        assert configuration is not None
        assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
            f"{NAMESPACE}/{ADMISSION}"
    ca = (dev_certs / "ca.crt").read_bytes()
    cluster.apply(_tls_secret("gitjob-webhook-admission-tls", ca))
    release.upgrade("--set", "certificates.mode=certManager")
    # The upgrade recreates the webhook configurations with the issued CA: no window without it.
    assert _ca_bundles(release) == {base64.b64encode(ca).decode()}


def test_uninstall_removes_the_webhooks_before_the_admission_service_and_deployment(release: Release) -> None:
    release.install()
    plane = release.cluster.control_plane
    since = watching.current_revision(plane)
    out = release.uninstall()
    services = watching.replay(plane, SERVICES, since, watching.seen("DELETED", ADMISSION))
    deployments = watching.replay(plane, DEPLOYMENTS, since, watching.seen("DELETED", *COMPONENTS))
    first_gone = min(watching.first(services + deployments, "DELETED", name).revision
                     for name in (ADMISSION, *COMPONENTS))
    for kind in ("mutating", "validating"):
        events = watching.replay(plane, WEBHOOKS.format(kind), since, watching.seen("DELETED", ADMISSION))
        armed = watching.first(events, "DELETED", ADMISSION)
        assert armed.object["webhooks"], "the first deletion is of the configuration that calls the service"
        assert armed.revision < first_gone, kind
        # Whatever the removal hook created and deleted afterwards called nothing.
        assert all(not event.object.get("webhooks") for event in events if event.revision > armed.revision)
    assert release.webhook_configurations() == {"mutating": None, "validating": None}
    for name in COMPONENTS:
        assert release.get(f"{DEPLOYMENTS}/{name}") is None
    assert release.get(f"{SERVICES}/{ADMISSION}") is None
    assert release.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/gitjob-webhook-ca") is None
    # Fleet's Service is not the release's to delete.
    assert release.get(f"{SERVICES}/gitjob") is not None
    assert "[Service] gitjob" in out.stdout


FLEETS_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "gitjob", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "Helm"},
                 "annotations": {"meta.helm.sh/release-name": "fleet",
                                 "meta.helm.sh/release-namespace": NAMESPACE}},
    "spec": {"selector": {"app": "gitjob"}, "ports": [{"name": "http-80", "port": 80, "targetPort": 8080}]}}


def test_fleets_gitjob_service_is_taken_over_whole_and_kept_on_uninstall(release: Release) -> None:
    # Fleet's chart wrote it client-side, as Helm 3 does.
    created = release.cluster.kubectl("create", "-f", "-", input=json.dumps(FLEETS_SERVICE))
    assert created.returncode == 0, created.stderr
    refused = release("install", RELEASE, str(CHART))
    assert refused.returncode != 0
    assert 'Service "gitjob" in namespace "cattle-fleet-system" exists' in refused.stderr
    assert 'current value is "fleet"' in refused.stderr
    release.install("--take-ownership", "--force-conflicts")
    service = release.get(f"{SERVICES}/gitjob")
    assert service is not None
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "gitjob-webhook",
                                           "app.kubernetes.io/component": "receiver"}
    assert service["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    release.uninstall()
    kept = release.get(f"{SERVICES}/gitjob")
    assert kept is not None and kept["metadata"]["uid"] == service["metadata"]["uid"]


def test_a_client_side_takeover_as_helm_3_does_would_merge_the_selectors_into_one_that_selects_nothing(
        release: Release) -> None:
    """Why the chart is installed with Helm 4's server-side apply (README: Install with Helm)."""
    created = release.cluster.kubectl("create", "-f", "-", input=json.dumps(FLEETS_SERVICE))
    assert created.returncode == 0, created.stderr
    release.install("--take-ownership", "--server-side=false")
    service = release.get(f"{SERVICES}/gitjob")
    assert service is not None
    assert service["spec"]["selector"] == {"app": "gitjob", "app.kubernetes.io/name": "gitjob-webhook",
                                           "app.kubernetes.io/component": "receiver"}


def test_an_install_made_with_kustomize_is_taken_over_by_the_chart(release: Release) -> None:
    applied = release.cluster.kubectl("apply", "--server-side", "--field-manager=gitjob-webhook", "-k",
                                      str(MANIFESTS))
    assert applied.returncode == 0, applied.stderr
    before = release.get(f"{DEPLOYMENTS}/{ADMISSION}")
    assert before is not None
    release.install("--take-ownership", "--force-conflicts")
    after = release.get(f"{DEPLOYMENTS}/{ADMISSION}")
    assert after is not None and after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    for kind, configuration in release.webhook_configurations().items():
        assert configuration is not None and configuration["webhooks"][0]["clientConfig"]["caBundle"], kind


def test_a_values_typo_is_refused_before_anything_is_written(release: Release) -> None:
    refused = release("install", RELEASE, str(CHART), "--set", "receiver.replica=3")
    assert refused.returncode != 0
    assert "values don't meet the specifications of the schema" in refused.stderr
    assert "replica" in refused.stderr
    assert release("status", RELEASE).returncode != 0
    assert release.get(f"{DEPLOYMENTS}/{ADMISSION}") is None


def test_the_notes_give_the_ingress_url_the_secret_command_and_the_status_command(release: Release) -> None:
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "webhook-ingress", "namespace": NAMESPACE},
               "spec": {"tls": [{"hosts": ["hooks.example.com"], "secretName": "hooks-tls"}],
                        "rules": [{"host": "hooks.example.com", "http": {"paths": [
                            {"path": "/", "pathType": "Exact",
                             "backend": {"service": {"name": "gitjob", "port": {"number": 80}}}}]}}]}}
    release.cluster.track("Ingress", "webhook-ingress", NAMESPACE)
    release.cluster.apply(ingress)
    notes = release.install().stdout
    assert "https://hooks.example.com/" in notes
    assert f"kubectl create secret generic gitjob-webhook -n {NAMESPACE} --from-literal=github=" in notes
    assert "kubectl gitjob-webhook status -A" in notes
