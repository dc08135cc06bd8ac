"""Defaulting of Fleet GitRepos: in webhook mode, a GitRepo without a polling interval gets one.

Fleet's documentation promises that "if you configured the webhook the polling interval
will be automatically adjusted to 1 hour". Fleet does it by writing the spec from its
receiver; we do it at admission instead, set-if-absent, so the value is visible at once,
does not fight GitOps tools on every push, and is idempotent under reinvocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import jsonpointer

from controller.fleet.durations import parse_go_duration
from controller.admission.decisions import Decision
from controller.admission.reviews import Review
from controller.admission.wire import PatchOperation
from controller.fleet.gitrepos import DEFAULTED_ANNOTATION, GROUP, PLURAL
from controller.fleet.webhook_mode import WEBHOOK_MODES, resolve_webhook_mode

__all__ = ["FLEET_DEFAULT_POLLING_SECONDS", "REDUNDANT_POLLING_SECONDS", "mutate_gitrepo"]

FLEET_DEFAULT_POLLING_SECONDS: Final = 15.0
"""What Fleet polls at when ``spec.pollingInterval`` is null or ``"0"``."""

REDUNDANT_POLLING_SECONDS: Final = 300.0
"""In webhook mode an explicit interval below this (or below our default) earns a warning."""


def _webhook_secret(spec: Mapping[str, Any]) -> str:
    secret = spec.get("webhookSecret")
    return secret if isinstance(secret, str) else ""


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
    return operations


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

    This webhook runs with ``failurePolicy: Ignore`` and only ever allows: an interval Fleet
    cannot read gets a warning, not a denial. ``dryRun`` needs no special case, as nothing here has a
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
    mode = resolve_webhook_mode(_webhook_secret(spec), webhook_mode=webhook_mode,
                                global_secret_exists=global_secret_exists)
    notes = _Notes(audit={"webhookMode": mode.source})
    if spec.get("disablePolling") is True and not global_secret_exists and not _webhook_secret(spec):
        notes.add("polling-disabled-without-secret", _polling_disabled_warning(require_signature))
    if not mode.active:
        notes.audit["decision"] = "unchanged"
        return notes.decision("webhook-mode-off")
    interval = spec.get("pollingInterval")
    if interval is None:
        notes.audit.update(decision="defaulted", pollingInterval=polling_interval)
        return notes.decision("defaulted-polling-interval", patch=_defaulting_patch(obj, polling_interval))
    notes.audit.update(decision="unchanged", pollingInterval=str(interval)[:64])
    return _judge_explicit_interval(obj, interval, spec.get("disablePolling") is True, polling_interval,
                                    default_seconds, notes)


@dataclass
class _Notes:
    """What a GitRepo review collects on its way to a decision: warnings, reasons, audit."""

    audit: dict[str, str]
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, reason: str, warning: str) -> None:
        self.reasons.append(reason)
        self.warnings.append(warning)

    def decision(self, reason: str, warning: str = "", patch: list[PatchOperation] | None = None) -> Decision:
        """Allow, with ``reason`` (and ``warning``) first."""
        warnings = ([warning] if warning else []) + self.warnings
        return Decision(allowed=True, patch=tuple(patch or ()), warnings=tuple(warnings),
                        reasons=(reason, *self.reasons), audit=self.audit)


def _judge_explicit_interval(obj: Mapping[str, Any], interval: object, polling_disabled: bool,
                             polling_interval: str, default_seconds: float, notes: _Notes) -> Decision:
    """A GitRepo that sets its own interval keeps it; a short one in webhook mode earns a warning."""
    try:
        seconds = parse_go_duration(interval) if isinstance(interval, str) else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:  # Go accepts a sign; Fleet's reconciler does not
        # Allowed (this webhook never denies), but the stored GitRepo would not poll as meant.
        shown = repr(interval)[:24] + ("…" if len(repr(interval)) > 24 else "")
        return notes.decision("invalid-polling-interval", f"spec.pollingInterval {shown} is not a Go "
                                                          "duration Fleet can use, such as 1h or 30m")
    effective = FLEET_DEFAULT_POLLING_SECONDS if seconds == 0 else seconds
    # Our own default never counts as short, or reinvocation would warn about it.
    if not polling_disabled and effective < min(REDUNDANT_POLLING_SECONDS, default_seconds):
        return notes.decision("short-polling-interval",
                              _short_interval_warning(cast(str, interval), seconds, polling_interval))
    ours = _carries_defaulted_annotation(obj) and interval == polling_interval
    return notes.decision("already-defaulted" if ours else "explicit-polling-interval")
