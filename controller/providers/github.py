"""GitHub and GitHub Enterprise deliveries (`X-GitHub-Event`, `X-Hub-Signature-256`).

The push payload shape defined here (`ref`, `after`, `repository.html_url/clone_url/ssh_url`)
is shared by Gogs, Gitea and Forgejo, which copied it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.providers.base import EventKind, Headers, PushEvent, RefChange, Verification
from controller.providers.payloads import (
    JsonObject,
    bool_at,
    decode_body,
    first_header,
    header,
    new_commit,
    object_at,
    present,
    str_at,
    unique_urls,
)
from controller.providers.signatures import hmac_signature, secret_key

__all__ = ["GITHUB", "GitHub", "push_changes", "repository_urls"]


def push_changes(payload: JsonObject) -> tuple[RefChange, ...]:
    """The single ref of a GitHub-style push; deletion when `deleted` or `after` is all zeros."""
    ref = str_at(payload, "ref")
    if not ref:
        return ()
    commit = "" if bool_at(payload, "deleted") else new_commit(str_at(payload, "after"), "after")
    return (RefChange(ref=ref, commit=commit),)


def repository_urls(payload: JsonObject) -> tuple[str, ...]:
    """Web, HTTP clone and SSH clone URLs of a GitHub-style `repository` object.

    `git_url` (`git://`) is left out: it names the same repository as `clone_url`, and the
    protocol is gone from GitHub.
    """
    repository = object_at(payload, "repository")
    return unique_urls(
        str_at(repository, "html_url", "repository"),
        str_at(repository, "clone_url", "repository"),
        str_at(repository, "ssh_url", "repository"),
    )


@dataclass(frozen=True)
class GitHub:
    """GitHub.com and GitHub Enterprise Server webhooks."""

    name: str = "github"
    title: str = "GitHub"
    identified_by: str = "X-GitHub-Event"
    delivery_headers: tuple[str, ...] = ("x-github-delivery",)
    secret_keys: tuple[str, ...] = ("github",)
    signature: str = "HMAC-SHA256 of the body in X-Hub-Signature-256 (SHA-1 X-Hub-Signature accepted alone)"
    where_to_set: str = "the repository (or organisation) → Settings → Webhooks → your hook → Secret"
    whsec_keys: tuple[str, ...] = ()
    key_pairs: tuple[tuple[str, ...], ...] = ()
    unauthenticated_allowed: bool = True
    any_host: bool = False
    proof: str = "signature"
    """What the delivery carries that a key must match, for messages."""
    owned_hosts: tuple[str, ...] = ("github.com",)
    key_aliases: tuple[tuple[str, str], ...] = ()
    nicknames: tuple[str, ...] = ()

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """A delivery carrying `X-GitHub-Event`."""
        return present(headers, "x-github-event")

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """HMAC-SHA256 in `X-Hub-Signature-256`; legacy SHA-1 `X-Hub-Signature` only without a SHA-256 one."""
        key = secret_key(secret, "github")
        if key is None:
            return Verification.NO_KEY
        if "x-hub-signature-256" in headers:   # sent, even empty: SHA-1 is no fallback then
            return hmac_signature(header(headers, "x-hub-signature-256"), prefix="sha256=",
                                  algorithm="sha256", key=key, body=body)
        sha1 = header(headers, "x-hub-signature")
        return hmac_signature(sha1, prefix="sha1=", algorithm="sha1", key=key, body=body)

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """`push` → PUSH, `ping` → PING, anything else → OTHER; JSON or form-encoded."""
        payload = decode_body(headers, body, form_allowed=True)
        event = header(headers, "x-github-event")
        kind = {"push": EventKind.PUSH, "ping": EventKind.PING}.get(event, EventKind.OTHER)
        return PushEvent(
            provider=self.name,
            event=event,
            kind=kind,
            delivery_id=first_header(headers, self.delivery_headers),
            repo_urls=repository_urls(payload),
            changes=push_changes(payload) if kind is EventKind.PUSH else (),
        )


GITHUB = GitHub()
"""The GitHub provider."""
