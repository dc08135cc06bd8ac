"""The webhook Secrets: the global one's name, and reading a Secret's data as the API server does.

The offline store, the Kubernetes store and the admission webhook all decode Secret data with
:func:`decode_data`, so they agree on what a Secret holds and on which values are unreadable.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["CONTROLLER_NAMESPACE", "GLOBAL_SECRET", "SecretData", "decode_data"]

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
