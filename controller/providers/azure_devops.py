"""Azure DevOps service hooks (`X-Vss-*` headers, HTTP Basic auth, event type in the body)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from controller.fleet.urls import AZURE_HOST
from controller.providers.base import EventKind, Headers, PushEvent, RefChange, Verification, header_bytes
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
from controller.providers.signatures import secret_key

__all__ = ["AZURE_DEVOPS", "AzureDevOps"]

_PUSH_EVENT = "git.push"


def _basic_credentials(authorization: str) -> tuple[bytes, bytes] | None:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(header_bytes(encoded.strip()), validate=True)
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(b":")
    return (username, password) if colon else None


def _changes(resource: JsonObject) -> tuple[RefChange, ...]:
    changes = []
    for path, update in objects_in(resource, "refUpdates", "resource", limit=MAX_REF_CHANGES):
        ref = str_at(update, "name", path)
        if ref:
            commit = new_commit(str_at(update, "newObjectId", path), f"{path}.newObjectId")
            changes.append(RefChange(ref=ref, commit=commit))
    return tuple(changes)


def _urls(resource: JsonObject) -> tuple[str, ...]:
    repository = object_at(resource, "repository", "resource")
    path = "resource.repository"
    return unique_urls(
        str_at(repository, "remoteUrl", path),
        str_at(repository, "sshUrl", path),
        str_at(repository, "webUrl", path),
    )


@dataclass(frozen=True)
class AzureDevOps:
    """Azure DevOps Services and Server service hooks ("Web Hooks" consumer)."""

    name: str = "azure-devops"
    title: str = "Azure DevOps"
    identified_by: str = "X-Vss-ActivityId or X-Vss-SubscriptionId"
    delivery_headers: tuple[str, ...] = ("x-vss-activityid",)
    secret_keys: tuple[str, ...] = ("azure-username", "azure-password")
    signature: str = "HTTP Basic authentication (user name and password set on the service hook)"
    where_to_set: str = ("the project → Project settings → Service hooks → your subscription → "
                         "Basic authentication password")
    whsec_keys: tuple[str, ...] = ()
    key_pairs: tuple[tuple[str, ...], ...] = (("azure-username", "azure-password"),)
    unauthenticated_allowed: bool = True
    any_host: bool = False
    proof: str = "Basic authentication"
    """What the delivery carries that a key must match, for messages."""
    owned_hosts: tuple[str, ...] = (AZURE_HOST,)
    key_aliases: tuple[tuple[str, str], ...] = (
        ("azureuser", "azure-username"), ("azureusername", "azure-username"),
        ("azurepassword", "azure-password"), ("azurepass", "azure-password"))
    # Former names of the service (Visual Studio Team Services).
    nicknames: tuple[str, ...] = ("azure", "vsts")

    def recognises(self, headers: Headers, body: bytes) -> bool:
        """A delivery carrying `X-Vss-ActivityId` or `X-Vss-SubscriptionId`."""
        return present(headers, "x-vss-activityid") or present(headers, "x-vss-subscriptionid")

    def verify(self, headers: Headers, body: bytes, secret: Mapping[str, bytes]) -> Verification:
        """HTTP Basic `Authorization` against the keys `azure-username` and `azure-password`."""
        username = secret_key(secret, "azure-username")
        password = secret_key(secret, "azure-password")
        if username is None or password is None:
            return Verification.NO_KEY
        authorization = header(headers, "authorization")
        if not authorization:
            return Verification.MISSING_SIGNATURE
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return Verification.FAILED
        # Both halves are always compared so the timing does not reveal which one was wrong.
        user_ok = hmac.compare_digest(credentials[0], username)
        password_ok = hmac.compare_digest(credentials[1], password)
        return Verification.VERIFIED if user_ok and password_ok else Verification.FAILED

    def parse(self, headers: Headers, body: bytes) -> PushEvent:
        """Body `eventType` `git.push` → PUSH with every ref update; any other type → OTHER."""
        payload = decode_body(headers, body, form_allowed=False)
        event = str_at(payload, "eventType")
        kind = EventKind.PUSH if event == _PUSH_EVENT else EventKind.OTHER
        resource = object_at(payload, "resource")
        return PushEvent(
            provider=self.name,
            event=event,
            kind=kind,
            delivery_id=str_at(payload, "id") or first_header(headers, self.delivery_headers),
            repo_urls=_urls(resource),
            changes=_changes(resource) if kind is EventKind.PUSH else (),
        )


AZURE_DEVOPS = AzureDevOps()
"""The Azure DevOps provider."""
