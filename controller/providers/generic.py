"""The generic trigger: a signed delivery from anything that is not a Git host (a CI job, a mirror,
a Gerrit ``ref-updated`` hook), sent by ``gitjob-webhook trigger`` or any Standard Webhooks client.

Recognised by a Standard Webhooks signature (``webhook-signature``) without any provider's header,
or by ``X-Signature: sha256=<hex>`` (an HMAC-SHA256 of the raw body, as Flux's generic-hmac
receivers take it). The body names the repository, the ref and the commit::

    {"repository": "https://git.example.com/org/repo", "ref": "refs/heads/main", "commit": "<sha>"}

and ``{"event": "ping"}`` asks for a ping. Key ``generic`` (a ``whsec_`` value; for ``X-Signature``
its text is the HMAC key as it stands). A generic delivery is never accepted unauthenticated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.providers import standard_webhooks
from controller.providers.base import (EventKind, Headers, MalformedDelivery, PushEvent, RefChange,
                                       Verification)
from controller.fleet.urls import repo_key
from controller.providers.payloads import decode_body, first_header, header, new_commit, present, str_at
from controller.providers.signatures import hmac_signature, secret_key

__all__ = ["GENERIC", "Generic"]

_EVENTS = {"push": EventKind.PUSH, "ping": EventKind.PING}


@dataclass(frozen=True)
class Generic:
    """The generic signed trigger."""

    name: str = "generic"
    title: str = "the generic trigger"
    identified_by: str = "webhook-signature (Standard Webhooks) or X-Signature"
    delivery_headers: tuple[str, ...] = ("webhook-id",)
    secret_keys: tuple[str, ...] = ("generic",)
    signature: str = "Standard Webhooks signature (webhook-signature), or HMAC-SHA256 in X-Signature"
    where_to_set: str = ("every sender of generic triggers: GITJOB_WEBHOOK_TRIGGER_SECRET or the file "
                         "given to --secret-file")
    whsec_keys: tuple[str, ...] = ("generic",)
    key_pairs: tuple[tuple[str, ...], ...] = ()
    unauthenticated_allowed: bool = False
    any_host: bool = True
    proof: str = "signature"
    """What the delivery carries that a key must match, for messages."""
    owned_hosts: tuple[str, ...] = ()
    key_aliases: tuple[tuple[str, str], ...] = ()
    nicknames: tuple[str, ...] = ()

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """A Standard Webhooks or ``X-Signature`` signature (asked last: every provider before it)."""
        return standard_webhooks.signed(headers) or present(headers, "x-signature")

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """The Standard Webhooks signature with the key ``generic``, or else ``X-Signature``."""
        value = secret_key(secret, "generic")
        if value is None:
            return Verification.NO_KEY
        if standard_webhooks.signed(headers):
            key = standard_webhooks.decode_key(value)
            return Verification.NO_KEY if key is None else standard_webhooks.verify(headers, body, key)
        return hmac_signature(header(headers, "x-signature"), prefix="sha256=", algorithm="sha256",
                              key=value, body=body)

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """``event`` push (the default) or ping; the repository, ref and commit of a push."""
        payload = decode_body(headers, body, form_allowed=False)
        event = str_at(payload, "event") or "push"
        kind = _EVENTS.get(event, EventKind.OTHER)
        repository = str_at(payload, "repository")
        changes: tuple[RefChange, ...] = ()
        if kind is EventKind.PUSH:
            ref, commit = str_at(payload, "ref"), str_at(payload, "commit")
            if not (repository and ref.startswith("refs/") and commit):
                raise MalformedDelivery('a generic push names "repository", "ref" (refs/heads/… or '
                                        'refs/tags/…) and "commit"')
            if repo_key(repository) is None:
                # Nothing could match it: say so rather than answer 200 with nothing patched.
                raise MalformedDelivery(f'"repository" {repository[:80]!r} is not a clone or web URL '
                                        '(https://host/org/repo, ssh://…, or git@host:org/repo)')
            changes = (RefChange(ref=ref, commit=new_commit(commit, "commit")),)
        return PushEvent(
            provider=self.name,
            event=event,
            kind=kind,
            delivery_id=first_header(headers, self.delivery_headers),
            repo_urls=(repository,) if repository else (),
            changes=changes,
        )


GENERIC = Generic()
"""The generic trigger."""
