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
    """A configuration is missing, or the API server refused or could not be reached; the message
    names the configuration, ``done`` says what was set before."""

    def __init__(self, message: str, done: list[str]) -> None:
        super().__init__(message)
        self.done = done


def ca_bundle_patch(configuration: Mapping[str, Any], ca_pem: bytes) -> list[dict[str, Any]]:
    """JSON Patch operations setting ``caBundle`` on every webhook of a webhook configuration."""
    bundle = base64.b64encode(ca_pem).decode()
    webhooks = configuration.get("webhooks") or []
    return [{"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": bundle}
            for index, _ in enumerate(webhooks)]


def inject_ca_bundle(api: KubeApi, ca_pem: bytes, names: Iterable[str] = WEBHOOK_CONFIGURATIONS) -> list[str]:
    """JSON-patch ``caBundle`` of every webhook in the named configurations; one line per configuration.

    A configuration that does not exist is an error, after the others were set: the admission
    webhooks would not be called with a CA (or at all).
    """
    lines: list[str] = []
    missing: list[str] = []
    for name in names:
        for kind, plural in KINDS:
            path = f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}"
            try:
                operations = ca_bundle_patch(api.request("GET", path), ca_pem)
                if operations:
                    api.request("PATCH", path, body=operations, content_type=JSON_PATCH)
            except ApiError as error:
                if error.status == 404:
                    missing.append(f"{kind} {name}")
                    continue
                raise InjectError(f"{kind} {name}: {error}", lines) from None
            lines.append(f"{kind} {name}: caBundle set on {len(operations)} webhook(s)")
    if missing:
        raise InjectError(f"{' and '.join(missing)}: not found (apply manifests/ first)", lines)
    return lines
