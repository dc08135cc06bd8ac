"""Publishing the CA into the project's Mutating/ValidatingWebhookConfigurations (``certs inject``)."""

from __future__ import annotations

from collections.abc import Iterable

from controller.certs import CertsError, ca_bundle_patch
from controller.store.kubeapi import JSON_PATCH, ApiError, KubeApi

KINDS = (("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
         ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations"))


def inject_ca_bundle(api: KubeApi, ca_pem: bytes, names: Iterable[str]) -> list[str]:
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
                raise CertsError(f"{kind} {name}: {error}") from None
            lines.append(f"{kind} {name}: caBundle set on {len(operations)} webhook(s)")
    return lines
