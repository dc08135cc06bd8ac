"""Gogs deliveries (`X-Gogs-Event`, `X-Gogs-Signature`), and the shape Gitea and Forgejo share.

Gitea forked Gogs and Forgejo forked Gitea; each sends its own headers plus its ancestors'
(a Gitea delivery carries `X-Gitea-*`, `X-Gogs-*` and even `X-GitHub-Event`). One class
describes the family; each fork is an instance naming its own headers first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.providers.base import EventKind, Headers, PushEvent, Verification
from controller.providers.github import push_changes, repository_urls
from controller.providers.payloads import decode_body, first_header, header, present
from controller.providers.signatures import hmac_signature, secret_key

__all__ = ["GOGS", "GogsFamily"]


@dataclass(frozen=True)
class GogsFamily:
    """A Gogs-style provider: GitHub's push shape, a bare hex HMAC-SHA256 signature, key `gogs`."""

    name: str
    title: str
    event_header: str
    """The header that identifies this provider and names the event."""
    signature_headers: tuple[str, ...]
    """Signature headers, own first; the first one sent is the one checked."""
    delivery_headers: tuple[str, ...]
    """Delivery id headers, own first."""
    secret_keys: tuple[str, ...] = ("gogs",)
    key_aliases: tuple[tuple[str, str], ...] = ()
    nicknames: tuple[str, ...] = ()
    owned_hosts: tuple[str, ...] = ()
    key_pairs: tuple[tuple[str, ...], ...] = ()
    whsec_keys: tuple[str, ...] = ()
    where_to_set: str = "the repository → Settings → Webhooks → your hook → Secret"
    unauthenticated_allowed: bool = True
    any_host: bool = False
    proof: str = "signature"
    """What the delivery carries that a key must match, for messages."""

    @property
    def identified_by(self) -> str:
        """Its own event header, as sent."""
        return "-".join(part.capitalize() for part in self.event_header.split("-"))

    @property
    def signature(self) -> str:
        """Bare hex HMAC-SHA256 of the body in the signature header."""
        return f"HMAC-SHA256 of the body as bare hex in {self.signature_headers[0].title()}"

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """A delivery carrying this provider's own event header."""
        return present(headers, self.event_header)

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """HMAC-SHA256 of the body as bare lower-case hex, with Secret key `gogs` (as Fleet)."""
        key = secret_key(secret, "gogs")
        if key is None:
            return Verification.NO_KEY
        signature = first_header(headers, self.signature_headers)
        return hmac_signature(signature, prefix="", algorithm="sha256", key=key, body=body)

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """`push` → PUSH, anything else → OTHER; JSON or form-encoded."""
        payload = decode_body(headers, body, form_allowed=True)
        event = header(headers, self.event_header)
        kind = EventKind.PUSH if event == "push" else EventKind.OTHER
        return PushEvent(
            provider=self.name,
            event=event,
            kind=kind,
            delivery_id=first_header(headers, self.delivery_headers),
            repo_urls=repository_urls(payload),
            changes=push_changes(payload) if kind is EventKind.PUSH else (),
        )


GOGS = GogsFamily(
    name="gogs",
    title="Gogs",
    event_header="x-gogs-event",
    signature_headers=("x-gogs-signature",),
    delivery_headers=("x-gogs-delivery",),
)
"""The Gogs provider."""
