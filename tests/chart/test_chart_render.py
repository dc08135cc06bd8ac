"""The chart lints, renders what kustomize renders, and turns each value into the setting it names."""

from __future__ import annotations

import base64
import datetime
import pathlib
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from cryptography import x509

from chart import equivalence
from chart.helm import CHART, NAMESPACE, Helm, documents
from controller import __version__, settings
from controller.cli.errors import UsageError
from controller.cli.parser import build_parser
from deploy.conftest import kustomize
from support import service
from support.paths import EXAMPLE_GITREPOS, MANIFESTS
from support.waiting import wait_for

Objects = list[dict[str, Any]]
COMPONENTS = {"receiver": "gitjob-webhook-receiver", "admission": "gitjob-webhook-admission"}


def find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    """The one object of that kind and name (hooks of the same name aside)."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
               and not equivalence.is_removal_hook(o)]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def container(objects: Objects, component: str) -> dict[str, Any]:
    """The one container of a component's Deployment."""
    (found,) = find(objects, "Deployment", COMPONENTS[component])["spec"]["template"]["spec"]["containers"]
    return dict(found)


def env(objects: Objects, component: str) -> dict[str, str]:
    """A component's GITJOB_WEBHOOK_* variables that have a value."""
    return {e["name"]: e["value"] for e in container(objects, component)["env"] if "value" in e}


@pytest.mark.parametrize("mode", [pytest.param(mode, id=mode)
                                  for mode in ("generate", "certManager", "existingSecret")])
def test_the_chart_lints_strictly_in_every_certificate_mode(session_helm: Helm, mode: str) -> None:
    run = session_helm.run("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--set",
                           f"certificates.mode={mode}", "--set", "certificates.existingSecret.name=mine")
    assert run.returncode == 0, run.stdout + run.stderr
    # helm lint turns `fail` and `required` into log lines: one here would be a refusal it hid.
    assert "funcMap" not in run.stderr, run.stderr


def test_chart_and_image_versions_are_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (__version__, __version__)
    assert chart["apiVersion"] == "v2"


def test_the_chart_claims_no_rancher_certification() -> None:
    annotations = yaml.safe_load((CHART / "Chart.yaml").read_text())["annotations"]
    assert annotations["catalog.cattle.io/namespace"] == NAMESPACE
    assert "catalog.cattle.io/certified" not in annotations


def test_default_values_render_the_objects_kustomize_renders(chart_default: Objects,
                                                             kustomized: Objects) -> None:
    chart = equivalence.as_kustomize(chart_default, kustomized)
    theirs = equivalence.kustomize_as_applied(kustomized)
    assert sorted(chart) == sorted(theirs)
    assert chart == theirs, equivalence.difference(chart, theirs)


def test_cert_manager_mode_renders_the_objects_of_the_cert_manager_overlay(session_helm: Helm) -> None:
    overlay = kustomize(MANIFESTS / "overlays" / "cert-manager")
    chart = equivalence.as_kustomize(session_helm.render({"certificates": {"mode": "certManager"}}), overlay)
    theirs = equivalence.kustomize_as_applied(overlay)
    assert chart == theirs, equivalence.difference(chart, theirs)


def test_the_generated_certificate_is_for_the_admission_service_and_signed_by_the_bundled_ca(
        chart_default: Objects) -> None:
    tls = find(chart_default, "Secret", "gitjob-webhook-admission-tls")
    ca = x509.load_pem_x509_certificate(base64.b64decode(tls["data"]["ca.crt"]))
    served = x509.load_pem_x509_certificate(base64.b64decode(tls["data"]["tls.crt"]))
    served.verify_directly_issued_by(ca)
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"gitjob-webhook-admission.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    annotations = tls["metadata"]["annotations"]
    expires = datetime.datetime.fromisoformat(annotations["gitjob-webhook.fleet.cattle.io/expires"])
    assert abs((expires - served.not_valid_after_utc).total_seconds()) < 120
    assert tls["type"] == "kubernetes.io/tls"
    for kind in equivalence.WEBHOOK_KINDS:
        (webhook,) = find(chart_default, kind, "gitjob-webhook-admission")["webhooks"]
        assert webhook["clientConfig"]["caBundle"] == tls["data"]["ca.crt"]


