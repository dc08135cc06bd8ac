"""Git provider deliveries: detect the sender, verify it, parse it into a `PushEvent`.

`PROVIDERS` is the detection order; `detect` walks it and returns the first provider that
recognises a delivery.
"""

from __future__ import annotations

from controller.providers.azure_devops import AZURE_DEVOPS
from controller.providers.base import Headers, Provider
from controller.providers.bitbucket import BITBUCKET
from controller.providers.bitbucket_server import BITBUCKET_SERVER
from controller.providers.forgejo import FORGEJO
from controller.providers.gitea import GITEA
from controller.providers.github import GITHUB
from controller.providers.gitlab import GITLAB
from controller.providers.gogs import GOGS

__all__ = ["PROVIDERS", "detect"]

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
)
"""Every provider, in detection order."""


def detect(headers: Headers, body: bytes) -> Provider | None:
    """The first provider in `PROVIDERS` that recognises the delivery, or None for an unknown sender."""
    return next((provider for provider in PROVIDERS if provider.recognises(headers, body)), None)
