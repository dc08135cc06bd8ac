"""GitLab deliveries (`X-Gitlab-Event`), project and system hooks.

Authenticated by a shared token in `X-Gitlab-Token` (key ``gitlab``, sent in clear), or by GitLab's
signing token, a Standard Webhooks signature over the body (key ``gitlab-signing``, ``whsec_…``),
or both: every key the Secret holds must be satisfied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.providers.base import EventKind, Headers, PushEvent, RefChange, Verification
from controller.providers.payloads import (
    JsonObject,
    decode_body,
    first_header,
    header,
    new_commit,
    object_at,
    present,
    str_at,
    unique_urls,
)
from controller.providers import standard_webhooks
from controller.providers.signatures import secret_key, token

__all__ = ["GITLAB", "GitLab"]

_PUSH_EVENTS = frozenset({"Push Hook", "Tag Push Hook"})
_SYSTEM_HOOK = "System Hook"
_SYSTEM_PUSH_KINDS = frozenset({"push", "tag_push"})


def _is_push(event: str, payload: JsonObject) -> bool:
    if event in _PUSH_EVENTS:
        return True
    # System hooks share one header value for every event; the body says which one it is.
    return event == _SYSTEM_HOOK and bool(
        {str_at(payload, "object_kind"), str_at(payload, "event_name")} & _SYSTEM_PUSH_KINDS
    )


def _changes(payload: JsonObject) -> tuple[RefChange, ...]:
    ref = str_at(payload, "ref")
    if not ref:
        return ()
    after = str_at(payload, "after")
    checkout_sha = str_at(payload, "checkout_sha")
    # GitLab marks a deletion with a null checkout_sha; for annotated tags checkout_sha is the
    # commit while `after` is the tag object, so checkout_sha wins when it is given.
    null_checkout = "checkout_sha" in payload and payload["checkout_sha"] is None
    deleted = null_checkout or (bool(after) and after.strip("0") == "")
    commit = "" if deleted else new_commit(checkout_sha or after, "checkout_sha" if checkout_sha else "after")
    return (RefChange(ref=ref, commit=commit),)


def _urls(payload: JsonObject) -> tuple[str, ...]:
    project = object_at(payload, "project")
    urls = unique_urls(
        str_at(project, "web_url", "project"),
        str_at(project, "git_http_url", "project"),
        str_at(project, "git_ssh_url", "project"),
    )
    if urls:
        return urls
    # Older payloads and some system hooks only carry the deprecated `repository` object.
    repository = object_at(payload, "repository")
    return unique_urls(
        str_at(repository, "homepage", "repository"),
        str_at(repository, "git_http_url", "repository"),
        str_at(repository, "git_ssh_url", "repository"),
    )


@dataclass(frozen=True)
class GitLab:
    """GitLab.com and self-managed GitLab webhooks, including system hooks."""

    name: str = "gitlab"
    title: str = "GitLab"
    identified_by: str = "X-Gitlab-Event"
    # webhook-id is signed (with a signing token): the one to trust first.
    delivery_headers: tuple[str, ...] = ("webhook-id", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid")
    secret_keys: tuple[str, ...] = ("gitlab", "gitlab-signing")
    signature: str = ("Standard Webhooks signature (webhook-signature) with a signing token, and/or the "
                      "shared token in X-Gitlab-Token")
    where_to_set: str = ("the project (or group) → Settings → Webhooks → your hook → Secret token "
                         "(or Signing token)")
    whsec_keys: tuple[str, ...] = ("gitlab-signing",)
    key_pairs: tuple[tuple[str, ...], ...] = ()
    unauthenticated_allowed: bool = True
    any_host: bool = False
    proof: str = "signature or token"
    """What the delivery carries that a key must match, for messages."""
    owned_hosts: tuple[str, ...] = ("gitlab.com",)
    key_aliases: tuple[tuple[str, str], ...] = ()
    nicknames: tuple[str, ...] = ()

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """A delivery carrying `X-Gitlab-Event`."""
        return present(headers, "x-gitlab-event")

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """The signing token's signature (key `gitlab-signing`) and the shared token (key `gitlab`),
        each checked when the Secret has it."""
        signing = secret_key(secret, "gitlab-signing")
        shared = secret_key(secret, "gitlab")
        if signing is None and shared is None:
            return Verification.NO_KEY
        if signing is not None:
            key = standard_webhooks.decode_key(signing)
            if key is None:
                return Verification.NO_KEY   # not a whsec_ value: the admission webhook refuses those
            signed = standard_webhooks.verify(headers, body, key)
            if signed is not Verification.VERIFIED:
                return signed
        if shared is None:
            return Verification.VERIFIED
        return token(header(headers, "x-gitlab-token"), shared)

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """`Push Hook`, `Tag Push Hook` and push/tag-push system hooks → PUSH; anything else → OTHER."""
        payload = decode_body(headers, body, form_allowed=False)
        event = header(headers, "x-gitlab-event")
        kind = EventKind.PUSH if _is_push(event, payload) else EventKind.OTHER
        return PushEvent(
            provider=self.name,
            event=event,
            kind=kind,
            delivery_id=first_header(headers, self.delivery_headers),
            repo_urls=_urls(payload),
            changes=_changes(payload) if kind is EventKind.PUSH else (),
        )


GITLAB = GitLab()
"""The GitLab provider."""
