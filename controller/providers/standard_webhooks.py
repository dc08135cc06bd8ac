"""Standard Webhooks signatures (spec v1): GitLab's signing tokens and the generic trigger use them.

A delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``,
a space-separated list of ``v1,<base64 HMAC-SHA256>`` entries, any of which may match. The signed
content is ``{id}.{timestamp}.{raw body}``; the key is the base64-decoded part of a ``whsec_``
secret. A timestamp more than five minutes from now is refused, so a captured delivery cannot be
replayed later; within that window the receiver's duplicate memory catches it.

Written here rather than taken from the ``standardwebhooks`` package (1.1.0), which does not fit a
receiver facing the internet: it raises ``ValueError`` or ``binascii.Error`` instead of its own error
on a malformed signature entry, decodes the body as UTF-8 before verifying (a non-UTF-8 body raises),
accepts non-base64 secrets by ignoring the bad characters, and gives one error for every failure,
where ``explain`` must say whether the timestamp, the entries or the key were wrong. The tests check
these signatures against the npm implementation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from typing import Final

from controller.providers.base import Headers, Verification, header_bytes
from controller.providers.payloads import header, present

__all__ = ["KEY_PREFIX", "TOLERANCE_SECONDS", "decode_key", "sign", "signed", "verify"]

KEY_PREFIX: Final = b"whsec_"
TOLERANCE_SECONDS: Final = 5 * 60
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64
_MAX_ENTRIES: Final = 16
_ID, _TIMESTAMP, _SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
_SECONDS = re.compile(r"[0-9]{1,12}")   # ASCII digits only: str.isdigit() also takes "²"


def signed(headers: Headers) -> bool:
    """Whether the delivery carries a Standard Webhooks signature."""
    return present(headers, _SIGNATURE)


def decode_key(value: bytes) -> bytes | None:
    """The HMAC key of a ``whsec_<base64>`` secret, or None when it is not one."""
    if not value.startswith(KEY_PREFIX):
        return None
    try:
        return base64.b64decode(value[len(KEY_PREFIX):], validate=True) or None
    except (binascii.Error, ValueError):
        return None


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a message (the trigger command sends with it)."""
    return "v1," + _digest(key, message_id.encode(), str(timestamp).encode(), body).decode()


def _digest(key: bytes, message_id: bytes, stamp: bytes, body: bytes) -> bytes:
    return base64.b64encode(hmac.new(key, message_id + b"." + stamp + b"." + body, hashlib.sha256).digest())


def verify(headers: Headers, body: bytes, key: bytes, now: float | None = None) -> Verification:
    """Check the delivery against one key, in constant time; never raises."""
    message_id, stamp = header(headers, _ID), header(headers, _TIMESTAMP)
    signatures = header(headers, _SIGNATURE)
    if not (message_id and stamp and signatures):
        return Verification.MISSING_SIGNATURE
    if not _SECONDS.fullmatch(stamp):
        return Verification.FAILED
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > TOLERANCE_SECONDS:
        return Verification.STALE_TIMESTAMP
    entries = [entry[3:] for entry in signatures.split(" ")[:_MAX_ENTRIES] if entry.startswith("v1,")]
    if not entries:
        return Verification.NO_V1_SIGNATURE
    # The id and timestamp exactly as sent: they are part of what was signed.
    expected = _digest(key, header_bytes(message_id), header_bytes(stamp), body)
    # Every entry is compared (no early exit), so timing says nothing about which one matched.
    matched = [hmac.compare_digest(expected, entry.encode("latin-1", "replace")) for entry in entries]
    return Verification.VERIFIED if any(matched) else Verification.FAILED