def test_the_admission_server_serves_the_generated_certificate_as_the_api_server_checks_it(
        chart_default: Objects, run_service: Callable[..., service.Service], tmp_path: pathlib.Path) -> None:
    """The API server dials the Service's DNS name and verifies the answer against caBundle."""
    data = find(chart_default, "Secret", "gitjob-webhook-admission-tls")["data"]
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / name).write_bytes(base64.b64decode(data[name]))
    started = run_service("serve", "admission", "--listen", "127.0.0.1:0", "--store", "offline",
                          "--gitrepos", str(EXAMPLE_GITREPOS), "--tls-cert", str(tmp_path / "tls.crt"),
                          "--tls-key", str(tmp_path / "tls.key"))
    port = int(service.listening(started, "admission").rsplit(":", 1)[1])
    (webhook,) = find(chart_default, "ValidatingWebhookConfiguration", "gitjob-webhook-admission")["webhooks"]
    bundle = base64.b64decode(webhook["clientConfig"]["caBundle"]).decode()
    trusted = ssl.create_default_context(cadata=bundle)

    def handshake() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            name = f"gitjob-webhook-admission.{NAMESPACE}.svc"
            with trusted.wrap_socket(connection, server_hostname=name):
                return True
    assert wait_for(handshake, timeout=30, message="a verified TLS handshake with the admission server")


def test_the_ca_key_is_never_mounted_in_a_pod(chart_default: Objects) -> None:
    for component in COMPONENTS.values():
        pod = find(chart_default, "Deployment", component)["spec"]["template"]["spec"]
        assert "gitjob-webhook-ca" not in yaml.safe_dump(pod)


