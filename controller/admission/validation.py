"""Validation of the global webhook Secret, ``gitjob-webhook`` in the controller namespace.

A wrong key name, a missing Azure half or a value with the trailing newline that
``kubectl create secret --from-file`` leaves makes every delivery fail verification, and
nobody notices until a push does not deploy. We refuse such a Secret at admission with one
message that names every problem and its fix. Secret values are read only to be checked:
they never reach a message, warning, reason or audit annotation.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Mapping
from typing import Any, Final

from controller.admission.reviews import Decision, Review

__all__ = ["ALLOWED_KEYS", "DENIAL_CODE", "PROVIDER_NAMES", "SECRET_NAME", "suggest_key", "validate_secret"]

ALLOWED_KEYS: Final = (
    "github",
    "gitlab",
    "bitbucket",
    "bitbucket-server",
    "gogs",
    "azure-username",
    "azure-password",
)
"""The keys the receiver reads, from Fleet's documentation table."""

SECRET_NAME: Final = "gitjob-webhook"
"""The global webhook Secret's name (in the controller namespace)."""

PROVIDER_NAMES: Final[Mapping[str, str]] = {
    "github": "GitHub",
    "gitlab": "GitLab",
    "bitbucket": "Bitbucket Cloud",
    "bitbucket-server": "Bitbucket Server",
    "gogs": "Gogs/Gitea",
    "azure-username": "Azure DevOps",
    "azure-password": "Azure DevOps",
}
"""Provider named in messages for each key."""

# 403 (Forbidden), as in the Kubernetes documentation's example, rather than 422: kubectl
# prints a 422 StatusReasonInvalid as 'The secrets "gitjob-webhook" is invalid' and drops the
# message unless it comes as field causes, so the operator would never see what to fix.
# With 403 kubectl prints 'Error from server (Forbidden): ... denied the request: <message>'.
DENIAL_CODE: Final = 403
"""HTTP status of a denial (StatusReasonForbidden)."""

_AZURE_PAIR: Final = ("azure-username", "azure-password")
_SEPARATORS = re.compile(r"[-_.\s]+")
_WHITESPACE: Final = b" \t\r\n\v\f"
_ALLOWED_LIST: Final = ", ".join(ALLOWED_KEYS)
# Words people append to a provider name: "github-token", "gitlab_webhook_secret".
_SUFFIX_WORDS: Final = ("token", "secret", "key", "webhook", "hmac", "hook", "password", "pass", "signature")
_AZURE_HINT: Final = 'Azure DevOps uses two keys, "azure-username" and "azure-password"'
_GITEA_HINT: Final = 'Gitea and Forgejo use the "gogs" key'
_ALIASES: Final[Mapping[str, str]] = {
    "bitbucketcloud": "bitbucket",
    "bitbucketserver": "bitbucket-server",
    "bitbucketdatacenter": "bitbucket-server",
    "bitbucketdc": "bitbucket-server",
    "stash": "bitbucket-server",  # Bitbucket Server's former name
    "azureuser": "azure-username",
    "azureusername": "azure-username",
    "azurepassword": "azure-password",
    "azurepass": "azure-password",
}


