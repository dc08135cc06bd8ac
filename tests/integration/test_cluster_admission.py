"""Admission for real: the project's webhook configurations on a real kube-apiserver, which calls
``gitjob-webhook serve admission`` on every GitRepo and webhook Secret write made with real kubectl.

The configurations are those ``kubectl kustomize manifests/`` renders, with the controller
namespace of the test instead of cattle-fleet-system and, as envtest does, the Service reference
replaced by the test server's URL (one test keeps a Service reference, through an ExternalName
Service). The API server picks up webhook configurations asynchronously: the fixtures probe with
dry-run requests until our server answers them, and, before the server stops, until it is no longer
called, so that a configuration pointing at a stopped server never outlives the test.
"""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes import client

from cluster.isolation import Cluster
from support import service
from support.kube import WEBHOOK_KINDS, Objects, gitrepo, rendered_webhook_configurations, secret
from support.waiting import wait_for

DEFAULTED = "gitjob.fleet.cattle.io/polling-interval-defaulted"
ROTATION_EXPIRY = "gitjob.fleet.cattle.io/previous-keys-expire"
SERVICE = "gitjob-webhook-admission"

GITREPO = """\
apiVersion: fleet.cattle.io/v1alpha1
kind: GitRepo
metadata:
  name: {name}
  namespace: {namespace}
spec:
  repo: https://github.com/{namespace}/app
{extra}"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {namespace}
{data}"""

ClientConfig = Callable[[str], dict[str, Any]]   # a webhook's path → its clientConfig
Reach = Callable[[int, str, str], dict[str, Any]]   # (server port, path, controller namespace) → clientConfig


def for_the_test(configuration: dict[str, Any], controller_namespace: str, client_config: ClientConfig,
                 ca_pem: bytes) -> dict[str, Any]:
    """The configuration with the test's controller namespace, client config and CA bundle."""
    text = json.dumps(configuration).replace('"cattle-fleet-system"', json.dumps(controller_namespace))
    changed: dict[str, Any] = json.loads(text)
    for webhook in changed["webhooks"]:
        webhook["clientConfig"] = {**client_config(webhook["clientConfig"]["service"]["path"]),
                                   "caBundle": base64.b64encode(ca_pem).decode()}
    return changed


def bad_webhook_secret(namespace: str) -> dict[str, Any]:
    return secret("gitjob-webhook", namespace, GitHub="s3cret")


@dataclass(frozen=True)
class Admitting:
    """The webhook configurations installed and active, the admission server behind them."""

    process: service.Service
    cluster: Cluster
    objects: Objects
    controller_namespace: str
    namespace: str   # for the test's GitRepos

    def kubectl_apply(self, manifest: str) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("apply", "-f", "-", input=manifest)

    def gitrepo(self, name: str) -> dict[str, Any]:
        return self.objects.must_get("GitRepo", self.namespace, name)

    def reviews(self, path: str) -> int:
        """How many reviews our server has answered on ``path`` so far."""
        return sum(1 for line in self.process.log().splitlines()
                   if '"msg": "request"' in line and f'"path": "{path}"' in line)


InstallWebhooks = Callable[..., Admitting]


@pytest.fixture
def install_webhooks(cluster: Cluster, start_admission: Callable[..., service.Service],
                     dev_certs: pathlib.Path) -> Iterator[InstallWebhooks]:
    """Start the admission server on the cluster and install the webhook configurations in front of
    it (``reach`` says how the API server gets to it); returns once both are active."""
    objects = Objects(cluster.control_plane)
    installed: list[Admitting] = []

    def install(reach: Reach, controller_namespace: str = "", tls: pathlib.Path = dev_certs) -> Admitting:
        controller_namespace = controller_namespace or cluster.namespace("ctl")
        namespace = cluster.namespace("repos")
        # Before the server starts, so that its first sync already sees webhook mode on.
        objects.create(secret("gitjob-webhook", controller_namespace, github="s3cret"))
        started = start_admission("--store", "kubernetes", "--kubeconfig", str(cluster.kubeconfig),
                                  "--namespace", controller_namespace, "--tls-cert", str(tls / "tls.crt"),
                                  "--tls-key", str(tls / "tls.key"), ca_file=str(tls / "ca.crt"))
        port = int(started.admission.rsplit(":", 1)[1])
        ca_pem = (tls / "ca.crt").read_bytes()
        configurations = [for_the_test(rendered, controller_namespace,
                                       lambda path: reach(port, path, controller_namespace), ca_pem)
                          for rendered in rendered_webhook_configurations(cluster)]
        for configuration in configurations:
            cluster.track(configuration["kind"], configuration["metadata"]["name"])
        admitting = Admitting(started, cluster, objects, controller_namespace, namespace)
        installed.append(admitting)   # uninstalled at teardown even if what follows fails
        cluster.apply(configurations)
        wait_until_called(admitting)
        return admitting

    yield install
    for admitting in installed:
        uninstall(admitting)