def test_webhooks_are_created_after_the_release_and_removed_before_it(chart_default: Objects) -> None:
    for kind in equivalence.WEBHOOK_KINDS:
        hooks = {o["metadata"]["annotations"]["helm.sh/hook"]: o for o in chart_default
                 if o["kind"] == kind and "helm.sh/hook" in (o["metadata"].get("annotations") or {})}
        assert set(hooks) == {"post-install,post-upgrade,post-rollback", "pre-delete"}
        assert hooks["pre-delete"]["webhooks"] == []
        policy = hooks["pre-delete"]["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        assert "hook-succeeded" in policy
    hooked = {o["kind"] for o in chart_default
              if (o["metadata"].get("annotations") or {}).get("helm.sh/hook")}
    assert hooked == set(equivalence.WEBHOOK_KINDS)


def test_another_controller_namespace_is_named_everywhere_and_fleets_nowhere(session_helm: Helm) -> None:
    run = session_helm.template({"controllerNamespace": "fleet-elsewhere"}, namespace="fleet-elsewhere")
    assert run.returncode == 0, run.stderr
    assert NAMESPACE not in run.stdout
    objects = documents(run.stdout)
    policy = find(objects, "ValidatingAdmissionPolicy", "gitjob-webhook-receiver-secret-access")["spec"]
    assert ("system:serviceaccount:fleet-elsewhere:gitjob-webhook-admission"
            in policy["matchConditions"][0]["expression"])
    assert 'subject.namespace == "fleet-elsewhere"' in policy["validations"][1]["expression"]
    for obj in objects:
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert {s["namespace"] for s in obj["subjects"]} == {"fleet-elsewhere"}
    validating = find(objects, "ValidatingWebhookConfiguration", "gitjob-webhook-admission")["webhooks"][0]
    assert validating["namespaceSelector"]["matchExpressions"][0]["values"] == ["fleet-elsewhere"]
    assert validating["clientConfig"]["service"]["namespace"] == "fleet-elsewhere"


def test_a_release_namespace_other_than_the_controller_namespace_is_refused(session_helm: Helm) -> None:
    run = session_helm.template(namespace="default")
    assert run.returncode != 0
    assert 'must be installed into the controller namespace "cattle-fleet-system"' in run.stderr
    assert "helm install -n cattle-fleet-system" in run.stderr


@pytest.mark.parametrize("values, complaint", [
    pytest.param({"receiver": {"replica": 3}}, "at '/receiver': additional properties 'replica' not allowed",
                 id="a-misspelt-key"),
    pytest.param({"certificates": {"mode": "selfSigned"}}, "'/certificates/mode': value must be one of",
                 id="an-unknown-certificate-mode"),
    pytest.param({"config": {"webhookPollingInterval": "an hour"}},
                 "at '/config/webhookPollingInterval': 'an hour' does not match pattern",
                 id="a-polling-interval-that-is-no-go-duration"),
    # The binary refuses these at start: the pods would crash-loop where helm can refuse at once.
    pytest.param({"config": {"webhookPollingInterval": "99999999999h"}},
                 "at '/config/webhookPollingInterval': '99999999999h' does not match pattern",
                 id="a-polling-interval-beyond-what-go-holds"),
    pytest.param({"config": {"webhookPollingInterval": "0s"}},
                 "at '/config/webhookPollingInterval': 'not' failed", id="a-zero-polling-interval"),
    pytest.param({"networkPolicy": {"apiServer": [{"ipblock": {"cidr": "10.0.0.0/8"}}]}},
                 "at '/networkPolicy/apiServer/0': additional properties 'ipblock' not allowed",
                 id="a-misspelt-network-policy-peer"),
    pytest.param({"monitoring": {"podMonitors": {"enable": True}}},
                 "at '/monitoring/podMonitors': additional properties 'enable' not allowed",
                 id="a-misspelt-toggle"),
])
def test_a_mistaken_value_is_refused_by_the_schema_with_its_name(
        session_helm: Helm, values: dict[str, Any], complaint: str) -> None:
    run = session_helm.template(values)
    assert run.returncode != 0
    assert "values don't meet the specifications of the schema" in run.stderr
    assert complaint in run.stderr


def test_rancher_global_values_are_accepted(session_helm: Helm) -> None:
    session_helm.render({"global": {"cattle": {"clusterId": "local", "systemDefaultRegistry": ""}}})


@pytest.mark.parametrize("mode", [pytest.param(True, id="true-unquoted-on"),
                                  pytest.param(False, id="false-unquoted-off"),
                                  pytest.param("on", id="on"), pytest.param("off", id="off")])
def test_webhook_mode_on_or_off_reaches_both_components_quoted_or_not(session_helm: Helm, mode: Any) -> None:
    objects = session_helm.render({"config": {"webhookMode": mode}})
    expected = {True: "on", False: "off"}.get(mode, mode)
    for component in COMPONENTS:
        assert env(objects, component)["GITJOB_WEBHOOK_WEBHOOK_MODE"] == expected


SETTINGS = {"config": {"webhookMode": "on", "webhookPollingInterval": "30m", "requireSignature": True,
                       "logLevel": "debug"},
            "limits": {"maxBodySize": "512KiB", "requestTimeout": 4.5, "patchDeadline": 3, "rateLimit": 7,
                       "rateBurst": 9}}
EXPECTED = {"webhook_mode": "on", "webhook_polling_interval": "30m", "require_signature": True,
            "log_level": "debug", "max_body_size": 512 * 1024, "request_timeout": 4.5, "patch_deadline": 3.0,
            "rate_limit": 7.0, "rate_burst": 9}


@pytest.mark.parametrize("component", [pytest.param(component, id=component) for component in COMPONENTS])
def test_each_setting_reaches_the_service_as_the_value_given(session_helm: Helm, component: str) -> None:
    variables = env(session_helm.render(SETTINGS), component)
    read = settings.build({}, environ=variables)
    chosen = {name.removeprefix(settings.ENV_PREFIX).lower() for name in variables}
    for option, value in EXPECTED.items():
        if option in chosen:
            assert getattr(read, option) == value, option
    assert (component == "receiver") == ("max_body_size" in chosen)


def _accepted(component: str, option: str, value: str) -> bool:
    """Whether ``gitjob-webhook serve COMPONENT`` takes ``--option`` (with that value, or as a flag)."""
    for args in ([f"--{option}", value], [f"--{option}"]):
        try:
            build_parser().parse_args(["serve", component, *args])
            return True
        except UsageError:
            continue
    return False


@pytest.mark.parametrize("component", [pytest.param(component, id=component) for component in COMPONENTS])
def test_every_variable_the_chart_sets_is_an_option_of_that_component(
        chart_default: Objects, component: str) -> None:
    for name, value in env(chart_default, component).items():
        option = name.removeprefix(settings.ENV_PREFIX).lower().replace("_", "-")
        assert _accepted(component, option, value), f"serve {component} has no --{option}"


def test_image_tag_defaults_to_the_app_version_and_can_be_chosen(session_helm: Helm,
                                                                 chart_default: Objects) -> None:
    assert container(chart_default, "receiver")["image"] == f"gitjob-webhook:{__version__}"
    objects = session_helm.render({"image": {"repository": "registry.example.com/fleet/gitjob-webhook",
                                             "tag": "9.9.9", "pullPolicy": "Always",
                                             "pullSecrets": [{"name": "registry"}]}})
    for component, name in COMPONENTS.items():
        assert container(objects, component)["image"] == "registry.example.com/fleet/gitjob-webhook:9.9.9"
        assert container(objects, component)["imagePullPolicy"] == "Always"
        pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "registry"}]


