"""``make deploy``'s steps on a real kube-apiserver, with both components under their own tokens.

The manifests are applied as the README says; the Deployments' pods are stood in for by
``gitjob-webhook serve`` processes on this machine (there is no kubelet here), each with a token
of its own ServiceAccount, so the real authorizer judges every request by the manifests' RBAC.
The API server reaches the admission process through the project's own webhook configurations:
their Service is made an ExternalName for ``localhost`` (the server then checks the serving
certificate against ``gitjob-webhook-admission.cattle-fleet-system.svc``, which ``certs`` covers)
and their port is the process's. Each component talks through a recording proxy of its own, so
every request it makes is checked against ``rbac_table.CALLS``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pathlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
import yaml

from cluster.controlplane import ControlPlane
from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from deploy.rbac_table import CALLS, SERVICE_ACCOUNTS, Call, matching_call
from support import service
from support.paths import EXAMPLE_GITREPOS, MANIFESTS, PROVIDER_FIXTURES
from support.service import command
from support.waiting import wait_for

NAMESPACE = "cattle-fleet-system"
DEFAULTED = "gitjob.fleet.cattle.io/polling-interval-defaulted"
GITHUB_SECRET = "IsWishesWereHorsesWedAllBeEatingSteak!"  # the example Secret's public test vector
# Table entries this scenario does not make as requests of their own: "escalate" and "bind" are
# checked within the Role writes, as is "create" when an apply creates; revoking access, reading
# Secrets in turn (past 32 watches) and a second leader reporting the same missed push do not happen here.
NOT_MADE_HERE = frozenset(
    call for call in CALLS
    if call.method in ("ESCALATE", "BIND", "POST", "DELETE") and "/rbac.authorization.k8s.io/" in call.path
    or call.why.endswith("read in turn past the watch bound")
    or call.why.startswith("the same WebhookMissed Event again"))
# Secrets GitRepos name (the example file's and this test's): the receiver may be refused them until
# the admission side has granted them, and logs that; nothing else may ever be refused.
NAMED_SECRETS = ("fleet-default/team-hook", "fleet-default/gitea-hook")
# Kinds of the rendered manifests the cluster fixture's sweep does not know.
TRACKED_KINDS = ("PodDisruptionBudget", "NetworkPolicy", "ValidatingAdmissionPolicy",
                 "ValidatingAdmissionPolicyBinding")


@dataclass
class Deployed:
    """The installed manifests and the two components standing in for their pods."""

    cluster: Cluster
    receiver: service.Service
    admission: service.Service
    proxies: dict[str, FaultProxy]
    accounts: dict[str, pathlib.Path]
    certs: pathlib.Path

    def kubectl_as(self, component: str, *args: str) -> subprocess.CompletedProcess[str]:
        """kubectl with the component's own ServiceAccount token."""
        return self.cluster.kubectl(*args, kubeconfig=self.accounts[component])


def _token(kubeconfig: pathlib.Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def _rendered(cluster: Cluster) -> list[dict[str, Any]]:
    run = cluster.kubectl("kustomize", str(MANIFESTS))
    assert run.returncode == 0, run.stderr
    return [obj for obj in yaml.safe_load_all(run.stdout) if obj]


def _reach_admission_through_its_service(cluster: Cluster, port: int) -> None:
    """The Service the webhooks name becomes an ExternalName for localhost, at the process's port."""
    replaced = cluster.kubectl("delete", "service", "gitjob-webhook-admission", "-n", NAMESPACE)
    assert replaced.returncode == 0, replaced.stderr
    cluster.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "gitjob-webhook-admission", "namespace": NAMESPACE},
                   "spec": {"type": "ExternalName", "externalName": "localhost"}})
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        patch = [{"op": "replace", "path": "/webhooks/0/clientConfig/service/port", "value": port}]
        patched = cluster.kubectl("patch", kind, "gitjob-webhook-admission", "--type=json",
                                  "-p", json.dumps(patch))
        assert patched.returncode == 0, patched.stderr


