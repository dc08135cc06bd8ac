"""Defaulting of Fleet GitRepos: in webhook mode, a GitRepo without a polling interval gets one.

Fleet's documentation promises that "if you configured the webhook the polling interval
will be automatically adjusted to 1 hour". Fleet does it by writing the spec from its
receiver; we do it at admission instead, set-if-absent, so the value is visible at once,
does not fight GitOps tools on every push, and is idempotent under reinvocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import jsonpatch
import jsonpointer

from controller.admission.durations import parse_go_duration
from controller.admission.reviews import Decision, PatchOperation, Review
from controller.gitrepos import DEFAULTED_ANNOTATION, GROUP, PLURAL

__all__ = [
    "DEFAULTED_ANNOTATION",
    "FLEET_DEFAULT_POLLING_SECONDS",
    "REDUNDANT_POLLING_SECONDS",
    "WEBHOOK_MODES",
    "WebhookMode",
    "mutate_gitrepo",
    "resolve_webhook_mode",
]

WEBHOOK_MODES: Final = ("auto", "on", "off")
"""Values of ``--webhook-mode``."""

FLEET_DEFAULT_POLLING_SECONDS: Final = 15.0
"""What Fleet polls at when ``spec.pollingInterval`` is null or ``"0"``."""

REDUNDANT_POLLING_SECONDS: Final = 300.0
"""In webhook mode an explicit interval below this (or below our default) earns a warning."""


@dataclass(frozen=True)
class WebhookMode:
    """Whether webhook mode applies to one GitRepo, and why (for audit and logs)."""

    active: bool
    source: str  # e.g. "auto/global-secret"; never a secret's value


def _has_webhook_secret(spec: Mapping[str, Any]) -> bool:
    secret = spec.get("webhookSecret")
    return isinstance(secret, str) and bool(secret)


def resolve_webhook_mode(
    spec: Mapping[str, Any], *, webhook_mode: str, global_secret_exists: bool
) -> WebhookMode:
    """Webhook mode for a GitRepo: ``on``, or ``auto`` with the global Secret or a ``webhookSecret``."""
    if webhook_mode == "on":
        return WebhookMode(True, "on/flag")
    if webhook_mode == "off":
        return WebhookMode(False, "off/flag")
    if webhook_mode != "auto":
        raise ValueError(f"webhook mode must be one of {', '.join(WEBHOOK_MODES)}, not {webhook_mode!r}")
    if global_secret_exists:
        return WebhookMode(True, "auto/global-secret")
    if _has_webhook_secret(spec):
        return WebhookMode(True, "auto/gitrepo-secret")
    return WebhookMode(False, "auto/no-secret")


def _is_gitrepo_write(review: Review) -> bool:
    return (
        review.operation in ("CREATE", "UPDATE")
        and review.resource.group == GROUP
        and review.resource.resource == PLURAL
        and not review.sub_resource  # status writes never carry our spec default
        and review.object is not None
    )


def _defaulting_patch(obj: Mapping[str, Any], polling_interval: str) -> list[PatchOperation]:
    """The JSON Patch that sets the interval and the annotation on `obj`.

    Written out rather than diffed (``jsonpatch.make_patch``): the admission path is latency
    first, and these few ``add`` operations (which also replace a null) are all a diff would find.
    A missing or null ``spec``, ``metadata`` or ``annotations`` is created whole.
    """
    operations: list[PatchOperation] = []
    spec = obj.get("spec")
    if isinstance(spec, Mapping):
        operations.append({"op": "add", "path": "/spec/pollingInterval", "value": polling_interval})
    else:
        operations.append({"op": "add", "path": "/spec", "value": {"pollingInterval": polling_interval}})
    metadata = obj.get("metadata")
    annotation = {DEFAULTED_ANNOTATION: "true"}
    if metadata is None:
        operations.append({"op": "add", "path": "/metadata", "value": {"annotations": annotation}})
    elif isinstance(metadata, Mapping):
        annotations = metadata.get("annotations")
        if annotations is None:
            operations.append({"op": "add", "path": "/metadata/annotations", "value": annotation})
        elif isinstance(annotations, Mapping) and annotations.get(DEFAULTED_ANNOTATION) != "true":
            path = "/metadata/annotations/" + jsonpointer.escape(DEFAULTED_ANNOTATION)
            operations.append({"op": "add", "path": path, "value": "true"})
    # Malformed metadata or annotations are left alone: the API server rejects them anyway.
    return cast(list[PatchOperation], jsonpatch.JsonPatch(operations).patch)


def _carries_defaulted_annotation(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return isinstance(annotations, Mapping) and annotations.get(DEFAULTED_ANNOTATION) == "true"


def _short_interval_warning(value: str, seconds: float, polling_interval: str) -> str:
    shown = '"0" (Fleet\'s 15s default)' if seconds == 0 else value
    return (
        f"pollingInterval {shown} is redundant in webhook mode; "
        f"webhooks trigger syncs, {polling_interval} polling is enough"
    )


def _polling_disabled_warning(require_signature: bool) -> str:
    if require_signature:
        return (
            "disablePolling without a webhook secret: deliveries are refused (--require-signature), "
            "so it will not sync"
        )
    return (
        "disablePolling without a webhook secret: deliveries are unauthenticated; "
        "set spec.webhookSecret or gitjob-webhook"
    )


def mutate_gitrepo(
    review: Review,
    *,
    webhook_mode: str,
    global_secret_exists: bool,
    polling_interval: str = "1h",
    require_signature: bool = False,
) -> Decision:
    """Default ``spec.pollingInterval`` of a GitRepo in webhook mode; never deny.

    This webhook runs with ``failurePolicy: Ignore`` and only ever allows: the CRD, not
    us, validates the interval. ``dryRun`` needs no special case, as nothing here has a
    side effect. Raises `ValueError` only for a bad ``webhook_mode`` or ``polling_interval``
    (configuration, which `Settings` checks at start-up).
    """
    if webhook_mode not in WEBHOOK_MODES:
        raise ValueError(f"webhook mode must be one of {', '.join(WEBHOOK_MODES)}, not {webhook_mode!r}")
    default_seconds = parse_go_duration(polling_interval)
    if not _is_gitrepo_write(review):
        return Decision(allowed=True, reasons=("not-a-gitrepo-write",), audit={"decision": "skipped"})
    obj = cast(Mapping[str, Any], review.object)
    raw_spec = obj.get("spec")
    if raw_spec is not None and not isinstance(raw_spec, Mapping):
        # The CRD schema rejects this object later; adding a field to it would hide that.
        return Decision(allowed=True, reasons=("malformed-spec",), audit={"decision": "unchanged"})
    spec: Mapping[str, Any] = raw_spec or {}
    mode = resolve_webhook_mode(spec, webhook_mode=webhook_mode, global_secret_exists=global_secret_exists)
    audit: dict[str, str] = {"webhookMode": mode.source}
    reasons: list[str] = []
    warnings: list[str] = []

    polling_disabled = spec.get("disablePolling") is True
    if polling_disabled and not global_secret_exists and not _has_webhook_secret(spec):
        reasons.append("polling-disabled-without-secret")
        warnings.append(_polling_disabled_warning(require_signature))

    if not mode.active:
        audit["decision"] = "unchanged"
        return Decision(
            allowed=True, warnings=tuple(warnings), reasons=("webhook-mode-off", *reasons), audit=audit
        )

    interval = spec.get("pollingInterval")
    if interval is None:
        audit.update(decision="defaulted", pollingInterval=polling_interval)
        return Decision(
            allowed=True,
            patch=tuple(_defaulting_patch(obj, polling_interval)),
            warnings=tuple(warnings),
            reasons=("defaulted-polling-interval", *reasons),
            audit=audit,
        )

    audit.update(decision="unchanged", pollingInterval=str(interval)[:64])
    try:
        seconds = parse_go_duration(interval) if isinstance(interval, str) else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:  # Go accepts a sign; the CRD's pattern does not
        # The CRD's own validation rejects it with a better message than ours could be.
        reasons.insert(0, "invalid-polling-interval")
    else:
        effective = FLEET_DEFAULT_POLLING_SECONDS if seconds == 0 else seconds
        # Our own default never counts as short, or reinvocation would warn about it.
        if not polling_disabled and effective < min(REDUNDANT_POLLING_SECONDS, default_seconds):
            reasons.insert(0, "short-polling-interval")
            warnings.insert(0, _short_interval_warning(cast(str, interval), seconds, polling_interval))
        else:
            ours = _carries_defaulted_annotation(obj) and interval == polling_interval
            reasons.insert(0, "already-defaulted" if ours else "explicit-polling-interval")
    return Decision(allowed=True, warnings=tuple(warnings), reasons=tuple(reasons), audit=audit)
