"""Git provider deliveries: the registry of providers, and every table derived from it.

Each provider module declares everything about its provider (name, identifying and delivery-id
headers, Secret keys, signature scheme) and implements recognise, verify and parse. `PROVIDERS`
is the detection order; the receiver, ``explain``, the admission webhook and the CLI read the
derived tables below, so a new provider is a new module here and one line in `PROVIDERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from controller.providers.azure_devops import AZURE_DEVOPS
from controller.providers.base import Headers, Provider
from controller.providers.bitbucket import BITBUCKET
from controller.providers.bitbucket_server import BITBUCKET_SERVER
from controller.providers.forgejo import FORGEJO
from controller.providers.generic import GENERIC
from controller.providers.gitea import GITEA
from controller.providers.github import GITHUB
from controller.providers.gitlab import GITLAB
from controller.providers.gogs import GOGS

__all__ = [
    "DELIVERY_ID_HEADERS",
    "HOST_OWNERS",
    "KEY_PAIRS",
    "KEY_ALIASES",
    "NAMES",
    "PROVIDERS",
    "SECRET_KEYS",
    "WHSEC_KEYS",
    "by_name",
    "detect",
    "identifying_headers",
    "providers_of_key",
    "speaks_for",
]

PROVIDERS: tuple[Provider, ...] = (
    # Forks send their ancestors' headers too (Forgejo → Gitea → Gogs → GitHub), so the most
    # specific sender is asked first.
    FORGEJO,
    GITEA,
    GOGS,
    GITHUB,
    GITLAB,
    # Both Bitbucket products send X-Event-Key; Cloud is told apart by X-Hook-UUID or its body.
    BITBUCKET,
    BITBUCKET_SERVER,
    AZURE_DEVOPS,
    # Recognised by a signature alone: only once no provider's own header is there.
    GENERIC,
)
"""Every provider, in detection order."""

NAMES: Final = tuple(sorted(provider.name for provider in PROVIDERS))
"""Provider names, sorted: the choices of ``--provider``."""

SECRET_KEYS: Final = tuple(sorted({key for provider in PROVIDERS for key in provider.secret_keys}))
"""Every key a webhook Secret may hold, sorted."""

DELIVERY_ID_HEADERS: Final = tuple(dict.fromkeys(
    name for provider in PROVIDERS for name in provider.delivery_headers))
"""Every header that carries a delivery id, in detection order, so a rejected delivery's log has it."""

WHSEC_KEYS: Final = frozenset(key for provider in PROVIDERS for key in provider.whsec_keys)
"""Keys whose value is a Standard Webhooks secret (``whsec_…``)."""

KEY_PAIRS: Final = tuple(pair for provider in PROVIDERS for pair in provider.key_pairs)
"""Keys that only work together."""

KEY_ALIASES: Final[Mapping[str, str]] = {
    alias: key for provider in PROVIDERS for alias, key in provider.key_aliases}
"""Squashed words operators write for a key → the key."""


HOST_OWNERS: Final[Mapping[str, Provider]] = {
    host: provider for provider in PROVIDERS for host in provider.owned_hosts}
"""SaaS host → the one provider whose deliveries may speak for repositories there."""


def speaks_for(provider: Provider, host: str) -> bool:
    """Whether a delivery from ``provider`` may concern a repository on ``host``: the host is the
    provider's own SaaS host, or no provider's (self-hosted)."""
    owner = HOST_OWNERS.get(host)
    return owner is None or owner is provider or provider.any_host


def by_name(name: str) -> Provider | None:
    """The provider of that name, or None."""
    return next((provider for provider in PROVIDERS if provider.name == name), None)


def providers_of_key(key: str) -> tuple[Provider, ...]:
    """The providers that verify with ``key``, oldest first (Gogs before its forks)."""
    return tuple(provider for provider in PROVIDERS[::-1] if key in provider.secret_keys)


def identifying_headers() -> str:
    """The headers that identify a sender, for the answer to an unknown one."""
    return ", ".join(f"{provider.identified_by} ({provider.title})" for provider in PROVIDERS)


def detect(headers: Headers, body: bytes) -> Provider | None:
    """The first provider in `PROVIDERS` that recognises the delivery, or None for an unknown sender."""
    return next((provider for provider in PROVIDERS if provider.recognises(headers, body)), None)