@pytest.fixture
def deployed(cluster: Cluster, control_plane: ControlPlane, run_service: Callable[..., service.Service],
             tmp_path: pathlib.Path) -> Iterator[Deployed]:
    """make deploy, step by step, with the two Deployments stood in for by local processes."""
    for obj in _rendered(cluster):
        if obj["kind"] in TRACKED_KINDS:
            cluster.track(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
    certs_dir = tmp_path / "certs"
    made = subprocess.run(command("certs", "--out", str(certs_dir)), capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    # A GitRepo from before the install (no admission on the way in): the reconcile pass adjusts it;
    # and one with its own webhook Secret, which the receiver may read only once a GitRepo names it.
    cluster.apply([
        {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
         "metadata": {"name": "pre-existing", "namespace": "fleet-local"},
         "spec": {"repo": "https://github.com/example/pre-existing"}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "team-hook", "namespace": "fleet-default"},
         "stringData": {"github": "team-secret"}},
        {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
         "metadata": {"name": "team-app", "namespace": "fleet-default"},
         "spec": {"repo": "https://github.com/example/team-app", "webhookSecret": "team-hook",
                  "pollingInterval": "1h"}},
    ])
    # The README's steps: the TLS Secret from certs/, then the manifests by server-side apply.
    secret = cluster.kubectl("create", "secret", "tls", "gitjob-webhook-admission-tls", "--namespace",
                             NAMESPACE, "--cert", str(certs_dir / "tls.crt"),
                             "--key", str(certs_dir / "tls.key"), "--dry-run=client", "-o", "yaml")
    assert secret.returncode == 0, secret.stderr
    applied = cluster.kubectl("apply", "--server-side", "--field-manager=gitjob-webhook", "-f", "-",
                              input=secret.stdout)
    assert applied.returncode == 0, applied.stderr
    applied = cluster.kubectl("apply", "--server-side", "--force-conflicts",
                              "--field-manager=gitjob-webhook", "-k", str(MANIFESTS))
    assert applied.returncode == 0, applied.stderr

    accounts = {component: cluster.service_account_kubeconfig(NAMESPACE, account)
                for component, account in SERVICE_ACCOUNTS.items()}
    for component in accounts:
        (tmp_path / component).mkdir()
    proxies = {component: FaultProxy(control_plane, tmp_path / component).start() for component in accounts}
    through = {component: control_plane.write_kubeconfig(
        tmp_path / f"{component}.proxied", server=proxy.url, token=_token(accounts[component]),
        user=f"{component}-account") for component, proxy in proxies.items()}
    try:
        admission = run_service("serve", "admission", "--listen", "127.0.0.1:0", "--store", "kubernetes",
                                "--kubeconfig", str(through["admission"]), "--namespace", NAMESPACE,
                                "--tls-cert", str(certs_dir / "tls.crt"),
                                "--tls-key", str(certs_dir / "tls.key"), "--reconcile-period", "0.3",
                                "--missed-push-grace", "1s")
        receiver = run_service("serve", "receiver", "--listen", "127.0.0.1:0", "--store", "kubernetes",
                               "--kubeconfig", str(through["receiver"]), "--namespace", NAMESPACE)
        admission.admission = "https://" + service.listening(admission, "admission")
        receiver.receiver = "http://" + service.listening(receiver, "receiver")
        service.wait_ready(admission.admission, admission, verify=str(certs_dir / "ca.crt"))
        service.wait_ready(receiver.receiver, receiver)
        _reach_admission_through_its_service(cluster, int(admission.admission.rsplit(":", 1)[1]))
        injected = subprocess.run(command("certs", "inject", "--ca", str(certs_dir / "ca.crt"),
                                          "--kubeconfig", str(cluster.kubeconfig)),
                                  capture_output=True, text=True, timeout=30)
        assert injected.returncode == 0, injected.stderr
        # A GitRepo with a webhookSecret is in webhook mode whether or not the global Secret exists.
        probe = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                 "metadata": {"name": "probe", "namespace": "fleet-default"},
                 "spec": {"repo": "https://github.com/example/probe", "webhookSecret": "probe"}}
        wait_for(lambda: "pollingInterval" in cluster.kubectl(
            "create", "--dry-run=server", "-o", "yaml", "-f", "-", input=yaml.safe_dump(probe)).stdout,
            timeout=30, message="the API server calling the admission webhook")
        yield Deployed(cluster, receiver, admission, proxies, accounts, certs_dir)
    finally:
        for proxy in proxies.values():
            proxy.stop()


