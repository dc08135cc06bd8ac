"""Constant-time checks of HMAC signatures, shared tokens and secret keys.

Every comparison uses `hmac.compare_digest`. Header values are attacker-controlled, so their
shape is validated before anything is sliced or compared, and no value makes these raise.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from controller.providers.base import Verification, header_bytes

__all__ = ["hmac_signature", "secret_key", "token"]

_LOWER_HEX = frozenset("0123456789abcdef")
_HEX_LENGTH = {"sha1": 40, "sha256": 64}


def secret_key(secret: Mapping[str, bytes], name: str) -> bytes | None:
    """The key's bytes, or None when the key is missing or empty (an empty key never verifies)."""
    value = secret.get(name)
    return value if value else None


def hmac_signature(value: str, *, prefix: str, algorithm: str, key: bytes, body: bytes) -> Verification:
    """Check `<prefix><lower-case hex HMAC of body>`; the algorithm comes from the header name,
    never from the value.

    Upper-case hex fails, as it does in Fleet and in the providers' own format.
    """
    if not value:
        return Verification.MISSING_SIGNATURE
    if not value.startswith(prefix):
        return Verification.FAILED
    digest = value[len(prefix):]
    if len(digest) != _HEX_LENGTH[algorithm] or not _LOWER_HEX.issuperset(digest):
        return Verification.FAILED
    expected = hmac.new(key, body, algorithm).hexdigest()
    return Verification.VERIFIED if hmac.compare_digest(expected, digest) else Verification.FAILED


def token(value: str, key: bytes) -> Verification:
    """Check a plain shared token (GitLab token, Bitbucket hook UUID) against the key."""
    if not value:
        return Verification.MISSING_SIGNATURE
    if hmac.compare_digest(header_bytes(value), key):
        return Verification.VERIFIED
    return Verification.FAILED
