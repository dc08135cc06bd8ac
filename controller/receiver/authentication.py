"""Which secrets apply to a delivery, and whether the delivery verifies against them.

Precedence as in Fleet: a GitRepo's ``spec.webhookSecret`` (a Secret in its own namespace), else
the global ``gitjob-webhook`` Secret of the controller namespace. A GitRepo whose global Secret
does not exist has no secret: deliveries for it are accepted unauthenticated (logged and counted)
unless ``--require-signature`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from controller.fleet.gitrepos import GitRepo
from controller.providers.base import Headers, Provider, Verification
from controller.fleet.secrets import GLOBAL_SECRET

ReadSecret = Callable[[str, str], Mapping[str, bytes] | None]


@dataclass(frozen=True, order=True)
class SecretRef:
    """A Secret by namespace and name."""

    namespace: str
    name: str
    per_gitrepo: bool = False

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def secret_for(gitrepo: GitRepo, controller_namespace: str) -> SecretRef:
    """The Secret whose keys authenticate deliveries for this GitRepo."""
    if gitrepo.webhook_secret:
        return SecretRef(gitrepo.namespace, gitrepo.webhook_secret, per_gitrepo=True)
    return SecretRef(controller_namespace, GLOBAL_SECRET)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a delivery against one Secret."""

    secret: SecretRef
    result: Verification | None   # None: the Secret does not exist
    applies: bool                 # False for an absent global Secret: then no secret applies

    @property
    def verified(self) -> bool:
        """The delivery is authentic for this Secret."""
        return self.result is Verification.VERIFIED

    def problem(self, provider: Provider) -> str:
        """Why it did not verify, in words safe to send back (no values, no per-GitRepo names)."""
        keys = " and ".join(f"'{key}'" for key in provider.secret_keys)
        whose = "the GitRepo's webhookSecret" if self.secret.per_gitrepo else "the gitjob-webhook Secret"
        if self.result is None:
            return f"{whose} does not exist"
        if self.result is Verification.MISSING_SIGNATURE:
            return f"the delivery carries no signature or token, but {whose} has a {keys} key"
        if self.result is Verification.NO_KEY:
            return f"{whose} has no (non-empty) {keys} key for {provider.name} deliveries"
        return f"the signature does not match the {keys} key of {whose}"


def check(provider: Provider, headers: Headers, body: bytes, secrets: Iterable[SecretRef],
          read_secret: ReadSecret) -> dict[SecretRef, Verdict]:
    """Verify the delivery against each distinct Secret (each once)."""
    verdicts: dict[SecretRef, Verdict] = {}
    for ref in secrets:
        if ref in verdicts:
            continue
        data = read_secret(ref.namespace, ref.name)
        if data is None:
            verdicts[ref] = Verdict(ref, None, applies=ref.per_gitrepo)
        else:
            verdicts[ref] = Verdict(ref, provider.verify(headers, body, data), applies=True)
    return verdicts