def _get(cluster: Cluster, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    where = ["-n", namespace] if namespace else []
    run = cluster.kubectl("get", kind, name, *where, "-o", "json")
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_the_deployment_objects_are_stored(deployed: Deployed) -> None:
    cluster = deployed.cluster
    assert _get(cluster, "deployment", NAMESPACE, "gitjob-webhook-receiver")["spec"]["replicas"] == 2
    assert _get(cluster, "service", NAMESPACE, "gitjob")["spec"]["ports"][0]["port"] == 80
    assert _get(cluster, "secret", NAMESPACE, "gitjob-webhook-admission-tls")["type"] == "kubernetes.io/tls"
    webhook = _get(cluster, "validatingwebhookconfiguration", None, "gitjob-webhook-admission")
    assert webhook["webhooks"][0]["clientConfig"]["caBundle"]


def test_applied_example_gitrepos_come_back_mutated(deployed: Deployed) -> None:
    cluster = deployed.cluster
    # The file creates the global Secret too. A GitRepo admitted in the instant before the admission
    # server's watch sees that Secret is left as it is (webhook mode off) and defaulted by the
    # reconcile pass instead; to judge the admission path alone, the Secrets go first.
    documents = [document for document in yaml.safe_load_all(EXAMPLE_GITREPOS.read_text()) if document]
    cluster.apply([document for document in documents if document["kind"] == "Secret"])
    probe = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
             "metadata": {"name": "probe-global", "namespace": "fleet-default"},
             "spec": {"repo": "https://github.com/example/probe-global"}}
    wait_for(lambda: "pollingInterval" in cluster.kubectl(
        "create", "--dry-run=server", "-o", "yaml", "-f", "-", input=yaml.safe_dump(probe)).stdout,
        timeout=30, message="the admission server seeing the global Secret")
    result = cluster.kubectl("apply", "-f", str(EXAMPLE_GITREPOS))
    assert result.returncode == 0, result.stderr
    for namespace, name in (("fleet-default", "sample-app"), ("fleet-default", "diaspora"),
                            ("fleet-local", "example-v1"), ("fleet-local", "fleet-examples")):
        stored = _get(cluster, "gitrepo", namespace, name)
        assert stored["spec"]["pollingInterval"] == "1h", name
        assert stored["metadata"]["annotations"][DEFAULTED] == "true"
    explicit = _get(cluster, "gitrepo", "fleet-default", "sample-app-release")
    assert explicit["spec"]["pollingInterval"] == "1h"
    assert DEFAULTED not in explicit["metadata"].get("annotations", {})


def test_a_bad_webhook_secret_is_denied(deployed: Deployed) -> None:
    manifest = (MANIFESTS / "examples" / "webhook-secrets" / "github.yaml").read_text()
    result = deployed.cluster.kubectl("apply", "-f", "-", input=manifest.replace("  github:", "  GitHub:"))
    assert result.returncode != 0
    assert 'admission webhook "secrets.gitjob-webhook.fleet.cattle.io" denied the request' in result.stderr
    assert 'did you mean "github"' in result.stderr
    assert deployed.cluster.kubectl("get", "secret", "gitjob-webhook", "-n", NAMESPACE).returncode != 0