def wait_until_called(admitting: Admitting) -> None:
    """Probe with dry-run writes until the API server calls both webhooks."""
    probe = gitrepo("probe", admitting.namespace, f"https://github.com/{admitting.namespace}/probe")

    bad = bad_webhook_secret(admitting.controller_namespace)

    def mutated() -> bool:
        answer = admitting.objects.try_create(probe, dry_run=True)
        return answer.status_code == 201 and answer.json()["spec"].get("pollingInterval") == "1h"

    def validated() -> bool:
        answer = admitting.objects.try_create(bad, dry_run=True)
        return answer.status_code == 403 and "denied the request" in answer.json()["message"]
    wait_for(mutated, timeout=60, interval=0.1, message="the GitRepo webhook to be called")
    wait_for(validated, timeout=60, interval=0.1, message="the Secret webhook to be called")


def uninstall(admitting: Admitting) -> None:
    """Delete the configurations, and wait until the API server no longer calls the Secret webhook
    (which fails closed): the Secrets left for clean-up must stay deletable once the server stops."""
    for kind in WEBHOOK_KINDS:
        if admitting.objects.get(kind, None, "gitjob-webhook-admission") is not None:
            admitting.objects.delete(kind, None, "gitjob-webhook-admission")

    bad = bad_webhook_secret(admitting.controller_namespace)

    def not_called() -> bool:
        answer = admitting.objects.try_create(bad, dry_run=True)
        return answer.status_code in (201, 409)
    wait_for(not_called, timeout=60, interval=0.1, message="the Secret webhook to be no longer called")


def by_url(port: int, path: str, controller_namespace: str) -> dict[str, Any]:
    return {"url": f"https://127.0.0.1:{port}{path}"}


@pytest.fixture
def admitting(install_webhooks: InstallWebhooks) -> Admitting:
    """The webhook configurations, calling the admission server at its URL."""
    return install_webhooks(by_url)


def test_kubectl_apply_of_a_gitrepo_comes_back_with_a_one_hour_interval(admitting: Admitting) -> None:
    manifest = GITREPO.format(name="app", namespace=admitting.namespace, extra="")
    result = admitting.kubectl_apply(manifest)
    assert result.returncode == 0, result.stderr
    stored = admitting.gitrepo("app")
    assert stored["spec"]["pollingInterval"] == "1h"
    assert stored["metadata"]["annotations"][DEFAULTED] == "true"
    again = admitting.kubectl_apply(manifest)
    assert again.returncode == 0 and "unchanged" in again.stdout


def test_an_explicit_interval_is_kept_with_a_warning_kubectl_prints(admitting: Admitting) -> None:
    result = admitting.kubectl_apply(GITREPO.format(name="fast", namespace=admitting.namespace,
                                                    extra="  pollingInterval: 15s\n"))
    assert result.returncode == 0, result.stderr
    assert admitting.gitrepo("fast")["spec"]["pollingInterval"] == "15s"
    assert "Warning: " in result.stderr and "15s" in result.stderr


def test_the_official_client_gets_the_same_defaulting(admitting: Admitting) -> None:
    api = client.CustomObjectsApi(admitting.cluster.client())
    body = gitrepo("by-client", admitting.namespace, f"https://github.com/{admitting.namespace}/app")
    created = api.create_namespaced_custom_object("fleet.cattle.io", "v1alpha1", admitting.namespace,
                                                  "gitrepos", body)
    assert isinstance(created, dict) and created["spec"]["pollingInterval"] == "1h"
    assert admitting.gitrepo("by-client")["spec"]["pollingInterval"] == "1h"


