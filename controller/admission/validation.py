"""Validation of the global webhook Secret, ``gitjob-webhook`` in the controller namespace.

A wrong key name, a missing Azure half or a value with the trailing newline that
``kubectl create secret --from-file`` leaves makes every delivery fail verification, and
nobody notices until a push does not deploy. We refuse such a Secret at admission with one
message that names every problem and its fix. Secret values are read only to be checked:
they never reach a message, warning, reason or audit annotation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from controller.admission.key_names import suggest_key
from controller.admission.rotation import base_key, rotation_problems, whsec_problem
from controller.admission.decisions import Decision
from controller.admission.reviews import Review
from controller.fleet.secrets import (GLOBAL_SECRET, PREVIOUS_EXPIRY_ANNOTATION, PREVIOUS_SUFFIX, decode_data,
                                      utc_now)
from controller.providers import PROVIDERS, SECRET_KEYS, providers_of_key

__all__ = ["DENIAL_CODE", "validate_secret"]

# 403 (Forbidden), as in the Kubernetes documentation's example, rather than 422: kubectl
# prints a 422 StatusReasonInvalid as 'The secrets "gitjob-webhook" is invalid' and drops the
# message unless it comes as field causes, so the operator would never see what to fix.
# With 403 kubectl prints 'Error from server (Forbidden): ... denied the request: <message>'.
DENIAL_CODE: Final = 403
"""HTTP status of a denial (StatusReasonForbidden)."""

MAX_KEYS_JUDGED: Final = 32
"""Keys judged (and named) per review; a webhook Secret has a handful."""

MAX_MESSAGE_CHARS: Final = 2000
"""A denial longer than this is cut: kubectl prints it on one line."""

_WHITESPACE: Final = b" \t\r\n\v\f"
_MEANT = re.compile(r'"([a-z-]+)"')
_ALLOWED_LIST: Final = ", ".join(SECRET_KEYS)
# Keys that only work together (Azure DevOps' user name and password).
_KEY_GROUPS: Final = tuple(pair for provider in PROVIDERS for pair in provider.key_pairs)


def _titles(key: str) -> str:
    """Who sends deliveries verified with ``key``: ``Gogs, Gitea and Forgejo``."""
    titles = [provider.title for provider in providers_of_key(key)]
    return titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]


def _quote(key: str) -> str:
    # Kubernetes restricts Secret keys to [-._a-zA-Z0-9]; repr-like quoting keeps a
    # malformed one from breaking the message anyway.
    shown = key if len(key) <= 64 else key[:63] + "…"
    return '"' + shown.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _value_problem(value: bytes) -> tuple[str, str] | None:
    """(reason id, explanation) for a bad value; the explanation never includes the value."""
    if not value:
        return "empty-value", "is empty (a webhook secret must be set in the provider and here)"
    if value.endswith(b"\n"):
        return "whitespace", (
            "ends with a newline (it was probably created with --from-file; "
            "recreate it with --from-literal or strip the newline)"
        )
    if value[-1] in _WHITESPACE:
        return "whitespace", "ends with whitespace (providers sign with the exact secret; strip it)"
    if value[0] in _WHITESPACE:
        return "whitespace", "starts with whitespace (providers sign with the exact secret; strip it)"
    return None


def _key_names(obj: Mapping[str, Any] | None) -> set[str]:
    if obj is None:
        return set()
    decoded = decode_data(obj)
    return set(decoded.values) | set(decoded.bad)


def _problems(obj: Mapping[str, Any], old: Mapping[str, Any] | None,
              now: datetime) -> tuple[list[str], list[str], list[str], list[str]]:
    """(problem sentences, reason ids, key names, warnings) for a Secret object."""
    decoded = decode_data(obj)
    per_key: dict[str, list[str]] = {}
    reasons: list[str] = []
    for section in decoded.malformed:
        reasons.append("malformed-data")
        what = "base64 values" if section == "data" else "strings"
        per_key.setdefault("", []).append(f"{section} is not a map of keys to {what}")
    keys = sorted(set(decoded.values) | set(decoded.bad))
    # A Secret is a few keys; judging (and suggesting fixes for) thousands would let one review cost
    # seconds of CPU on the API server's write path. The rest is counted, not judged.
    for key in keys[:MAX_KEYS_JUDGED]:
        if base_key(key) not in SECRET_KEYS:
            reasons.append("unknown-key")
            hint = suggest_key(base_key(key))
            if hint is not None and key != base_key(key):
                hint = _MEANT.sub(lambda meant: f'"{meant[1]}{PREVIOUS_SUFFIX}"', hint, count=1)
            per_key.setdefault(key, []).append("is not a provider key" + (f" ({hint})" if hint else ""))
        if key in decoded.bad:
            reasons.append("undecodable-value")
            per_key.setdefault(key, []).append(decoded.bad[key])
            continue
        problem = _value_problem(decoded.values[key])
        if problem is not None:
            reasons.append(problem[0])
            per_key.setdefault(key, []).append(problem[1])
        elif (whsec := whsec_problem(key, decoded.values[key])) is not None:
            reasons.append("not-a-standard-webhooks-secret")
            per_key.setdefault(key, []).append(whsec)
    _check_key_groups(set(keys), per_key, reasons)
    rotation, rotation_reasons, warnings = rotation_problems(obj, old, keys, MAX_KEYS_JUDGED, now)
    reasons += rotation_reasons
    for key, problems in rotation.items():
        per_key.setdefault(key, []).extend(problems)
    sentences = [" ".join(per_key.pop("", []))] if "" in per_key else []
    sentences += [f"key {_quote(key)} " + " and ".join(per_key[key]) for key in sorted(per_key)]
    if len(keys) > MAX_KEYS_JUDGED:
        reasons.append("too-many-keys")
        sentences.append(f"… and {len(keys) - MAX_KEYS_JUDGED} more keys not checked (a webhook Secret "
                         f"holds a few provider keys)")
    if not keys and not sentences:
        reasons.append("no-keys")
        sentences.append(
            "it has no keys (add at least one provider key, e.g. --from-literal=github=<secret>)"
        )
    return sentences, list(dict.fromkeys(reasons)), keys, warnings


def _check_key_groups(keys: set[str], per_key: dict[str, list[str]], reasons: list[str]) -> None:
    for group in _KEY_GROUPS:
        present = [key for key in group if key in keys]
        if not present or len(present) == len(group):
            continue
        title = _titles(group[0])
        for key in present:
            for partner in (other for other in group if other not in keys):
                reasons.append("incomplete-pair")
                per_key.setdefault(key, []).append(
                    f'has no "{partner}" beside it ({title} basic authentication needs both keys)')


def _is_the_webhook_secret(review: Review, controller_namespace: str) -> bool:
    return (
        review.operation in ("CREATE", "UPDATE", "DELETE")
        and review.resource.group == ""
        and review.resource.resource == "secrets"
        and not review.sub_resource
        and review.namespace == controller_namespace
        and review.object_name == GLOBAL_SECRET
    )


def _expiry_annotation(obj: Mapping[str, Any]) -> object:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations.get(PREVIOUS_EXPIRY_ANNOTATION) if isinstance(annotations, Mapping) else None


def _audit(decision: str, reasons: list[str], keys: list[str]) -> dict[str, str]:
    shown = ",".join(key if len(key) <= 64 else key[:63] + "…" for key in keys[:MAX_KEYS_JUDGED]) \
        + (",…" if len(keys) > MAX_KEYS_JUDGED else "")
    return {"decision": decision, "reasons": ",".join(reasons) or "valid", "keys": shown}


def _capped(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS - 1] + "…"


def _consequence(require_signature: bool) -> str:
    if require_signature:
        return "will be refused (--require-signature)"
    return "will be accepted unauthenticated"


def validate_secret(
    review: Review, *, controller_namespace: str, require_signature: bool = False,
    now: datetime | None = None,
) -> Decision:
    """Judge a write to the global webhook Secret; every other Secret is allowed at once.

    CREATE/UPDATE of an invalid ``gitjob-webhook`` is denied (403) with one message naming
    every offending key, why, and the fix. DELETE, and an UPDATE that removes a provider
    key, are allowed with a warning about what deliveries will do next.
    """
    if not _is_the_webhook_secret(review, controller_namespace):
        return Decision(allowed=True, reasons=("not-the-webhook-secret",), audit={"decision": "skipped"})
    if review.operation == "DELETE":
        return _deletion(review, require_signature)
    obj = review.object
    assert obj is not None  # parse_review guarantees an object for CREATE and UPDATE
    old = review.old_object if review.operation == "UPDATE" else None
    sentences, reasons, keys, warnings = _problems(obj, old, now or utc_now())
    if not sentences:
        return _accepted(review, keys, require_signature, warnings, reasons)
    if review.operation == "UPDATE" and review.old_object is not None \
            and decode_data(review.old_object) == decode_data(obj) \
            and _expiry_annotation(review.old_object) == _expiry_annotation(obj):
        # An edit that leaves the keys and values as they were (a label, a finalizer being
        # removed during deletion) must not be blocked by a Secret that predates this webhook.
        return Decision(
            allowed=True,
            warnings=(f"{GLOBAL_SECRET} is still not a valid webhook secret; "
                      f"fix its keys ({', '.join(reasons)})",),
            reasons=("unchanged-invalid-data", *reasons),
            audit=_audit("allowed", ["unchanged-invalid-data", *reasons], keys),
        )
    where = f"Secret {controller_namespace}/{GLOBAL_SECRET}"
    return Decision(
        allowed=False,
        code=DENIAL_CODE,
        message=_capped(f"{where} is not a valid webhook secret: {'; '.join(sentences)}. "
                        f"Allowed keys: {_ALLOWED_LIST}."),
        reasons=tuple(reasons),
        audit=_audit("denied", reasons, keys),
    )


def _deletion(review: Review, require_signature: bool) -> Decision:
    keys = sorted(_key_names(review.old_object))
    warning = (f"Deleting {GLOBAL_SECRET}: deliveries for GitRepos without spec.webhookSecret "
               f"{_consequence(require_signature)}")
    return Decision(allowed=True, warnings=(warning,), reasons=("secret-deleted",),
                    audit=_audit("allowed", ["secret-deleted"], keys))


def _accepted(review: Review, keys: list[str], require_signature: bool, warnings: list[str],
              noted: list[str]) -> Decision:
    """A valid Secret; an UPDATE that removes a provider key is warned about."""
    removed_warnings: list[str] = []
    if review.operation == "UPDATE":
        removed = sorted((_key_names(review.old_object) - set(keys)) & set(SECRET_KEYS))
        consequence = "will be refused" if require_signature else "will be accepted unauthenticated"
        removed_warnings = [f'Key "{key}" removed from {GLOBAL_SECRET}: {_titles(key)} deliveries '
                            f"{consequence}" for key in removed]
    reasons = (["key-removed"] if removed_warnings else []) + noted or ["valid"]
    return Decision(allowed=True, warnings=tuple(removed_warnings + warnings), reasons=tuple(reasons),
                    audit=_audit("allowed", reasons, keys))
