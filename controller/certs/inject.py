"""Publishing the CA into the project's Mutating/ValidatingWebhookConfigurations (``certs inject``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Final

from controller.store.kubeapi import JSON_PATCH, ApiError, KubeApi

__all__ = ["WEBHOOK_CONFIGURATIONS", "InjectError", "ca_bundle_patch", "inject_ca_bundle"]

WEBHOOK_CONFIGURATIONS: Final = ("gitjob-webhook-admission",)
"""The names of the project's webhook configurations (one of each kind)."""

KINDS: Final = (("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
                ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations"))


class InjectError(Exception):
    """The API server refused or could not be reached; the message names the configuration."""


def ca_bundle_patch(configuration: Mapping[str, Any], ca_pem: bytes) -> list[dict[str, Any]]:
    """JSON Patch operations setting ``caBundle`` on every webhook of a webhook configuration."""
    bundle = base64.b64encode(ca_pem).decode()
    webhooks = configuration.get("webhooks") or []
    return [{"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": bundle}
            for index, _ in enumerate(webhooks)]


def inject_ca_bundle(api: KubeApi, ca_pem: bytes, names: Iterable[str] = WEBHOOK_CONFIGURATIONS) -> list[str]:
    """JSON-patch ``caBundle`` of every webhook in the named configurations; one line per configuration."""
    lines = []
    for name in names:
        for kind, plural in KINDS:
            path = f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}"
            try:
                operations = ca_bundle_patch(api.request("GET", path), ca_pem)
                if operations:
                    api.request("PATCH", path, body=operations, content_type=JSON_PATCH)
            except ApiError as error:
                if error.status == 404:
                    lines.append(f"{kind} {name}: not found (apply manifests/ first)")
                    continue
                raise InjectError(f"{kind} {name}: {error}") from None
            lines.append(f"{kind} {name}: caBundle set on {len(operations)} webhook(s)")
    return lines
