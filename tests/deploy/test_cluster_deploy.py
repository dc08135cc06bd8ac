"""``make deploy``'s steps against the API-server emulator, with both components running under their own
ServiceAccount identities: the example GitRepos come back mutated, a bad webhook Secret is denied,
and every request either component makes is one ``rbac_table.CALLS`` lists and the rendered RBAC allows.

The emulator stores every rendered kind (``kubeapi.resources.serving_also``) but runs no controllers:
the Deployments' pods are stood in for by ``gitjob-webhook serve`` processes on this machine, and the
Service gitjob-webhook-admission is mapped to the admission one's port. The emulator does not enforce
RBAC either: the authorizer of ``rbac_table`` judges the recorded requests afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from collections import defaultdict

import pytest
import requests
import yaml

from controller.certs import issue as certs
from deploy.rbac_table import CALLS, SERVICE_ACCOUNTS, allowed, attributes, grants_for, matching_call
from support import service
from support.paths import EXAMPLE_GITREPOS, MANIFESTS, PROVIDER_FIXTURES
from support.service import command
from support.waiting import free_port, wait_for

NAMESPACE = "cattle-fleet-system"
DEFAULTED = "gitjob.fleet.cattle.io/polling-interval-defaulted"
GITHUB_SECRET = "IsWishesWereHorsesWedAllBeEatingSteak!"  # the example Secret's public test vector
USERS = {component: f"system:serviceaccount:{NAMESPACE}:{account}"
         for component, account in SERVICE_ACCOUNTS.items()}


def _kubeconfig(emulator, tmp_path, component: str) -> str:
    """A kubeconfig whose token the emulator reports as the component's ServiceAccount."""
    token = f"{component}-token"
    emulator.add_token(token, USERS[component], ("system:serviceaccounts", "system:authenticated"))
    config = emulator.kubeconfig()
    config["users"][0]["user"] = {"token": token}
    path = tmp_path / f"{component}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture
def deployed(manifest_kinds, emulator, kubeconfig_path, kubectl, run_service, tmp_path):
    """make deploy, step by step, with the two Deployments stood in for by local processes."""
    certs_dir = tmp_path / "certs"
    certs.ensure_certificates(str(certs_dir), certs.service_names("gitjob-webhook-admission", NAMESPACE))
    # A GitRepo from before the install (no admission on the way in): the reconcile pass adjusts it.
    emulator.create({"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                     "metadata": {"name": "pre-existing", "namespace": "fleet-local"},
                     "spec": {"repo": "https://github.com/example/pre-existing"}})
    # A GitRepo with its own webhook Secret, so the receiver watches a Secret outside cattle-fleet-system.
    emulator.create({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "team-hook", "namespace": "fleet-default"},
                     "stringData": {"github": "team-secret"}})
    emulator.create({"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                     "metadata": {"name": "team-app", "namespace": "fleet-default"},
                     "spec": {"repo": "https://github.com/example/team-app", "webhookSecret": "team-hook",
                              "pollingInterval": "1h"}})

    secret = kubectl("create", "secret", "tls", "gitjob-webhook-admission-tls", "--namespace", NAMESPACE,
                     "--cert", str(certs_dir / "tls.crt"), "--key", str(certs_dir / "tls.key"),
                     "--dry-run=client", "-o", "yaml")
    assert secret.returncode == 0, secret.stderr
    applied = kubectl("apply", "--server-side", "--field-manager=gitjob-webhook", "-f", "-",
                      input=secret.stdout)
    assert applied.returncode == 0, applied.stderr
    applied = kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=gitjob-webhook",
                      "-k", str(MANIFESTS))
    assert applied.returncode == 0, applied.stderr

    admission_port, receiver_port = free_port(), free_port()
    admission = run_service("serve", "admission", "--listen", f"127.0.0.1:{admission_port}",
                            "--kubeconfig", _kubeconfig(emulator, tmp_path, "admission"),
                            "--tls-cert", str(certs_dir / "tls.crt"), "--tls-key", str(certs_dir / "tls.key"),
                            "--reconcile-period", "0.3", env={"GITJOB_WEBHOOK_NAMESPACE": NAMESPACE})
    receiver = run_service("serve", "receiver", "--listen", f"127.0.0.1:{receiver_port}",
                           "--kubeconfig", _kubeconfig(emulator, tmp_path, "receiver"),
                           env={"GITJOB_WEBHOOK_NAMESPACE": NAMESPACE})
    emulator.map_service(NAMESPACE, "gitjob-webhook-admission", admission_port)
    injected = subprocess.run(command("certs", "inject", "--ca", str(certs_dir / "ca.crt"),
                                      "--kubeconfig", kubeconfig_path),
                              capture_output=True, text=True, timeout=30)
    assert injected.returncode == 0, injected.stderr
    admission.admission = f"https://127.0.0.1:{admission_port}"
    receiver.receiver = f"http://127.0.0.1:{receiver_port}"
    service.wait_ready(admission.admission, admission, verify=str(certs_dir / "ca.crt"))
    service.wait_ready(receiver.receiver, receiver)
    return receiver, admission


