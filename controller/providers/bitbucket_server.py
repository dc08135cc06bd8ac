"""Bitbucket Server / Data Center deliveries (`X-Event-Key`, `X-Hub-Signature: sha256=…`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.providers.base import EventKind, Headers, PushEvent, RefChange, Verification
from controller.providers.payloads import (
    MAX_REF_CHANGES,
    JsonObject,
    decode_body,
    first_header,
    header,
    new_commit,
    object_at,
    objects_in,
    present,
    str_at,
    unique_urls,
)
from controller.providers.signatures import hmac_signature, secret_key

__all__ = ["BITBUCKET_SERVER", "BitbucketServer"]

# A mirror's "repository synchronized" event has the same `changes[]` as a push.
_PUSH_EVENTS = frozenset({"repo:refs_changed", "mirror:repo_synchronized"})
_PING_EVENTS = frozenset({"diagnostics:ping"})


def _changes(payload: JsonObject) -> tuple[RefChange, ...]:
    changes = []
    for path, change in objects_in(payload, "changes", limit=MAX_REF_CHANGES):
        # Fleet reads only `refId`; some senders (and Fleet's own tests) give only `ref.id`.
        ref = str_at(change, "refId", path) or str_at(object_at(change, "ref", path), "id", f"{path}.ref")
        deleted = str_at(change, "type", path) == "DELETE"
        commit = "" if deleted else new_commit(str_at(change, "toHash", path), f"{path}.toHash")
        if ref:
            changes.append(RefChange(ref=ref, commit=commit))
    return tuple(changes)


def _urls(payload: JsonObject) -> tuple[str, ...]:
    links = object_at(object_at(payload, "repository"), "links", "repository")
    hrefs = [
        str_at(link, "href", path)
        for name in ("clone", "self")
        for path, link in objects_in(links, name, "repository.links")
    ]
    return unique_urls(*hrefs)


@dataclass(frozen=True)
class BitbucketServer:
    """Bitbucket Server and Data Center webhooks."""

    name: str = "bitbucket-server"
    title: str = "Bitbucket Server"
    identified_by: str = "X-Event-Key"
    delivery_headers: tuple[str, ...] = ("x-request-id",)
    secret_keys: tuple[str, ...] = ("bitbucket-server",)
    signature: str = "HMAC-SHA256 of the body in X-Hub-Signature"
    # Bitbucket Server's other names: Data Center, and Stash before 2015.
    where_to_set: str = "the repository → Repository settings → Webhooks → your hook → Secret"
    whsec_keys: tuple[str, ...] = ()
    key_pairs: tuple[tuple[str, ...], ...] = ()
    unauthenticated_allowed: bool = True
    any_host: bool = False
    proof: str = "signature"
    """What the delivery carries that a key must match, for messages."""
    owned_hosts: tuple[str, ...] = ()
    key_aliases: tuple[tuple[str, str], ...] = (
        ("bitbucketdatacenter", "bitbucket-server"), ("bitbucketdc", "bitbucket-server"),
        ("stash", "bitbucket-server"))
    nicknames: tuple[str, ...] = ()

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """A delivery carrying `X-Event-Key` (asked after Bitbucket Cloud, which sends it too)."""
        return present(headers, "x-event-key")

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """HMAC-SHA256 of the body in `X-Hub-Signature: sha256=<hex>`, key `bitbucket-server`."""
        key = secret_key(secret, "bitbucket-server")
        if key is None:
            return Verification.NO_KEY
        signature = header(headers, "x-hub-signature")
        return hmac_signature(signature, prefix="sha256=", algorithm="sha256", key=key, body=body)

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """`repo:refs_changed` and `mirror:repo_synchronized` → PUSH, `diagnostics:ping` → PING."""
        payload = decode_body(headers, body, form_allowed=False)
        event = header(headers, "x-event-key")
        if event in _PUSH_EVENTS:
            kind = EventKind.PUSH
        elif event in _PING_EVENTS:
            kind = EventKind.PING
        else:
            kind = EventKind.OTHER
        return PushEvent(
            provider=self.name,
            event=event,
            kind=kind,
            delivery_id=first_header(headers, self.delivery_headers),
            repo_urls=_urls(payload),
            changes=_changes(payload) if kind is EventKind.PUSH else (),
        )


BITBUCKET_SERVER = BitbucketServer()
"""The Bitbucket Server / Data Center provider."""
