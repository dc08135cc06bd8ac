"""Publishing the CA into the project's Mutating/ValidatingWebhookConfigurations (``certs inject``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.certs import CertsError, ca_bundle_patch


def inject_ca_bundle(api_client: client.ApiClient, ca_pem: bytes, names: Iterable[str]) -> list[str]:
    """JSON-patch ``caBundle`` of every webhook in the named configurations; one line per configuration."""
    api = client.AdmissionregistrationV1Api(api_client)
    kinds: tuple[tuple[str, Any, Any], ...] = (
        ("MutatingWebhookConfiguration", api.read_mutating_webhook_configuration,
         api.patch_mutating_webhook_configuration),
        ("ValidatingWebhookConfiguration", api.read_validating_webhook_configuration,
         api.patch_validating_webhook_configuration),
    )
    lines = []
    for name in names:
        for kind, read, patch in kinds:
            try:
                current = api_client.sanitize_for_serialization(read(name))
                operations = ca_bundle_patch(current, ca_pem)
                if operations:
                    # A list body makes the client send application/json-patch+json.
                    patch(name, operations)
            except ApiException as error:
                if error.status == 404:
                    lines.append(f"{kind} {name}: not found (apply manifests/ first)")
                    continue
                raise CertsError(f"{kind} {name}: {error.status} {error.reason}") from None
            lines.append(f"{kind} {name}: caBundle set on {len(operations)} webhook(s)")
    return lines
