"""Webhook mode: whether a GitRepo is served by webhooks (and so polls slowly), and why.

``--webhook-mode auto`` turns it on while the global Secret exists, and for one GitRepo also when
it names its own ``spec.webhookSecret``; ``on`` and ``off`` force it. Admission (defaulting new
GitRepos) and the reconcile pass (adjusting existing ones) both ask this one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["WEBHOOK_MODES", "WebhookMode", "resolve_webhook_mode"]

WEBHOOK_MODES: Final = ("auto", "on", "off")
"""Values of ``--webhook-mode``."""


@dataclass(frozen=True)
class WebhookMode:
    """Whether webhook mode applies to one GitRepo, and why (for audit and logs)."""

    active: bool
    source: str
    """e.g. ``auto/global-secret``; never a secret's value."""


def resolve_webhook_mode(webhook_secret: str, *, webhook_mode: str,
                         global_secret_exists: bool) -> WebhookMode:
    """Webhook mode for a GitRepo with this ``spec.webhookSecret`` ("" when it names none)."""
    if webhook_mode == "on":
        return WebhookMode(True, "on/flag")
    if webhook_mode == "off":
        return WebhookMode(False, "off/flag")
    if webhook_mode != "auto":
        raise ValueError(f"webhook mode must be one of {', '.join(WEBHOOK_MODES)}, not {webhook_mode!r}")
    # A GitRepo's own Secret is the one its deliveries are verified with, global Secret or not.
    if webhook_secret:
        return WebhookMode(True, "auto/gitrepo-secret")
    if global_secret_exists:
        return WebhookMode(True, "auto/global-secret")
    return WebhookMode(False, "auto/no-secret")
