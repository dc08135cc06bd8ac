"""Bitbucket Cloud deliveries (`X-Event-Key`, `X-Hook-UUID`, optional `X-Hub-Signature` HMAC)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from controller.providers.base import EventKind, Headers, PushEvent, RefChange, TooLarge, Verification
from controller.providers.payloads import (
    MAX_REF_CHANGES,
    UNTRUSTED_PARSE_BUDGET,
    JsonObject,
    check_parse_budget,
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
from controller.providers.signatures import hmac_signature, secret_key, token

__all__ = ["BITBUCKET", "BitbucketCloud"]

_REF_PREFIXES = {"branch": "refs/heads/", "tag": "refs/tags/", "annotated_tag": "refs/tags/"}
# Bitbucket Server's "Test connection" event; Bitbucket Cloud has no event of that name, and
# the Server ping body has no `eventKey` to tell it apart by.
_SERVER_ONLY_EVENTS = frozenset({"diagnostics:ping"})


def _has_cloud_body(body: bytes) -> bool:
    """Bitbucket Server bodies carry a top-level `eventKey`, Cloud ones never do.

    This runs before any signature is checked, so the body is parsed only within the budget of an
    unauthenticated one; a body too costly to parse is taken for Server's (Cloud always sends
    `X-Hook-UUID`), whose own parse then refuses it.
    """
    if b'"eventKey"' not in body:
        return True
    try:
        check_parse_budget(body, UNTRUSTED_PARSE_BUDGET)
        payload = json.loads(body)
    except (TooLarge, ValueError, RecursionError):
        return False
    return isinstance(payload, dict) and "eventKey" not in payload


def _full_ref(state: JsonObject, path: str) -> str:
    # Cloud names refs bare (`main`) with a type; Mercurial-era types (named_branch, bookmark)
    # have no git ref.
    prefix = _REF_PREFIXES.get(str_at(state, "type", path))
    name = str_at(state, "name", path)
    return f"{prefix}{name}" if prefix and name else ""


def _changes(payload: JsonObject) -> tuple[RefChange, ...]:
    changes = []
    for path, change in objects_in(object_at(payload, "push"), "changes", "push", limit=MAX_REF_CHANGES):
        new = object_at(change, "new", path)
        if new:
            ref = _full_ref(new, f"{path}.new")
            target = object_at(new, "target", f"{path}.new")
            commit = new_commit(str_at(target, "hash", f"{path}.new.target"), f"{path}.new.target.hash")
        else:
            # `new: null` is a deletion of the ref named by `old`.
            ref = _full_ref(object_at(change, "old", path), f"{path}.old")
            commit = ""
        if ref:
            changes.append(RefChange(ref=ref, commit=commit))
    return tuple(changes)


def _urls(payload: JsonObject) -> tuple[str, ...]:
    links = object_at(object_at(payload, "repository"), "links", "repository")
    html = object_at(links, "html", "repository.links")
    return unique_urls(str_at(html, "href", "repository.links.html"))


@dataclass(frozen=True)
class BitbucketCloud:
    """Bitbucket Cloud (bitbucket.org) webhooks."""

    name: str = "bitbucket"
    title: str = "Bitbucket Cloud"
    identified_by: str = "X-Hook-UUID (or X-Event-Key with a Bitbucket Cloud body)"
    delivery_headers: tuple[str, ...] = ("x-request-uuid",)
    secret_keys: tuple[str, ...] = ("bitbucket",)
    signature: str = "HMAC-SHA256 in X-Hub-Signature when a secret is set in Bitbucket, else the hook UUID"
    where_to_set: str = "the repository → Repository settings → Webhooks → your hook → Edit → Secret"
    whsec_keys: tuple[str, ...] = ()
    key_pairs: tuple[tuple[str, ...], ...] = ()
    unauthenticated_allowed: bool = True
    any_host: bool = False
    proof: str = "signature"
    """What the delivery carries that a key must match, for messages."""
    owned_hosts: tuple[str, ...] = ("bitbucket.org",)
    key_aliases: tuple[tuple[str, str], ...] = (("bitbucketcloud", "bitbucket"),)
    nicknames: tuple[str, ...] = ()

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """`X-Hook-UUID`, or `X-Event-Key` with a body that is not Bitbucket Server's."""
        if present(headers, "x-hook-uuid"):
            return True
        return (
            present(headers, "x-event-key")
            and header(headers, "x-event-key").strip() not in _SERVER_ONLY_EVENTS
            and _has_cloud_body(body)
        )

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """HMAC-SHA256 in `X-Hub-Signature` when sent, else `X-Hook-UUID` equals the key `bitbucket`."""
        key = secret_key(secret, "bitbucket")
        if key is None:
            return Verification.NO_KEY
        signature = header(headers, "x-hub-signature")
        if signature:
            return hmac_signature(signature, prefix="sha256=", algorithm="sha256", key=key, body=body)
        return token(header(headers, "x-hook-uuid"), key)

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """`repo:push` → PUSH with every changed ref; anything else → OTHER."""
        payload = decode_body(headers, body, form_allowed=False)
        event = header(headers, "x-event-key")
        kind = EventKind.PUSH if event == "repo:push" else EventKind.OTHER
        return PushEvent(
            provider=self.name,
            event=event,
            kind=kind,
            delivery_id=first_header(headers, self.delivery_headers),
            repo_urls=_urls(payload),
            changes=_changes(payload) if kind is EventKind.PUSH else (),
        )


BITBUCKET = BitbucketCloud()
"""The Bitbucket Cloud provider."""