def test_the_deployment_objects_are_stored(emulator, deployed):
    assert emulator.get("deployments.apps", NAMESPACE, "gitjob-webhook-receiver")["spec"]["replicas"] == 2
    assert emulator.get("services", NAMESPACE, "gitjob")["spec"]["ports"][0]["port"] == 80
    assert emulator.get("secrets", NAMESPACE, "gitjob-webhook-admission-tls")["type"] == "kubernetes.io/tls"
    webhook = emulator.get("validatingwebhookconfigurations", None, "gitjob-webhook-admission")
    assert webhook["webhooks"][0]["clientConfig"]["caBundle"]


def test_applied_example_gitrepos_come_back_mutated(emulator, deployed, kubectl):
    result = kubectl("apply", "-f", str(EXAMPLE_GITREPOS))
    assert result.returncode == 0, result.stderr
    for namespace, name in (("fleet-default", "sample-app"), ("fleet-default", "diaspora"),
                            ("fleet-local", "example-v1"), ("fleet-local", "fleet-examples")):
        stored = emulator.get("gitrepos", namespace, name)
        assert stored["spec"]["pollingInterval"] == "1h", name
        assert stored["metadata"]["annotations"][DEFAULTED] == "true"
    explicit = emulator.get("gitrepos", "fleet-default", "sample-app-release")
    assert explicit["spec"]["pollingInterval"] == "1h"
    assert DEFAULTED not in explicit["metadata"]["annotations"]


def test_a_bad_webhook_secret_is_denied(emulator, deployed, kubectl):
    manifest = (MANIFESTS / "examples" / "webhook-secrets" / "github.yaml").read_text()
    result = kubectl("apply", "-f", "-", input=manifest.replace("  github:", "  GitHub:"))
    assert result.returncode != 0
    assert 'admission webhook "secrets.gitjob-webhook.fleet.cattle.io" denied the request' in result.stderr
    assert 'did you mean "github"' in result.stderr
    assert emulator.get("secrets", NAMESPACE, "gitjob-webhook") is None


def _deliver(receiver: str, body: bytes) -> dict:
    """A signed GitHub push without a delivery id."""
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = requests.post(receiver, data=body, timeout=15, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
    assert response.status_code == 200, response.text
    return {g["name"]: g["result"] for g in response.json()["gitrepos"]}


def test_every_request_of_each_component_is_in_the_table_and_allowed(emulator, deployed, kubectl, rendered):
    receiver, _ = deployed
    assert kubectl("apply", "-f", str(EXAMPLE_GITREPOS)).returncode == 0
    body = (PROVIDER_FIXTURES / "github" / "push.json").read_bytes()
    wait_for(lambda: _deliver(receiver.receiver, body).get("sample-app") == "patched", timeout=10,
             message="the receiver to patch sample-app")
    # The same delivery again after the status moved on: the same Event, so its count is bumped.
    patched = kubectl("patch", "gitrepo", "sample-app", "-n", "fleet-default", "--subresource=status",
                      "--type=merge", "-p", '{"status":{"webhookCommit":"' + "0" * 40 + '"}}')
    assert patched.returncode == 0, patched.stderr
    # Another delivery of the same push (other bytes: the same body again is a duplicate).
    wait_for(lambda: _deliver(receiver.receiver, body + b"\n").get("sample-app") == "patched", timeout=10,
             message="the receiver to patch sample-app again")
    wait_for(lambda: (emulator.get("gitrepos", "fleet-local", "pre-existing")["spec"].get("pollingInterval")
                      == "1h"), timeout=10, message="the reconcile pass")

    def seen() -> dict[str, set]:
        observed: dict[str, set] = defaultdict(set)
        for record in emulator.requests:
            for component, user in USERS.items():
                if record.user == user:
                    observed[component].add((record.method, record.path, tuple(sorted(record.query.items()))))
        return observed

    def covered() -> bool:
        calls = {matching_call(c, m, p, dict(q)) for c, requests_ in seen().items() for m, p, q in requests_}
        return set(CALLS) <= calls
    wait_for(covered, timeout=10, message="every call of the table to be made")

    for component, requests_ in seen().items():
        grants = grants_for(rendered, SERVICE_ACCOUNTS[component])
        for method, path, query in requests_:
            call = matching_call(component, method, path, dict(query))
            assert call is not None, f"{component}: not in the table: {method} {path} {query}"
            assert allowed(grants, attributes(method, path, dict(query))), (component, method, path, query)