def suggest_key(key: str) -> str | None:
    """A hint for a key that is not allowed: ``did you mean "github"?`` or a sentence; None if no idea."""
    lowered = key.strip().lower()
    dashed = _SEPARATORS.sub("-", lowered).strip("-")
    squashed = dashed.replace("-", "")
    if dashed in ALLOWED_KEYS:
        return f'did you mean "{dashed}"?'
    for allowed in ALLOWED_KEYS:
        if squashed == allowed.replace("-", ""):
            return f'did you mean "{allowed}"?'
    if squashed in _ALIASES:
        return f'did you mean "{_ALIASES[squashed]}"?'
    if "gitea" in squashed or "forgejo" in squashed:
        return _GITEA_HINT
    if squashed.startswith(("azure", "vsts")):
        return _AZURE_HINT
    words = dashed.split("-")
    # Longest provider first, so "bitbucket-server-token" is not taken for "bitbucket".
    for allowed in sorted(ALLOWED_KEYS, key=len, reverse=True):
        head = allowed.split("-")
        rest = words[len(head):]  # fmt: skip
        if words[: len(head)] == head and all(word in _SUFFIX_WORDS for word in rest):
            return f'did you mean "{allowed}"? (the key is the provider name alone)'
    close = difflib.get_close_matches(dashed, ALLOWED_KEYS, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else None


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


def _effective_values(
    obj: Mapping[str, Any], problems: dict[str, list[str]], reasons: list[str]
) -> dict[str, bytes | str]:
    """Key → decoded value, or a str saying why it cannot be decoded; ``stringData`` wins over ``data``.

    That precedence is the API server's own when it merges ``stringData`` into ``data``.
    """
    values: dict[str, bytes | str] = {}
    data = obj.get("data")
    if data is not None and not isinstance(data, Mapping):
        reasons.append("malformed-data")
        problems.setdefault("", []).append("data is not a map of keys to base64 values")
        data = None
    for key, encoded in (data or {}).items():
        try:
            if not isinstance(encoded, str):
                raise ValueError
            values[key] = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            values[key] = "is not valid base64 (data values must be base64; or put the text in stringData)"
    # The API server folds stringData into data before admission, so this normally sees
    # data only; judging stringData too keeps a direct caller honest.
    string_data = obj.get("stringData")
    if string_data is not None and not isinstance(string_data, Mapping):
        reasons.append("malformed-data")
        problems.setdefault("", []).append("stringData is not a map of keys to strings")
        string_data = None
    for key, text in (string_data or {}).items():
        values[key] = (
            text.encode("utf-8") if isinstance(text, str) else "is not a string (stringData values are text)"
        )
    return values


def _key_names(obj: Mapping[str, Any] | None) -> set[str]:
    if obj is None:
        return set()
    names: set[str] = set()
    for field in ("data", "stringData"):
        section = obj.get(field)
        if isinstance(section, Mapping):
            names.update(key for key in section if isinstance(key, str))
    return names


def _problems(obj: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(problem sentences, reason ids, key names) for a Secret object."""
    per_key: dict[str, list[str]] = {}
    reasons: list[str] = []
    values = _effective_values(obj, per_key, reasons)
    keys = sorted(values)
    for key in keys:
        value = values[key]
        if key not in ALLOWED_KEYS:
            reasons.append("unknown-key")
            hint = suggest_key(key)
            per_key.setdefault(key, []).append("is not a provider key" + (f" ({hint})" if hint else ""))
        if isinstance(value, str):
            reasons.append("undecodable-value")
            per_key.setdefault(key, []).append(value)
            continue
        problem = _value_problem(value)
        if problem is not None:
            reasons.append(problem[0])
            per_key.setdefault(key, []).append(problem[1])
    for key, partner in (_AZURE_PAIR, _AZURE_PAIR[::-1]):
        if key in values and partner not in values:
            reasons.append("azure-incomplete")
            per_key.setdefault(key, []).append(
                f'has no "{partner}" beside it (Azure DevOps basic authentication needs both keys)'
            )
    sentences = [" ".join(per_key.pop("", []))] if "" in per_key else []
    sentences += [f"key {_quote(key)} " + " and ".join(per_key[key]) for key in sorted(per_key)]
    if not values and not sentences:
        reasons.append("no-keys")
        sentences.append(
            "it has no keys (add at least one provider key, e.g. --from-literal=github=<secret>)"
        )
    return sentences, list(dict.fromkeys(reasons)), keys


def _is_the_webhook_secret(review: Review, controller_namespace: str) -> bool:
    return (
        review.operation in ("CREATE", "UPDATE", "DELETE")
        and review.resource.group == ""
        and review.resource.resource == "secrets"
        and not review.sub_resource
        and review.namespace == controller_namespace
        and review.object_name == SECRET_NAME
    )


def _audit(decision: str, reasons: list[str], keys: list[str]) -> dict[str, str]:
    audit = {"decision": decision, "reasons": ",".join(reasons) or "valid", "keys": ",".join(keys)}
    return audit


def validate_secret(
    review: Review, *, controller_namespace: str, require_signature: bool = False
) -> Decision:
    """Judge a write to the global webhook Secret; every other Secret is allowed at once.

    CREATE/UPDATE of an invalid ``gitjob-webhook`` is denied (403) with one message naming
    every offending key, why, and the fix. DELETE, and an UPDATE that removes a provider
    key, are allowed with a warning about what deliveries will do next.
    """
    if not _is_the_webhook_secret(review, controller_namespace):
        return Decision(allowed=True, reasons=("not-the-webhook-secret",), audit={"decision": "skipped"})
    where = f"Secret {controller_namespace}/{SECRET_NAME}"
    if review.operation == "DELETE":
        consequence = (
            "will be refused (--require-signature)"
            if require_signature
            else "will be accepted unauthenticated"
        )
        keys = sorted(_key_names(review.old_object))
        return Decision(
            allowed=True,
            warnings=(
                f"Deleting {SECRET_NAME}: deliveries for GitRepos without spec.webhookSecret {consequence}",
            ),
            reasons=("secret-deleted",),
            audit=_audit("allowed", ["secret-deleted"], keys),
        )
    obj = review.object
    assert obj is not None  # parse_review guarantees an object for CREATE and UPDATE
    sentences, reasons, keys = _problems(obj)
    if sentences and review.operation == "UPDATE" and review.old_object is not None:
        # An edit that leaves the keys and values as they were (a label, a finalizer being
        # removed during deletion) must not be blocked by a Secret that predates this webhook.
        if _effective_values(review.old_object, {}, []) == _effective_values(obj, {}, []):
            return Decision(
                allowed=True,
                warnings=(
                    f"{SECRET_NAME} is still not a valid webhook secret; fix its keys ({', '.join(reasons)})",
                ),
                reasons=("unchanged-invalid-data", *reasons),
                audit=_audit("allowed", ["unchanged-invalid-data", *reasons], keys),
            )
    if sentences:
        message = (
            f"{where} is not a valid webhook secret: {'; '.join(sentences)}. Allowed keys: {_ALLOWED_LIST}."
        )
        return Decision(
            allowed=False,
            code=DENIAL_CODE,
            message=message,
            reasons=tuple(reasons),
            audit=_audit("denied", reasons, keys),
        )
    warnings: list[str] = []
    removed_reasons: list[str] = []
    if review.operation == "UPDATE":
        removed = sorted((_key_names(review.old_object) - set(keys)) & set(ALLOWED_KEYS))
        for key in removed:
            removed_reasons.append("key-removed")
            consequence = "will be refused" if require_signature else "will be accepted unauthenticated"
            warnings.append(
                f'Key "{key}" removed from {SECRET_NAME}: {PROVIDER_NAMES[key]} deliveries {consequence}'
            )
    reasons = list(dict.fromkeys(removed_reasons)) or ["valid"]
    return Decision(
        allowed=True, warnings=tuple(warnings), reasons=tuple(reasons), audit=_audit("allowed", reasons, keys)
    )