def test_a_broken_webhook_secret_is_denied_with_what_to_fix(admitting: Admitting) -> None:
    namespace = admitting.controller_namespace
    admitting.objects.delete("Secret", namespace, "gitjob-webhook")   # so that kubectl creates it
    value = base64.b64encode(b"s3cret\n").decode()
    result = admitting.kubectl_apply(SECRET.format(name="gitjob-webhook", namespace=namespace,
                                                   data=f"data:\n  GitHub: {value}\n"))
    assert result.returncode != 0
    assert result.stderr == (
        'Error from server (Forbidden): error when creating "STDIN": '
        'admission webhook "secrets.gitjob-webhook.fleet.cattle.io" denied the request: '
        f"Secret {namespace}/gitjob-webhook "
        'is not a valid webhook secret: key "GitHub" is not a provider key (did you mean "github"?) and ends '
        "with a newline (it was probably created with --from-file; recreate it with --from-literal or strip "
        "the newline). Allowed keys: azure-password, azure-username, bitbucket, bitbucket-server, generic, "
        "github, gitlab, gitlab-signing, gogs.\n"
    )
    assert admitting.objects.get("Secret", namespace, "gitjob-webhook") is None
    denial = next(line for line in admitting.process.log().splitlines() if "admission denied" in line)
    assert '"operation": "CREATE"' in denial and "s3cret" not in denial


def test_a_valid_webhook_secret_is_admitted(admitting: Admitting) -> None:
    namespace = admitting.controller_namespace
    reviews = admitting.reviews("/validate/secrets")
    valid = admitting.kubectl_apply(SECRET.format(name="gitjob-webhook", namespace=namespace,
                                                  data="stringData:\n  github: s3cret\n  gitlab: t0ken\n"))
    assert valid.returncode == 0, valid.stderr
    stored = admitting.objects.must_get("Secret", namespace, "gitjob-webhook")
    assert stored["data"].keys() == {"github", "gitlab"}
    assert admitting.reviews("/validate/secrets") == reviews + 1


def _in(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("expiry", "problem"), [
    pytest.param(None, "previous keys need the annotation gitjob.fleet.cattle.io/previous-keys-expire",
                 id="no-expiry"),
    pytest.param(_in(-timedelta(hours=1)), "has passed: set a time ahead, or drop the previous keys",
                 id="expiry-past"),
    pytest.param(_in(timedelta(days=31)), "is more than 30 days ahead", id="expiry-31-days-away"),
])
def test_a_previous_key_needs_an_expiry_ahead_and_near(admitting: Admitting, expiry: str | None,
                                                       problem: str) -> None:
    namespace = admitting.controller_namespace
    annotation = f"  annotations:\n    {ROTATION_EXPIRY}: \"{expiry}\"\n" if expiry else ""
    manifest = SECRET.format(name="gitjob-webhook", namespace=namespace,
                             data="stringData:\n  github: new\n  github.previous: s3cret\n")
    manifest = manifest.replace(f"  namespace: {namespace}\n", f"  namespace: {namespace}\n{annotation}")
    refused = admitting.kubectl_apply(manifest)
    assert refused.returncode != 0 and problem in refused.stderr, refused.stderr
    denial = refused.stderr.split("denied the request:", 1)[1]   # before it, kubectl shows its own patch
    assert "s3cret" not in denial
    kept = admitting.objects.must_get("Secret", namespace, "gitjob-webhook")
    assert kept["data"].keys() == {"github"}


