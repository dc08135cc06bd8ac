"""What may differ between the chart's objects and kustomize's, removed so that the rest compares equal.

Exactly these differences, each checked for its expected value as it is removed:

- Helm's labels on every object: ``helm.sh/chart``, ``app.kubernetes.io/managed-by``,
  ``app.kubernetes.io/instance``, ``app.kubernetes.io/version`` (never on selectors or pod templates).
- The serving certificate the chart makes (``generate``): Secrets ``gitjob-webhook-ca`` and
  ``gitjob-webhook-admission-tls``, which kustomize leaves to ``make deploy``.
- The webhook configurations: the hook annotations that order them, the ``caBundle`` the chart fills
  (the generated CA), and the pre-delete hooks of the same names with no webhooks that remove them.
- Service ``gitjob`` (Fleet's, taken over): ``helm.sh/resource-policy: keep``.
- ``GITJOB_WEBHOOK_*`` variables kustomize does not set whose value is the service's own default (the
  chart states every setting it offers; the service would use the same value without it).

And two of kustomize's YAML handling, which change nothing the API server acts on:

- it gives the cluster-scoped ValidatingAdmissionPolicy and its binding the namespace of the
  kustomization (it does not know they are cluster-scoped; the API server ignores it);
- it reads a folded (``>-``) block whose next line is more indented with an extra blank line, so the
  CEL of the admission objects is compared with its whitespace outside string literals collapsed
  (whitespace separates CEL tokens and means nothing else).
"""

from __future__ import annotations

import base64
import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from controller import __version__, settings

HELM_LABELS = {"helm.sh/chart": f"gitjob-webhook-{__version__}", "app.kubernetes.io/managed-by": "Helm",
               "app.kubernetes.io/instance": "gitjob-webhook", "app.kubernetes.io/version": __version__}
HOOK = {"helm.sh/hook": "post-install,post-upgrade,post-rollback", "helm.sh/hook-weight": "10",
        "helm.sh/hook-delete-policy": "before-hook-creation"}
REMOVAL_HOOK = {"helm.sh/hook": "pre-delete", "helm.sh/hook-weight": "-10",
                "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded"}
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
GENERATED_SECRETS = ("gitjob-webhook-ca", "gitjob-webhook-admission-tls")
# Kinds kustomize puts a namespace on although they are cluster-scoped.
CLUSTER_SCOPED_NAMESPACED_BY_KUSTOMIZE = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
Key = tuple[str, str, str]
_CEL_STRING = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def cel(expression: str) -> str:
    """A CEL expression with every run of whitespace outside its string literals made one space."""
    parts = _CEL_STRING.split(expression)
    collapsed = (part if index % 2 else re.sub(r"\s+", " ", part) for index, part in enumerate(parts))
    return "".join(collapsed).strip()


