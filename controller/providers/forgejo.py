"""Forgejo deliveries (`X-Forgejo-Event`, `X-Forgejo-Signature`; falls back to Gitea's and Gogs' headers)."""

from __future__ import annotations

from controller.providers.gogs import GogsFamily

__all__ = ["FORGEJO"]

FORGEJO = GogsFamily(
    name="forgejo",
    title="Forgejo",
    event_header="x-forgejo-event",
    signature_headers=("x-forgejo-signature", "x-gitea-signature", "x-gogs-signature"),
    delivery_headers=("x-forgejo-delivery", "x-gitea-delivery", "x-gogs-delivery"),
)
"""The Forgejo provider."""
