"""The contract every Git provider module fulfils: values, errors and the `Provider` protocol.

A provider module recognises its deliveries by their headers, verifies them against the
decoded `gitjob-webhook` Secret data, and parses them into a frozen `PushEvent`. Nothing
here performs I/O or imports a web framework.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EventKind",
    "Headers",
    "MalformedDelivery",
    "Provider",
    "PushEvent",
    "RefChange",
    "TooLarge",
    "UnsupportedContentType",
    "Verification",
    "header_bytes",
    "lower_headers",
]

Headers = Mapping[str, str]
"""Request headers with lower-cased names (build them with `lower_headers`)."""

_BRANCH_PREFIX = "refs/heads/"
_TAG_PREFIX = "refs/tags/"


def lower_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the headers keyed by lower-cased name; repeated headers are joined with ", ".

    Joining (as RFC 9110 allows) rather than keeping one value means a delivery that sends a
    signature header twice can never smuggle a second value past verification: the joined
    value has no valid signature shape and fails.
    """
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def header_bytes(value: str) -> bytes:
    """Return the raw bytes of a header value as the WSGI server decoded it.

    PEP 3333 hands header values over as latin-1 decoded text, so encoding back to latin-1
    recovers exactly the bytes the provider sent; text outside latin-1 cannot come from a
    WSGI server and is encoded as UTF-8 so that nothing here ever raises.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


class EventKind(enum.Enum):
    """What a delivery means for GitRepos: a push to act on, a ping, or anything else."""

    PUSH = "push"
    PING = "ping"
    OTHER = "other"


@dataclass(frozen=True)
class RefChange:
    """One ref a push moved: its full name and the commit it now points at."""

    ref: str
    """Full ref as sent, e.g. ``refs/heads/main`` or ``refs/tags/v1.0.0``."""
    commit: str
    """New commit SHA, 40 or 64 lower-case hex; empty when the ref was deleted."""

    @property
    def branch(self) -> str | None:
        """The branch name for an exact ``refs/heads/`` ref, else None."""
        return _strip_prefix(self.ref, _BRANCH_PREFIX)

    @property
    def tag(self) -> str | None:
        """The tag name for an exact ``refs/tags/`` ref, else None."""
        return _strip_prefix(self.ref, _TAG_PREFIX)

    @property
    def deleted(self) -> bool:
        """True when the push removed the ref (no new commit): such a change patches nothing."""
        return not self.commit


def _strip_prefix(ref: str, prefix: str) -> str | None:
    if ref.startswith(prefix) and len(ref) > len(prefix):
        return ref[len(prefix):]
    return None


@dataclass(frozen=True)
class PushEvent:
    """A parsed delivery: who sent it, what kind it is, which repository and refs it names."""

    provider: str
    """Provider name, as `Provider.name`."""
    event: str
    """The provider's event name as sent (``push``, ``Push Hook``, ``repo:refs_changed``, ``git.push``)."""
    kind: EventKind
    """PUSH, PING or OTHER."""
    delivery_id: str
    """The provider's delivery id (header, or the body id for Azure DevOps); empty if none."""
    repo_urls: tuple[str, ...]
    """Every repository URL the payload offers (web, HTTP clone, SSH clone), raw, de-duplicated."""
    changes: tuple[RefChange, ...]
    """Every ref the push changed, in payload order; empty for pings and other events."""


class MalformedDelivery(Exception):
    """The body cannot be read as the provider's payload (not JSON, wrong field type, empty).

    The message names what is wrong (a JSON path, a field) and never echoes header values.
    The receiver answers 400.
    """


class TooLarge(Exception):
    """The delivery asks for more work than the receiver does for one delivery (ref changes, parsing).

    The receiver answers 413; the message says which limit was reached.
    """


class UnsupportedContentType(Exception):
    """The delivery's Content-Type is not one this provider sends; the receiver answers 415."""


class Verification(enum.Enum):
    """Outcome of checking a delivery's signature or token against one secret."""

    VERIFIED = "verified"
    FAILED = "failed"
    MISSING_SIGNATURE = "missing-signature"
    NO_KEY = "no-key"
    STALE_TIMESTAMP = "stale-timestamp"
    """A Standard Webhooks timestamp more than five minutes from now: a replay, or a clock far off."""
    NO_V1_SIGNATURE = "no-v1-signature"
    """A Standard Webhooks signature header without any ``v1,`` entry."""


class Provider(Protocol):
    """One Git provider: recognise its deliveries, verify them, parse them.

    Attributes are read-only properties so that implementations can be frozen dataclasses.
    """

    @property
    def name(self) -> str:
        """The provider name used in `PushEvent.provider`, ``explain --provider`` and metrics."""
        ...

    @property
    def title(self) -> str:
        """The product's name as people write it, for messages (``Bitbucket Cloud``)."""
        ...

    @property
    def identified_by(self) -> str:
        """The header(s) that make a delivery this provider's, as sent, for messages."""
        ...

    @property
    def delivery_headers(self) -> tuple[str, ...]:
        """Lower-cased headers carrying the delivery id, first sent wins."""
        ...

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """Keys of the webhook Secret this provider verifies with."""
        ...

    @property
    def where_to_set(self) -> str:
        """Where an operator sets the webhook's secret at the provider, for rotation's instructions."""
        ...

    @property
    def whsec_keys(self) -> tuple[str, ...]:
        """Keys holding a Standard Webhooks secret (``whsec_`` and base64 of 24 to 64 bytes)."""
        ...

    @property
    def key_pairs(self) -> tuple[tuple[str, ...], ...]:
        """Keys that only work together (Azure DevOps' user name and password)."""
        ...

    @property
    def unauthenticated_allowed(self) -> bool:
        """Whether a delivery may pass unauthenticated where no secret applies (never for the
        generic trigger: it has no provider behind it to vouch for it)."""
        ...

    @property
    def any_host(self) -> bool:
        """Whether its deliveries may speak for repositories on another provider's SaaS host (the
        generic trigger's: a CI job or a mirror names the repository it built)."""
        ...

    @property
    def proof(self) -> str:
        """What a delivery carries that a key of the Secret must match (``signature``), for messages."""
        ...

    @property
    def signature(self) -> str:
        """How a delivery is authenticated, in words, for messages and documentation."""
        ...

    @property
    def key_aliases(self) -> tuple[tuple[str, str], ...]:
        """Words operators write for one of its keys, squashed (no separators, lower case) → the key."""
        ...

    @property
    def owned_hosts(self) -> tuple[str, ...]:
        """The SaaS hosts only this provider serves (as in repository keys): a delivery from any other
        provider never speaks for a repository there."""
        ...

    @property
    def nicknames(self) -> tuple[str, ...]:
        """Other names of the product, squashed, that point an operator at its keys."""
        ...

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """True when the delivery comes from this provider; cheap and never raises."""
        ...

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """Check the delivery against decoded Secret data, in constant time, never raising."""
        ...

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """Parse the delivery; raises only `MalformedDelivery` or `UnsupportedContentType`."""
        ...
