"""What a webhook decided (`Decision`) and the one place an AdmissionReview response is built.

Nothing here does I/O or imports flask or kubernetes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from controller.admission.reviews import Review
from controller.admission.wire import (AdmissionResponse, AdmissionReviewResponse, PatchOperation,
                                       ResponseStatus)

__all__ = ["MAX_WARNING_CHARS", "Decision", "build_response"]

MAX_WARNING_CHARS: Final = 120
"""The admission API asks for warnings of at most 120 characters."""


# A qualified-name "name" part: the API server prefixes our keys with "<webhook>/" and
# silently drops annotations whose key is not a valid qualified name.
_AUDIT_KEY = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Decision:
    """What a webhook decided about one review; `build_response` turns it into JSON.

    ``reasons`` are short, stable ids (``"unknown-key"``, ``"defaulted-polling-interval"``)
    for metrics and logs; ``audit`` holds the audit annotations (keys without a prefix).
    """

    allowed: bool
    patch: tuple[PatchOperation, ...] = ()
    warnings: tuple[str, ...] = ()
    code: int | None = None
    message: str = ""
    reasons: tuple[str, ...] = ()
    audit: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        # Programming errors, caught in tests: the API server would reject such responses.
        if not self.allowed and self.patch:
            raise ValueError("a denial cannot carry a patch")
        if self.code is not None and not 400 <= self.code <= 599:
            raise ValueError(f"denial code {self.code} is not an HTTP error status")
        for key, value in self.audit.items():
            if not _AUDIT_KEY.match(key) or not isinstance(value, str):
                raise ValueError(f"audit annotation {key!r} needs a qualified-name key and a str value")


# --- the response ---------------------------------------------------------------------

# metav1.StatusReason for the codes a denial may carry; kubectl shows it, audit logs keep it.
_STATUS_REASONS: Final[Mapping[int, str]] = MappingProxyType(
    {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid"}
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_DEFAULT_DENIAL_CODE: Final = 403  # the code of the Kubernetes documentation's example


def _clean_warning(text: str) -> str:
    # Warnings travel as HTTP Warning headers: no control characters, and the API asks
    # for 120 characters at most, so cut with an ellipsis rather than lose the start.
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > MAX_WARNING_CHARS:
        text = text[: MAX_WARNING_CHARS - 1].rstrip() + "…"
    return text


def build_response(review: Review, decision: Decision, *, mutating: bool) -> AdmissionReviewResponse:
    """Build the AdmissionReview response for `decision`: the only place a response is made.

    Echoes ``apiVersion``, ``kind`` and ``uid``; a patch only for a mutating webhook that
    allowed the request (a validating response with a patch is rejected by the API server,
    so asking for one is a programming error and raises `ValueError`).
    """
    if decision.patch and not mutating:
        raise ValueError("a validating webhook must never return a patch")
    audit = {"decision": "allowed" if decision.allowed else "denied"}
    if decision.reasons:
        audit["reasons"] = ",".join(decision.reasons)
    audit.update(decision.audit)
    response: AdmissionResponse = {"uid": review.uid, "allowed": decision.allowed, "auditAnnotations": audit}
    if not decision.allowed:
        code = decision.code if decision.code is not None else _DEFAULT_DENIAL_CODE
        status: ResponseStatus = {
            "code": code,
            # An empty message would make kubectl print "denied the request without explanation".
            "message": decision.message or "denied by gitjob-webhook",
            "status": "Failure",
        }
        if code in _STATUS_REASONS:
            status["reason"] = _STATUS_REASONS[code]
        response["status"] = status
    if mutating and decision.patch:
        encoded = json.dumps(list(decision.patch), separators=(",", ":"), allow_nan=False).encode("utf-8")
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(encoded).decode("ascii")
    warnings = [cleaned for cleaned in dict.fromkeys(map(_clean_warning, decision.warnings)) if cleaned]
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}
