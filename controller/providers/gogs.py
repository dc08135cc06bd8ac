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
from controller.providers.payloads import decode_body, header, present
from controller.providers.signatures import hmac_signature, secret_key

__all__ = ["GOGS", "GogsFamily"]


@dataclass(frozen=True)
class GogsFamily:
    """A Gogs-style provider: GitHub's push shape, a bare hex HMAC-SHA256 signature, key `gogs`."""

    name: str
    event_header: str
    """The header that identifies this provider and names the event."""
    signature_headers: tuple[str, ...]
    """Signature headers, own first; the first one sent is the one checked."""
    delivery_headers: tuple[str, ...]
    """Delivery id headers, own first."""
    secret_keys: tuple[str, ...] = ("gogs",)

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """A delivery carrying this provider's own event header."""
        return present(headers, self.event_header)

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """HMAC-SHA256 of the body as bare lower-case hex, with Secret key `gogs` (as Fleet)."""
        key = secret_key(secret, "gogs")
        if key is None:
            return Verification.NO_KEY
        signature = _first_sent(headers, self.signature_headers)
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
            delivery_id=_first_sent(headers, self.delivery_headers),
            repo_urls=repository_urls(payload),
            changes=push_changes(payload) if kind is EventKind.PUSH else (),
        )


def _first_sent(headers: Headers, names: tuple[str, ...]) -> str:
    return next((header(headers, name) for name in names if header(headers, name)), "")


GOGS = GogsFamily(
    name="gogs",
    event_header="x-gogs-event",
    signature_headers=("x-gogs-signature",),
    delivery_headers=("x-gogs-delivery",),
)
"""The Gogs provider."""
