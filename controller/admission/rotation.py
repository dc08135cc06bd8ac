"""The webhook Secret's rules beyond one key at a time: Standard Webhooks values, and rotations.

A rotation keeps the old value as ``<key>.previous`` until the time in the annotation
``gitjob.fleet.cattle.io/previous-keys-expire``. A previous key without that annotation would count
forever, one far in the future for too long: so the annotation is required, and its time must be
ahead and at most 30 days away whenever a write sets or changes the previous keys. A write that
leaves a rotation as it was is allowed after the expiry, with a warning to clean up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.fleet.secrets import (MAX_OVERLAP, PREVIOUS_EXPIRY_ANNOTATION, PREVIOUS_SUFFIX, decode_data,
                                      parse_expiry)
from controller.providers import KEY_PAIRS, WHSEC_KEYS
from controller.providers.standard_webhooks import KEY_PREFIX, MAX_KEY_BYTES, MIN_KEY_BYTES, decode_key

__all__ = ["base_key", "rotation_problems", "whsec_problem"]

Problems = dict[str, list[str]]


def base_key(key: str) -> str:
    """``github`` for ``github.previous``; the key itself otherwise."""
    return key[:-len(PREVIOUS_SUFFIX)] if key.endswith(PREVIOUS_SUFFIX) else key


def whsec_problem(key: str, value: bytes) -> str | None:
    """Why a Standard Webhooks key's value is unusable, without the value; None when it is fine."""
    if base_key(key) not in WHSEC_KEYS:
        return None
    decoded = decode_key(value)
    if decoded is None:
        return (f'is not a Standard Webhooks secret ({KEY_PREFIX.decode()} followed by base64; '
                f'`gitjob-webhook secret rotate --provider …` makes one)')
    if not MIN_KEY_BYTES <= len(decoded) <= MAX_KEY_BYTES:
        return (f"decodes to {len(decoded)} bytes; a Standard Webhooks secret is {MIN_KEY_BYTES} to "
                f"{MAX_KEY_BYTES} random bytes")
    return None


def _annotation(obj: Mapping[str, Any] | None) -> object:
    metadata = obj.get("metadata") if obj is not None else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations.get(PREVIOUS_EXPIRY_ANNOTATION) if isinstance(annotations, Mapping) else None


def _previous(obj: Mapping[str, Any] | None) -> dict[str, bytes]:
    if obj is None:
        return {}
    return {key: value for key, value in decode_data(obj).values.items() if key.endswith(PREVIOUS_SUFFIX)}


def rotation_problems(obj: Mapping[str, Any], old: Mapping[str, Any] | None, keys: list[str],
                      judged: int, now: datetime) -> tuple[Problems, list[str], list[str]]:
    """(problems by key, reason ids, warnings) of the Secret's previous keys and their expiry; keys
    past the first ``judged`` count for the expiry rules but get no problems of their own."""
    problems: Problems = {}
    reasons: list[str] = []
    warnings: list[str] = []
    held = set(keys)
    previous = [key for key in keys if key.endswith(PREVIOUS_SUFFIX)]
    for key in (key for key in keys[:judged] if key.endswith(PREVIOUS_SUFFIX)):
        if base_key(key) not in held:
            reasons.append("previous-without-current")
            problems.setdefault(key, []).append(f'has no "{base_key(key)}" beside it (a rotation keeps the '
                                                f"new value there and the old one here)")
    for pair in KEY_PAIRS:
        present = [key + PREVIOUS_SUFFIX for key in pair if key + PREVIOUS_SUFFIX in held]
        for key in present if len(present) != len(pair) else ():
            reasons.append("incomplete-pair")
            missing = [other + PREVIOUS_SUFFIX for other in pair if other + PREVIOUS_SUFFIX not in present]
            problems.setdefault(key, []).append(f'has no "{missing[0]}" beside it '
                                                '(the pair rotates together)')
    if not previous:
        return problems, reasons, warnings
    raw = _annotation(obj)
    expiry = parse_expiry(raw)
    rotation_changed = old is None or _previous(old) != _previous(obj) or _annotation(old) != raw
    where = f"annotation {PREVIOUS_EXPIRY_ANNOTATION}"
    if raw is None:
        reasons.append("previous-without-expiry")
        problems.setdefault("", []).append(
            f"previous keys need the {where}: when they stop counting (RFC 3339, at most "
            f"{MAX_OVERLAP.days} days ahead, e.g. `gitjob-webhook secret rotate` sets it)")
    elif expiry is None:
        reasons.append("bad-expiry")
        problems.setdefault("", []).append(f"the {where} is not an RFC 3339 time "
                                           "such as 2026-12-01T12:00:00Z")
    elif expiry <= now:
        if rotation_changed:
            reasons.append("expiry-passed")
            problems.setdefault("", []).append(f"the {where} ({raw}) has passed: set a time ahead, or drop "
                                               f"the previous keys")
        else:
            reasons.append("previous-keys-expired")
            warnings.append(f"previous keys expired at {raw} and are ignored: remove them")
    elif expiry - now > MAX_OVERLAP and rotation_changed:
        reasons.append("expiry-too-far")
        problems.setdefault("", []).append(
            f"the {where} ({raw}) is more than {MAX_OVERLAP.days} days ahead: an old value should not "
            f"stay valid that long")
    return problems, reasons, warnings