def _normalise_cel(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: cel(item) if name.endswith(("expression", "Expression")) and isinstance(item, str)
                else _normalise_cel(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_normalise_cel(item) for item in value]
    return value


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["apiVersion"].startswith("admissionregistration.k8s.io/"):
        return dict(_normalise_cel(obj))
    return obj


def key(obj: Mapping[str, Any]) -> Key:
    """(kind, namespace, name): how the two renderings are matched."""
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace", ""), metadata["name"]


def is_removal_hook(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is one of the pre-delete hooks that remove the webhook configurations."""
    return (obj["metadata"].get("annotations") or {}).get("helm.sh/hook") == "pre-delete"


def _pop_expected(mapping: dict[str, Any], expected: Mapping[str, str], where: str) -> None:
    for name, value in expected.items():
        assert mapping.pop(name, None) == value, f"{where}: {name} should be {value!r}"


def _is_service_default(name: str, value: str) -> bool:
    option = name.removeprefix(settings.ENV_PREFIX).lower()
    defaults = settings.Settings()
    if not hasattr(defaults, option):
        return False
    return bool(getattr(settings.build({}, environ={name: value}), option) == getattr(defaults, option))


def _drop_default_env(chart: dict[str, Any], kustomized: Mapping[Key, Mapping[str, Any]]) -> None:
    if chart["kind"] != "Deployment" or key(chart) not in kustomized:
        return
    theirs = {container["name"]: {entry["name"] for entry in container.get("env", ())}
              for container in kustomized[key(chart)]["spec"]["template"]["spec"]["containers"]}
    for container in chart["spec"]["template"]["spec"]["containers"]:
        kept = []
        for entry in container.get("env", ()):
            extra = entry["name"] not in theirs.get(container["name"], set())
            if extra and "value" in entry and _is_service_default(entry["name"], entry["value"]):
                continue
            kept.append(entry)
        container["env"] = kept


def as_kustomize(chart_objects: Iterable[Mapping[str, Any]],
                 kustomize_objects: Iterable[Mapping[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The chart's objects with exactly the allowed differences removed, by key."""
    kustomized = kustomize_as_applied(kustomize_objects)
    objects = [copy.deepcopy(dict(obj)) for obj in chart_objects]
    removal = [obj for obj in objects if is_removal_hook(obj)]
    assert sorted(obj["kind"] for obj in removal) in ([], sorted(WEBHOOK_KINDS)), removal
    secrets = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Secret"}
    assert set(secrets) <= set(GENERATED_SECRETS), f"the chart renders other Secrets: {sorted(secrets)}"
    ca_bundle = ""
    if secrets:
        ca_bundle = secrets["gitjob-webhook-admission-tls"]["data"]["ca.crt"]
        assert secrets["gitjob-webhook-ca"]["data"]["tls.crt"] == ca_bundle
    result: dict[Key, dict[str, Any]] = {}
    for obj in objects:
        if is_removal_hook(obj):
            _pop_expected(obj["metadata"]["annotations"], REMOVAL_HOOK, f"{key(obj)}")
            assert obj.get("webhooks") == [], f"{key(obj)}: the removal hook must call nothing"
            continue
        if obj["kind"] == "Secret":
            continue
        metadata = obj["metadata"]
        _pop_expected(metadata["labels"], HELM_LABELS, f"{key(obj)} labels")
        annotations = metadata.get("annotations") or {}
        if obj["kind"] in WEBHOOK_KINDS:
            _pop_expected(annotations, HOOK, f"{key(obj)} annotations")
            for webhook in obj["webhooks"]:
                got = webhook["clientConfig"].pop("caBundle", "")
                assert got == ca_bundle, f"{key(obj)} {webhook['name']}: caBundle is not the chart's CA"
                if got:
                    assert base64.b64decode(got).startswith(b"-----BEGIN CERTIFICATE-----")
        if key(obj) == ("Service", metadata.get("namespace", ""), "gitjob"):
            _pop_expected(annotations, {"helm.sh/resource-policy": "keep"}, "Service gitjob")
        if not annotations:
            metadata.pop("annotations", None)
        _drop_default_env(obj, kustomized)
        assert key(obj) not in result, f"{key(obj)} rendered twice"
        result[key(obj)] = _comparable(obj)
    return result


def kustomize_as_applied(objects: Iterable[Mapping[str, Any]]) -> dict[Key, dict[str, Any]]:
    """kustomize's objects, by key, without the namespace it gives cluster-scoped kinds it does not know."""
    result = {}
    for original in objects:
        obj = copy.deepcopy(dict(original))
        if obj["kind"] in CLUSTER_SCOPED_NAMESPACED_BY_KUSTOMIZE:
            obj["metadata"].pop("namespace", None)
        result[key(obj)] = _comparable(obj)
    return result


def difference(chart: Mapping[Key, Any], kustomized: Mapping[Key, Any]) -> str:
    """A unified diff of the two renderings (empty when they are equal)."""
    def text(objects: Mapping[Key, Any]) -> list[str]:
        ordered = [objects[k] for k in sorted(objects)]
        return yaml.safe_dump_all(ordered, sort_keys=True).splitlines(keepends=True)
    return "".join(difflib.unified_diff(text(kustomized), text(chart), "kubectl kustomize manifests/",
                                        "helm template charts/gitjob-webhook (allowed differences removed)"))
