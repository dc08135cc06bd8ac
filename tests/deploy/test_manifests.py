"""The manifests render with real kubectl, validate against the Kubernetes schemas, keep our promises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller import __version__
from deploy.conftest import find
from support.paths import MANIFESTS

KUBERNETES = "1.33"  # a current minor the installed kubernetes-validate knows
NAMESPACE = "cattle-fleet-system"
EXAMPLES = sorted((MANIFESTS / "examples").rglob("*.yaml"))
# Custom resources have no schema in kubernetes-validate: their shape is checked below instead.
CUSTOM_KINDS = {"GitRepo": "fleet.cattle.io/v1alpha1", "Middleware": "traefik.io/v1alpha1",
                "Issuer": "cert-manager.io/v1", "Certificate": "cert-manager.io/v1"}
DEPLOYMENTS = ("gitjob-webhook-receiver", "gitjob-webhook-admission")


def _load(path: Path) -> list[dict[str, Any]]:
    return [obj for obj in yaml.safe_load_all(path.read_text()) if obj]


def _validate(obj: dict[str, Any]) -> None:
    if obj["kind"] in CUSTOM_KINDS:
        assert obj["apiVersion"] == CUSTOM_KINDS[obj["kind"]]
        assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}
        assert obj["metadata"]["name"] and isinstance(obj["spec"], dict)
        return
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def _id(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_validator_is_strict_about_unknown_fields() -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                                      "spec": {"selectr": {}}}, KUBERNETES, strict=True)


def test_every_rendered_object_validates(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 16
    for obj in rendered:
        _validate(obj)


def test_the_cert_manager_overlay_renders_and_validates(rendered_cert_manager: list[dict[str, Any]]) -> None:
    kinds = sorted(_id(o) for o in rendered_cert_manager if o["kind"] in CUSTOM_KINDS)
    assert kinds == ["Certificate/gitjob-webhook-admission", "Certificate/gitjob-webhook-ca",
                     "Issuer/gitjob-webhook-ca", "Issuer/gitjob-webhook-selfsigned"]
    for obj in rendered_cert_manager:
        _validate(obj)


def test_cert_manager_issues_the_secret_the_admission_server_mounts(
    rendered_cert_manager: list[dict[str, Any]]
) -> None:
    certificate = find(rendered_cert_manager, "Certificate", "gitjob-webhook-admission")
    assert certificate["metadata"]["namespace"] == NAMESPACE
    assert certificate["spec"]["secretName"] == "gitjob-webhook-admission-tls"
    assert "gitjob-webhook-admission.cattle-fleet-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == "gitjob-webhook-ca"
    assert find(rendered_cert_manager, "Issuer", "gitjob-webhook-ca")["spec"]["ca"]["secretName"] == \
        find(rendered_cert_manager, "Certificate", "gitjob-webhook-ca")["spec"]["secretName"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        annotations = find(rendered_cert_manager, kind, "gitjob-webhook-admission")["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/gitjob-webhook-admission"


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(MANIFESTS))) for p in EXAMPLES])
def test_every_example_validates(path: Path) -> None:
    for obj in _load(path):
        _validate(obj)


def test_everything_lives_in_the_controller_namespace_and_the_namespace_is_not_ours(
    rendered: list[dict[str, Any]]
) -> None:
    assert not [o for o in rendered if o["kind"] == "Namespace"]  # kubectl delete -k must not delete it
    for obj in rendered:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                               "ValidatingWebhookConfiguration"):
            assert obj["metadata"]["namespace"] == NAMESPACE, _id(obj)


def test_webhook_configurations_are_those_of_webhooks_yaml_without_the_empty_ca_bundle(
    rendered: list[dict[str, Any]]
) -> None:
    source = {o["kind"]: o for o in _load(MANIFESTS / "webhooks.yaml")}
    assert (MANIFESTS / "webhooks.yaml").resolve() == (MANIFESTS / "base" / "webhooks.yaml").resolve()
    for kind, original in source.items():
        applied = find(rendered, kind, original["metadata"]["name"])
        for webhook in original["webhooks"]:
            webhook["clientConfig"].pop("caBundle")
        assert applied["webhooks"] == original["webhooks"]


def test_no_private_key_is_ever_rendered(
    rendered: list[dict[str, Any]], rendered_cert_manager: list[dict[str, Any]]
) -> None:
    assert not [o for o in rendered + rendered_cert_manager if o["kind"] == "Secret"]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployments_are_hardened(rendered: list[dict[str, Any]], name: str) -> None:
    deployment = find(rendered, "Deployment", name)
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["topologySpreadConstraints"]
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in container["env"]}
    assert env["GITJOB_WEBHOOK_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["GITJOB_WEBHOOK_LOG_FORMAT"]["value"] == "json"
    assert container["image"] == f"gitjob-webhook:{__version__}"


def test_one_image_two_commands(rendered: list[dict[str, Any]]) -> None:
    receiver, admission = (find(rendered, "Deployment", n)["spec"]["template"]["spec"]["containers"][0]
                           for n in DEPLOYMENTS)
    assert receiver["image"] == admission["image"]
    assert receiver["args"] == ["serve", "receiver"]
    assert admission["args"] == ["serve", "admission", "--tls-cert", "/certs/tls.crt",
                                 "--tls-key", "/certs/tls.key"]
    assert admission["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    pod = find(rendered, "Deployment", "gitjob-webhook-admission")["spec"]["template"]["spec"]
    mount = next(m for m in admission["volumeMounts"] if m["mountPath"] == "/certs")
    assert "subPath" not in mount  # a subPath mount would never see a renewed Secret
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "gitjob-webhook-admission-tls"


@pytest.mark.parametrize("service, port, target, deployment", [
    ("gitjob", 80, 8080, "gitjob-webhook-receiver"),
    ("gitjob-webhook-admission", 443, 8443, "gitjob-webhook-admission"),
])
def test_services_reach_their_deployment(
    rendered: list[dict[str, Any]], service: str, port: int, target: int, deployment: str
) -> None:
    spec = find(rendered, "Service", service)["spec"]
    pod = find(rendered, "Deployment", deployment)["spec"]["template"]
    (service_port,) = spec["ports"]
    assert service_port["port"] == port
    (container_port,) = pod["spec"]["containers"][0]["ports"]
    assert container_port["containerPort"] == target
    assert service_port["targetPort"] in (container_port["name"], target)
    assert spec["selector"].items() <= pod["metadata"]["labels"].items()
    others = [d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] != deployment]
    assert not [d for d in others
                if spec["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]


def test_the_webhooks_call_the_admission_service(rendered: list[dict[str, Any]]) -> None:
    service = find(rendered, "Service", "gitjob-webhook-admission")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for webhook in find(rendered, kind, "gitjob-webhook-admission")["webhooks"]:
            reference = webhook["clientConfig"]["service"]
            assert (reference["namespace"], reference["name"]) == (NAMESPACE, service["metadata"]["name"])
            assert reference["port"] == service["spec"]["ports"][0]["port"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_each_deployment_has_a_disruption_budget_and_a_network_policy(
    rendered: list[dict[str, Any]], deployment: str
) -> None:
    labels = find(rendered, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
    budgets = [p for p in rendered if p["kind"] == "PodDisruptionBudget"
               and p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert len(budgets) == 1 and budgets[0]["spec"]["minAvailable"] == 1
    policies = [p for p in rendered if p["kind"] == "NetworkPolicy"
                and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
    assert len(policies) == 1
    policy = policies[0]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (container,) = find(rendered, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    ingress_ports = [p["port"] for rule in policy["ingress"] for p in rule["ports"]]
    assert ingress_ports == [container["ports"][0]["containerPort"]]
    egress_ports = sorted((p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"])
    assert egress_ports == [(53, "TCP"), (53, "UDP"), (443, "TCP"), (6443, "TCP")]


def test_the_image_tag_is_the_package_version() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "gitjob-webhook", "newTag": __version__}]


def test_the_seed_ingresses_point_at_the_gitjob_service() -> None:
    plain = _load(MANIFESTS / "examples" / "ingress.yaml")
    traefik = _load(MANIFESTS / "examples" / "ingress-traefik.yaml")
    for ingress in (plain[0], traefik[1]):
        metadata = ingress["metadata"]
        assert (metadata["name"], metadata["namespace"]) == ("webhook-ingress", NAMESPACE)
        (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
        assert path["backend"] == {"service": {"name": "gitjob", "port": {"number": 80}}}
    middleware = traefik[0]
    assert middleware["spec"] == {"stripPrefixRegex": {"regex": ["^/gitjob"]}}
    assert traefik[1]["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] == \
        f"{NAMESPACE}-{middleware['metadata']['name']}@kubernetescrd"


def test_example_webhook_secrets_use_the_seed_keys_and_obvious_placeholders() -> None:
    keys = set()
    for path in sorted((MANIFESTS / "examples" / "webhook-secrets").glob("*.yaml")):
        (secret,) = _load(path)
        assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == ("gitjob-webhook", NAMESPACE)
        assert all(re.fullmatch(r"CHANGE-ME-[a-z-]+", value) for value in secret["stringData"].values())
        keys |= set(secret["stringData"])
    assert keys == {"github", "gitlab", "bitbucket", "bitbucket-server", "gogs", "azure-username",
                    "azure-password"}


@pytest.mark.parametrize("example", ["ingress.yaml", "ingress-traefik.yaml"])
def test_the_example_ingresses_publish_the_webhook_path_alone(example: str) -> None:
    """/metrics, /readyz and /healthz stay inside the cluster: only the delivery path is routed."""
    documents = [doc for doc in yaml.safe_load_all((MANIFESTS / "examples" / example).read_text()) if doc]
    ingress = next(doc for doc in documents if doc["kind"] == "Ingress")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert paths and all(path["pathType"] == "Exact" for path in paths)


def test_the_admission_pods_admit_nothing_but_the_webhook_port(rendered: list[dict[str, Any]]) -> None:
    policy = find(rendered, "NetworkPolicy", "gitjob-webhook-admission")["spec"]
    assert [port["port"] for rule in policy["ingress"] for port in rule["ports"]] == [8443]
