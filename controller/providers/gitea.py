"""Gitea deliveries (`X-Gitea-Event`, `X-Gitea-Signature`, falling back to the Gogs headers it also sends)."""

from __future__ import annotations

from controller.providers.gogs import GogsFamily

__all__ = ["GITEA"]

GITEA = GogsFamily(
    name="gitea",
    title="Gitea",
    event_header="x-gitea-event",
    signature_headers=("x-gitea-signature", "x-gogs-signature"),
    delivery_headers=("x-gitea-delivery", "x-gogs-delivery"),
)
"""The Gitea provider."""
