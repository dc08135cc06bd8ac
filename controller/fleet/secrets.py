"""The webhook Secrets: the global one's name, reading a Secret's data as the API server does, and
the keys of a rotation in progress.

The offline store, the Kubernetes store and the admission webhook all decode Secret data with
:func:`decode_data`, so they agree on what a Secret holds and on which values are unreadable.

Rotation: any key may have a ``<key>.previous`` companion, the value it had before, accepted until
the time in the Secret's annotation :data:`PREVIOUS_EXPIRY_ANNOTATION` so that deliveries the
provider still signs with the old value are not lost while its settings are updated.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

__all__ = ["CONTROLLER_NAMESPACE", "GLOBAL_SECRET", "MAX_OVERLAP", "PREVIOUS_EXPIRY_ANNOTATION",
           "PREVIOUS_SUFFIX", "SecretData", "WebhookSecret", "decode_data", "parse_expiry", "utc_now",
           "webhook_secret"]

PREVIOUS_SUFFIX: Final = ".previous"
"""``github.previous``: the value ``github`` had before a rotation."""

PREVIOUS_EXPIRY_ANNOTATION: Final = "gitjob.fleet.cattle.io/previous-keys-expire"
"""When the ``.previous`` keys stop counting (RFC 3339)."""

MAX_OVERLAP: Final = timedelta(days=30)
"""The longest a rotation may keep an old value valid."""

GLOBAL_SECRET: Final = "gitjob-webhook"
"""The global webhook Secret's name, in the controller namespace (Fleet's name for it)."""

CONTROLLER_NAMESPACE: Final = "cattle-fleet-system"
"""Where Fleet's controller runs, and with it the global Secret (``--namespace``)."""


@dataclass(frozen=True)
class SecretData:
    """A Secret's decoded values, and the keys whose values could not be decoded (with why)."""

    values: Mapping[str, bytes]
    bad: Mapping[str, str] = field(default_factory=dict)
    malformed: tuple[str, ...] = ()
    """Sections that are not maps at all (``data``, ``stringData``)."""


def decode_data(obj: Mapping[str, Any]) -> SecretData:
    """``data`` (base64) merged with ``stringData`` (text), ``stringData`` winning, as the API server does.

    Never raises: an undecodable value is reported in ``bad`` with the reason, never with the value.
    """
    values: dict[str, bytes] = {}
    bad: dict[str, str] = {}
    malformed: list[str] = []
    data = obj.get("data")
    if data is not None and not isinstance(data, Mapping):
        malformed.append("data")
        data = None
    for key, encoded in (data or {}).items():
        try:
            if not isinstance(encoded, str):
                raise ValueError
            values[str(key)] = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            bad[str(key)] = "is not valid base64 (data values must be base64; or put the text in stringData)"
    string_data = obj.get("stringData")
    if string_data is not None and not isinstance(string_data, Mapping):
        malformed.append("stringData")
        string_data = None
    for key, text in (string_data or {}).items():
        bad.pop(str(key), None)
        if not isinstance(text, str):
            bad[str(key)] = "is not a string (stringData values are text)"
            values.pop(str(key), None)
            continue
        try:
            values[str(key)] = text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (JSON "\ud800") is no text a provider could sign with.
            bad[str(key)] = "is not valid UTF-8 text"
            values.pop(str(key), None)
    return SecretData(values, bad, tuple(malformed))


class WebhookSecret(Mapping[str, bytes]):
    """A webhook Secret's current keys (it is a mapping of them), its previous keys (suffix stripped)
    and until when those count."""

    def __init__(self, current: Mapping[str, bytes], previous: Mapping[str, bytes] | None = None,
                 previous_expires: datetime | None = None) -> None:
        self._current = dict(current)
        self.previous: Mapping[str, bytes] = dict(previous or {})
        self.previous_expires = previous_expires

    def __getitem__(self, key: str) -> bytes:
        return self._current[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def __repr__(self) -> str:
        # Key names only: a value must never reach a log line or a test report.
        return f"WebhookSecret(keys={sorted(self._current)}, previous={sorted(self.previous)})"

    def previous_until(self, now: datetime) -> Mapping[str, bytes] | None:
        """The previous keys while they count (an expiry in the future), else None."""
        if self.previous and self.previous_expires is not None and now < self.previous_expires:
            return self.previous
        return None


def parse_expiry(text: object) -> datetime | None:
    """An RFC 3339 time (``2026-12-01T12:00:00Z``) as an aware datetime, or None when it is not one."""
    if not isinstance(text, str) or "T" not in text or len(text) > 64:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def webhook_secret(obj: Mapping[str, Any]) -> WebhookSecret:
    """A Secret object as the receiver uses it: current keys, previous keys and their expiry.

    Undecodable values are left out (:func:`decode_data` reports them; the stores log them).
    """
    decoded = decode_data(obj)
    current = {key: value for key, value in decoded.values.items() if not key.endswith(PREVIOUS_SUFFIX)}
    previous = {key[:-len(PREVIOUS_SUFFIX)]: value for key, value in decoded.values.items()
                if key.endswith(PREVIOUS_SUFFIX)}
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    expiry = annotations.get(PREVIOUS_EXPIRY_ANNOTATION) if isinstance(annotations, Mapping) else None
    return WebhookSecret(current, previous, parse_expiry(expiry))


def utc_now() -> datetime:
    """Now, aware, in UTC (the one clock rotation expiries are compared with)."""
    return datetime.now(timezone.utc)