def test_secret_rotate_writes_through_the_webhook(admitting: Admitting) -> None:
    rotated = subprocess.run(service.command("secret", "rotate", "--provider", "github", "--overlap", "24h",
                                             "--kubeconfig", str(admitting.cluster.kubeconfig),
                                             "--namespace", admitting.controller_namespace),
                             capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    stored = admitting.objects.must_get("Secret", admitting.controller_namespace, "gitjob-webhook")
    assert base64.b64decode(stored["data"]["github.previous"]) == b"s3cret"
    assert ROTATION_EXPIRY in stored["metadata"]["annotations"]
    again = subprocess.run(service.command("secret", "rotate", "--provider", "github",
                                           "--kubeconfig", str(admitting.cluster.kubeconfig),
                                           "--namespace", admitting.controller_namespace),
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert "a rotation is already under way" in again.stderr


@pytest.mark.parametrize("where", [
    pytest.param("another name", id="another Secret in the controller namespace"),
    pytest.param("another namespace", id="a gitjob-webhook Secret in another namespace"),
])
def test_other_secrets_are_never_sent_to_the_webhook(admitting: Admitting, where: str) -> None:
    name, namespace = (("unrelated", admitting.controller_namespace) if where == "another name"
                       else ("gitjob-webhook", admitting.namespace))
    reviews = admitting.reviews("/validate/secrets")
    other = admitting.kubectl_apply(SECRET.format(name=name, namespace=namespace,
                                                  data="stringData:\n  anything: goes\n"))
    assert other.returncode == 0, other.stderr
    assert admitting.objects.get("Secret", namespace, name) is not None
    assert admitting.reviews("/validate/secrets") == reviews


def test_with_the_server_down_gitrepos_are_created_unmutated(admitting: Admitting) -> None:
    admitting.process.stop()
    result = admitting.kubectl_apply(GITREPO.format(name="while-down", namespace=admitting.namespace,
                                                    extra=""))
    assert result.returncode == 0, result.stderr   # failurePolicy: Ignore
    stored = admitting.gitrepo("while-down")
    assert "pollingInterval" not in stored["spec"]
    assert DEFAULTED not in (stored["metadata"].get("annotations") or {})


def test_with_the_server_down_the_webhook_secret_is_refused_and_other_secrets_are_not(
        admitting: Admitting) -> None:
    namespace = admitting.controller_namespace
    admitting.process.stop()
    refused = admitting.kubectl_apply(SECRET.format(name="gitjob-webhook", namespace=namespace,
                                                    data="stringData:\n  github: rotated\n"))
    assert refused.returncode != 0   # failurePolicy: Fail
    assert 'failed calling webhook "secrets.gitjob-webhook.fleet.cattle.io"' in refused.stderr
    assert "connection refused" in refused.stderr
    kept = admitting.objects.must_get("Secret", namespace, "gitjob-webhook")
    assert base64.b64decode(kept["data"]["github"]) == b"s3cret"
    other = admitting.kubectl_apply(SECRET.format(name="unrelated", namespace=namespace,
                                                  data="stringData:\n  anything: goes\n"))
    assert other.returncode == 0, other.stderr


def through_a_service(port: int, path: str, controller_namespace: str) -> dict[str, Any]:
    return {"service": {"namespace": controller_namespace, "name": SERVICE, "path": path, "port": port}}


def test_a_service_reference_reaches_the_server_through_the_service(
        cluster: Cluster, install_webhooks: InstallWebhooks, tmp_path: pathlib.Path) -> None:
    controller_namespace = cluster.namespace("ctl")
    # The API server dials an ExternalName Service's name at the webhook's service port, and checks
    # the certificate for <service>.<namespace>.svc: what `certs --namespace` makes it for.
    issued = subprocess.run(service.command("certs", "--out", str(tmp_path / "certs"),
                                            "--namespace", controller_namespace),
                            capture_output=True, text=True, timeout=60)
    assert issued.returncode == 0, issued.stderr
    assert f"{SERVICE}.{controller_namespace}.svc" in issued.stdout
    Objects(cluster.control_plane).create({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": controller_namespace},
        "spec": {"type": "ExternalName", "externalName": "localhost"}})
    admitting = install_webhooks(through_a_service, controller_namespace, tmp_path / "certs")
    result = admitting.kubectl_apply(GITREPO.format(name="app", namespace=admitting.namespace, extra=""))
    assert result.returncode == 0, result.stderr
    assert admitting.gitrepo("app")["spec"]["pollingInterval"] == "1h"