PLACEMENT = {"nodeSelector": {"kubernetes.io/os": "linux"},
             "tolerations": [{"key": "cattle.io/os", "operator": "Exists", "effect": "NoSchedule"}],
             "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                 {"weight": 1, "preference": {"matchExpressions": [
                     {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}}]}}}


def test_replicas_resources_and_placement_are_per_component_or_shared(session_helm: Helm) -> None:
    resources = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
    objects = session_helm.render({"receiver": {"replicas": 4, "resources": resources},
                                   "admission": {"replicas": 3}, **PLACEMENT})
    assert find(objects, "Deployment", "gitjob-webhook-receiver")["spec"]["replicas"] == 4
    assert find(objects, "Deployment", "gitjob-webhook-admission")["spec"]["replicas"] == 3
    # Helm merges a map given with the default: a default key stays unless set to null.
    assert container(objects, "receiver")["resources"] == {"requests": resources["requests"],
                                                           "limits": {"cpu": "1", "memory": "1Gi"}}
    assert container(objects, "admission")["resources"]["limits"]["memory"] == "256Mi"
    for name in COMPONENTS.values():
        pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        assert {key: pod[key] for key in PLACEMENT} == PLACEMENT


def test_labels_and_annotations_reach_every_object_but_never_a_selector(
        session_helm: Helm, chart_default: Objects) -> None:
    objects = session_helm.render({"commonLabels": {"team": "platform"},
                                   "commonAnnotations": {"owner": "ops"},
                                   "podLabels": {"sidecar": "none"}, "podAnnotations": {"scrape": "yes"}})
    for obj in objects:
        assert obj["metadata"]["labels"]["team"] == "platform", equivalence.key(obj)
        assert obj["metadata"]["annotations"]["owner"] == "ops", equivalence.key(obj)
    for name in COMPONENTS.values():
        deployment = find(objects, "Deployment", name)
        assert deployment["spec"]["selector"] == find(chart_default, "Deployment", name)["spec"]["selector"]
        assert deployment["spec"]["template"]["metadata"]["labels"]["sidecar"] == "none"
        assert deployment["spec"]["template"]["metadata"]["annotations"] == {"scrape": "yes"}
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        for obj in (o for o in objects if o["kind"] == kind):
            assert "team" not in yaml.safe_dump(obj["spec"])