def _deliver(receiver: str, body: bytes, secret: str = GITHUB_SECRET) -> requests.Response:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(receiver, data=body, timeout=15, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature})


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _events(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl("get", "events", "-n", namespace, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return items


def _patched(response: requests.Response, name: str) -> bool:
    return response.status_code == 200 and any(
        g["name"] == name and g["result"] == "patched" for g in response.json().get("gitrepos", []))


def test_every_request_of_each_component_is_one_the_table_lists_and_rbac_allows(deployed: Deployed) -> None:
    cluster = deployed.cluster
    assert cluster.kubectl("apply", "-f", str(EXAMPLE_GITREPOS)).returncode == 0
    body = (PROVIDER_FIXTURES / "github" / "push.json").read_bytes()
    wait_for(lambda: _patched(_deliver(deployed.receiver.receiver, body), "sample-app"), timeout=30,
             message="the receiver to patch sample-app")
    # Another delivery of the same push (other bytes: the same body again is a duplicate) after the
    # status moved on: the same Event again, so its count is bumped.
    patched = cluster.kubectl("patch", "gitrepo", "sample-app", "-n", "fleet-default",
                              "--subresource=status", "--type=merge",
                              "-p", '{"status":{"webhookCommit":"' + "0" * 40 + '"}}')
    assert patched.returncode == 0, patched.stderr
    wait_for(lambda: _patched(_deliver(deployed.receiver.receiver, body + b"\n"), "sample-app"), timeout=30,
             message="the receiver to patch sample-app again")
    # A push for the GitRepo with its own Secret: readable once the admission side granted it.
    team_push = json.loads(body)
    team_push["repository"]["html_url"] = "https://github.com/example/team-app"
    team_body = json.dumps(team_push).encode()
    wait_for(lambda: _patched(_deliver(deployed.receiver.receiver, team_body, "team-secret"), "team-app"),
             timeout=60, message="the receiver to verify with the GitRepo's own Secret")
    wait_for(lambda: _get(cluster, "gitrepo", "fleet-local", "pre-existing")["spec"].get("pollingInterval")
             == "1h", timeout=30, message="the reconcile pass")
    # Fleet's polling finds commits no delivery announced: the leader records a WebhookMissed Event.
    # (A GitRepo's first found commit is never a push: each try finds a new one, until one is
    # reported after the 1 s grace.)
    polls = iter(range(1, 100))

    def missed() -> bool:
        if any(event["reason"] == "WebhookMissed" for event in _events(cluster, "fleet-default")):
            return True
        polled = {"pollingCommit": f"{next(polls):040x}", "lastPollingTriggered": _now()}
        assert cluster.kubectl("patch", "gitrepo", "sample-app", "-n", "fleet-default",
                               "--subresource=status", "--type=merge",
                               "-p", json.dumps({"status": polled})).returncode == 0
        return False
    wait_for(missed, timeout=60, interval=2.0, message="a WebhookMissed Event")

    # A watch is recorded when it ends: end them (the components resume them at once).
    for proxy in deployed.proxies.values():
        proxy.cut_streams()

    def not_made() -> set[Call]:
        made = {matching_call(component, r.method, r.path, r.query)
                for component, proxy in deployed.proxies.items() for r in proxy.requests}
        return set(CALLS) - NOT_MADE_HERE - made
    try:
        wait_for(lambda: not not_made(), timeout=30, message="every call of the table to be made")
    except AssertionError:
        raise AssertionError(f"calls of the table never made: {sorted(map(str, not_made()))}") from None

    for component, proxy in deployed.proxies.items():
        for record in proxy.requests:
            call = matching_call(component, record.method, record.path, record.query)
            assert call is not None, \
                f"{component}: not in the table: {record.method} {record.path} {record.query}"
            # A GitRepo's own Secret is refused until the admission side has granted it: that one
            # may be; nothing else ever is.
            assert record.status != 403 or call.granted_at_run_time, \
                f"{component}: refused: {record.method} {record.path}"


@pytest.mark.parametrize(("component", "request_args"), [
    pytest.param("receiver", ("patch", "gitrepo", "team-app", "-n", "fleet-default", "--type=merge",
                              "-p", '{"spec":{"branch":"evil"}}'), id="receiver-writes-a-spec"),
    pytest.param("receiver", ("get", "secret", "gitjob-webhook-admission-tls", "-n", NAMESPACE),
                 id="receiver-reads-the-tls-key"),
    pytest.param("receiver", ("get", "secrets", "-n", "fleet-default"), id="receiver-lists-secrets"),
    pytest.param("receiver", ("delete", "lease", "gitjob-webhook-reconcile", "-n", NAMESPACE),
                 id="receiver-takes-the-lease"),
    pytest.param("admission", ("get", "secret", "team-hook", "-n", "fleet-default"),
                 id="admission-reads-a-team-secret"),
    pytest.param("admission", ("patch", "gitrepo", "team-app", "-n", "fleet-default", "--subresource=status",
                               "--type=merge", "-p", '{"status":{"webhookCommit":"x"}}'),
                 id="admission-writes-a-status"),
])
def test_what_a_component_must_not_do_the_real_authorizer_refuses(deployed: Deployed, component: str,
                                                                  request_args: tuple[str, ...]) -> None:
    run = deployed.kubectl_as(component, *request_args)
    assert run.returncode != 0
    assert "forbidden" in run.stderr.lower(), run.stderr


def test_no_component_logs_a_refused_request_but_a_secret_not_granted_yet(deployed: Deployed) -> None:
    assert deployed.cluster.kubectl("apply", "-f", str(EXAMPLE_GITREPOS)).returncode == 0
    body = (PROVIDER_FIXTURES / "github" / "push.json").read_bytes()
    wait_for(lambda: _patched(_deliver(deployed.receiver.receiver, body), "sample-app"), timeout=30,
             message="a delivery")
    for process in (deployed.receiver, deployed.admission):
        refused = [line for line in process.log().splitlines()
                   if "forbidden" in line.lower() and not any(secret in line for secret in NAMED_SECRETS)]
        assert not refused, refused


def test_server_side_apply_takes_fleets_gitjob_service_over(cluster: Cluster) -> None:
    """Fleet's chart owns Service gitjob (selector app: gitjob); applying ours with --force-conflicts
    replaces the selector, as the README says; a client-side apply would merge the two."""
    fleet = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gitjob", "namespace": NAMESPACE},
             "spec": {"selector": {"app": "gitjob"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    taken = cluster.kubectl("apply", "--server-side", "--field-manager=helm", "-f", "-",
                            input=yaml.safe_dump(fleet))
    assert taken.returncode == 0, taken.stderr
    ours = next(obj for obj in _rendered(cluster)
                if obj["kind"] == "Service" and obj["metadata"]["name"] == "gitjob")
    applied = cluster.kubectl("apply", "--server-side", "--force-conflicts",
                              "--field-manager=gitjob-webhook", "-f", "-", input=yaml.safe_dump(ours))
    assert applied.returncode == 0, applied.stderr
    assert _get(cluster, "service", NAMESPACE, "gitjob")["spec"]["selector"] == ours["spec"]["selector"]


def test_a_client_side_apply_merges_the_selectors_instead(cluster: Cluster) -> None:
    """Helm creates Fleet's Service without kubectl's last-applied annotation: a client-side apply
    then keeps the keys it does not know, and the Service selects Fleet's pods and ours at once."""
    fleet = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gitjob", "namespace": NAMESPACE},
             "spec": {"selector": {"app": "gitjob"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    assert cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(fleet)).returncode == 0
    ours = next(obj for obj in _rendered(cluster)
                if obj["kind"] == "Service" and obj["metadata"]["name"] == "gitjob")
    assert cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(ours)).returncode == 0
    selector = _get(cluster, "service", NAMESPACE, "gitjob")["spec"]["selector"]
    assert selector == {"app": "gitjob", **ours["spec"]["selector"]}


def test_the_cert_manager_overlay_is_accepted_but_for_cert_managers_own_kinds(cluster: Cluster) -> None:
    """cert-manager's CRDs are not installed here: its Certificates and Issuers cannot be applied;
    everything else of the overlay (the base, with cainjector's annotations) is accepted as is."""
    run = cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / "cert-manager"))
    assert run.returncode == 0, run.stderr
    objects = [obj for obj in yaml.safe_load_all(run.stdout)
               if obj and not obj["apiVersion"].startswith("cert-manager.io/")]
    for obj in objects:
        if obj["kind"] in TRACKED_KINDS:
            cluster.track(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
    stored = cluster.apply(objects)
    webhook = next(obj for obj in stored if obj["kind"] == "ValidatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