def test_the_receiver_may_have_a_service_of_its_own_that_the_uninstall_deletes(
        session_helm: Helm, chart_default: Objects) -> None:
    fleets = find(chart_default, "Service", "gitjob")
    assert fleets["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    objects = session_helm.render({"receiver": {"service": {"name": "gitjob-webhook"}}})
    own = find(objects, "Service", "gitjob-webhook")
    assert "annotations" not in own["metadata"]
    assert own["spec"] == find(chart_default, "Service", "gitjob")["spec"]
    assert not [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "gitjob"]


def test_budgets_and_network_policies_can_be_turned_off(session_helm: Helm) -> None:
    half = {"enabled": True, "minAvailable": "50%"}
    objects = session_helm.render({"receiver": {"podDisruptionBudget": {"enabled": False}},
                                   "admission": {"podDisruptionBudget": half},
                                   "networkPolicy": {"enabled": False}})
    budgets = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert list(budgets) == ["gitjob-webhook-admission"]
    assert budgets["gitjob-webhook-admission"]["minAvailable"] == "50%"
    assert not [o for o in objects if o["kind"] == "NetworkPolicy"]


def test_a_budget_that_would_block_every_drain_is_refused(session_helm: Helm) -> None:
    run = session_helm.template({"receiver": {"replicas": 1}})
    assert run.returncode != 0
    assert "receiver.podDisruptionBudget.minAvailable (1) must be below receiver.replicas (1)" in run.stderr
    session_helm.render({"receiver": {"replicas": 1,
                                      "podDisruptionBudget": {"enabled": True, "minAvailable": 0}}})


def test_network_policy_peers_narrow_each_rule_and_keep_its_ports(session_helm: Helm,
                                                                  chart_default: Objects) -> None:
    api = [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    dns = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]
    ingress = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    objects = session_helm.render({"networkPolicy": {"apiServer": api, "dns": dns,
                                                     "receiver": {"from": ingress},
                                                     "admission": {"from": api}}})
    for name, peers in (("gitjob-webhook-receiver", ingress), ("gitjob-webhook-admission", api)):
        spec = find(objects, "NetworkPolicy", name)["spec"]
        default = find(chart_default, "NetworkPolicy", name)["spec"]
        assert [rule["from"] for rule in spec["ingress"]] == [peers]
        assert [rule["to"] for rule in spec["egress"]] == [api, dns]
        assert [rule["ports"] for rule in spec["egress"]] == [rule["ports"] for rule in default["egress"]]
        assert [rule["ports"] for rule in spec["ingress"]] == [rule["ports"] for rule in default["ingress"]]


def test_an_existing_secret_is_mounted_and_its_ca_given_to_the_webhooks(session_helm: Helm) -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    objects = session_helm.render({"certificates": {"mode": "existingSecret",
                                                    "existingSecret": {"name": "my-tls", "caBundle": ca}}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    pod = find(objects, "Deployment", "gitjob-webhook-admission")["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["certs"]["secret"]["secretName"] == "my-tls"
    for kind in equivalence.WEBHOOK_KINDS:
        (webhook,) = find(objects, kind, "gitjob-webhook-admission")["webhooks"]
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]).decode() == ca


def test_an_existing_secret_needs_a_name(session_helm: Helm) -> None:
    run = session_helm.template({"certificates": {"mode": "existingSecret"}})
    assert run.returncode != 0
    assert "certificates.existingSecret.name" in run.stderr


def test_cert_manager_may_sign_with_your_own_issuer(session_helm: Helm) -> None:
    objects = session_helm.render({"certificates": {"mode": "certManager", "certManager": {
        "issuer": {"create": False, "name": "corporate-ca", "kind": "ClusterIssuer"}}}})
    issued = sorted(o["kind"] for o in objects if o["apiVersion"].startswith("cert-manager.io"))
    assert issued == ["Certificate"]
    certificate = find(objects, "Certificate", "gitjob-webhook-admission")["spec"]
    assert certificate["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer",
                                        "name": "corporate-ca"}
    run = session_helm.template({"certificates": {"mode": "certManager",
                                                  "certManager": {"issuer": {"create": False}}}})
    assert run.returncode != 0 and "certificates.certManager.issuer.name" in run.stderr


MONITORING = {"monitoring": {"podMonitors": {"enabled": True}, "prometheusRule": {"enabled": True},
                             "dashboard": {"enabled": True}}}


def test_monitoring_is_off_by_default(chart_default: Objects) -> None:
    assert not [o for o in chart_default if o["apiVersion"].startswith("monitoring.coreos.com")]
    assert not [o for o in chart_default if o["kind"] == "ConfigMap"]


def test_monitoring_renders_the_objects_of_the_monitoring_overlay(session_helm: Helm) -> None:
    overlay = kustomize(MANIFESTS / "overlays" / "monitoring")
    chart = equivalence.as_kustomize(session_helm.render(MONITORING), overlay)
    theirs = equivalence.kustomize_as_applied(overlay)
    assert chart == theirs, equivalence.difference(chart, theirs)


@pytest.mark.parametrize("name", [pytest.param("prometheusrule.yaml", id="alerts"),
                                  pytest.param("dashboard.json", id="dashboard")])
def test_the_alerts_and_the_dashboard_are_the_overlays_own_files(name: str) -> None:
    carried = CHART / "files" / "monitoring" / name
    assert carried.resolve() == (MANIFESTS / "overlays" / "monitoring" / name).resolve()


def test_monitoring_labels_select_and_the_admission_certificate_can_be_verified(session_helm: Helm) -> None:
    values = {"monitoring": {"podMonitors": {"enabled": True, "labels": {"release": "prometheus"},
                                             "verifyAdmissionCertificate": True},
                             "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}}}}
    objects = session_helm.render(values)
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com"):
            assert obj["metadata"]["labels"]["release"] == "prometheus", equivalence.key(obj)
    (endpoint,) = find(objects, "PodMonitor", "gitjob-webhook-admission")["spec"]["podMetricsEndpoints"]
    ca = {"secret": {"name": "gitjob-webhook-admission-tls", "key": "ca.crt"}}
    assert endpoint["tlsConfig"] == {"serverName": f"gitjob-webhook-admission.{NAMESPACE}.svc", "ca": ca}
