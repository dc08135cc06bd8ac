"""Which Secrets apply to a delivery, and whether the delivery verifies against them.

Precedence as in Fleet: a GitRepo's ``spec.webhookSecret`` (a Secret in its own namespace), else
the global ``gitjob-webhook`` Secret of the controller namespace. A GitRepo whose global Secret
does not exist has no secret: deliveries for it are accepted unauthenticated (logged and counted)
unless ``--require-signature`` is set. A Secret the store cannot read yet is *unknown*, never
absent: the delivery then waits (503).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.fleet.gitrepos import GitRepo
from controller.fleet.secrets import GLOBAL_SECRET, WebhookSecret, utc_now
from controller.logs import fields
from controller.providers.base import Headers, Provider, Verification
from controller.store import SecretUnknown

log = logging.getLogger("gitjob_webhook.receiver")

ReadSecret = Callable[[str, str], WebhookSecret | None]

PRE_VERIFY_BYTES = 64 * 1024 * 1024
"""How much body a delivery may have hashed against Secrets before it is parsed."""
PRE_VERIFY_MIN = 16
"""Secrets a delivery is checked against before it is parsed (each costs one HMAC of the body)."""


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
    result: Verification | None
    """None: the Secret does not exist (or is unknown)."""
    applies: bool
    """False for an absent global Secret: then no secret applies."""
    unknown: bool = False
    """The Secret has not been read yet: neither present nor absent."""
    key: str = "current"
    """Which of its keys verified: ``current``, or ``previous`` during a rotation's overlap."""
    previous_expires: datetime | None = None
    """Until when the previous keys count (set when they verified)."""

    @property
    def verified(self) -> bool:
        """The delivery is authentic for this Secret."""
        return self.result is Verification.VERIFIED

    def problem(self, provider: Provider) -> str:
        """Why it did not verify, in words safe to send back (no values, no per-GitRepo names)."""
        keys = " or ".join(f"'{key}'" for key in provider.secret_keys)
        whose = "the GitRepo's webhookSecret" if self.secret.per_gitrepo else "the gitjob-webhook Secret"
        if self.unknown:
            return f"{whose} has not been read yet"
        if self.result is None:
            return f"{whose} does not exist"
        if self.result is Verification.MISSING_SIGNATURE:
            return f"the delivery carries no signature or token, but {whose} has a {keys} key"
        if self.result is Verification.NO_KEY:
            return f"{whose} has no (non-empty) {keys} key for {provider.name} deliveries"
        if self.result is Verification.STALE_TIMESTAMP:
            return "its webhook-timestamp is more than 5 minutes from now (a replay, or a clock far off)"
        if self.result is Verification.NO_V1_SIGNATURE:
            return "its webhook-signature has no v1 entry"
        return f"the delivery's {provider.proof} does not match the {keys} key of {whose}"


class ExpiredKeys:
    """Says once per Secret and expiry that its previous keys no longer count (bounded memory)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._said: set[tuple[SecretRef, datetime | None]] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def note(self, ref: SecretRef, expired: datetime | None) -> None:
        with self._lock:
            if (ref, expired) in self._said:
                return
            if len(self._said) >= self._limit:
                self._said.clear()
            self._said.add((ref, expired))
        log.warning("previous webhook secret keys have expired and are ignored; remove them", extra=fields(
            secret=str(ref) if not ref.per_gitrepo else f"{ref.namespace}/(a GitRepo's webhookSecret)",
            expired=expired.isoformat() if expired else None))


class Verifier:
    """Checks one delivery against Secrets, each at most once: an HMAC over a large body is the cost.

    A Secret's current keys are tried first; its previous keys only when those fail and the
    rotation's overlap has not ended.
    """

    def __init__(self, provider: Provider, headers: Headers, body: bytes, read_secret: ReadSecret,
                 now: datetime | None = None, expired: ExpiredKeys | None = None) -> None:
        self.provider = provider
        self.headers = headers
        self.body = body
        self.read_secret = read_secret
        self.now = now or utc_now()
        self.expired = expired
        self.verdicts: dict[SecretRef, Verdict] = {}

    def verdict(self, ref: SecretRef) -> Verdict:
        """The delivery checked against ``ref`` (read and checked the first time only)."""
        found = self.verdicts.get(ref)
        if found is None:
            found = self.verdicts[ref] = self._check(ref)
        return found

    def verifies_before_parsing(self, refs: Iterable[SecretRef]) -> SecretRef | None:
        """The first of ``refs`` the raw delivery verifies against, or None. The Secrets holding this
        provider's keys are tried until :data:`PRE_VERIFY_BYTES` have been hashed (at least
        :data:`PRE_VERIFY_MIN` of them): thousands for a push of a few kilobytes, a handful for 25 MiB."""
        limit = max(PRE_VERIFY_MIN, PRE_VERIFY_BYTES // max(1, len(self.body)))
        checked = 0
        for ref in refs:
            verdict = self.verdict(ref)
            if verdict.verified:
                return ref
            if verdict.result not in (None, Verification.NO_KEY):
                checked += 1
                if checked >= limit:
                    return None
        return None

    def refusal_before_parsing(self, refs: list[SecretRef], global_ref: SecretRef) -> Verdict | None:
        """The global Secret's verdict when nothing the body says could change the answer from 401:
        the global Secret exists (so every GitRepo has a Secret that applies), every Secret held was
        read and checked, and the delivery verified against none of them."""
        verdicts = [self.verdicts.get(ref) for ref in refs]
        if any(verdict is None or verdict.unknown or verdict.verified for verdict in verdicts):
            return None
        global_verdict = self.verdicts.get(global_ref)
        if global_verdict is None or global_verdict.result is None:
            return None
        return global_verdict

    def _check(self, ref: SecretRef) -> Verdict:
        try:
            data = self.read_secret(ref.namespace, ref.name)
        except SecretUnknown:
            return Verdict(ref, None, applies=True, unknown=True)
        if data is None:
            return Verdict(ref, None, applies=ref.per_gitrepo)
        current = self.provider.verify(self.headers, self.body, data)
        if current is Verification.VERIFIED or not data.previous:
            return Verdict(ref, current, applies=True)
        previous = data.previous_until(self.now)
        if previous is None:
            if self.expired is not None:
                self.expired.note(ref, data.previous_expires)
            return Verdict(ref, current, applies=True)
        for mixed in with_previous_values(self.provider, data, previous):
            if self.provider.verify(self.headers, self.body, mixed) is Verification.VERIFIED:
                return Verdict(ref, Verification.VERIFIED, applies=True, key="previous",
                               previous_expires=data.previous_expires)
        return Verdict(ref, current, applies=True)


def with_previous_values(provider: Provider, current: Mapping[str, bytes],
                         previous: Mapping[str, bytes]) -> Iterator[dict[str, bytes]]:
    """The current keys with some of them at their previous values: every key the Secret holds is
    still required (a rotation of GitLab's token never makes the signing token optional), and a
    pair (Azure's user name and password) takes its previous values together or not at all."""
    held = [key for key in provider.secret_keys if key in current]
    units = [pair for pair in provider.key_pairs if all(key in current for key in pair)]
    units += [(key,) for key in held if not any(key in pair for pair in units)]
    choices = [[False, True] if all(key in previous for key in unit) else [False] for unit in units]
    for picks in itertools.product(*choices):
        if not any(picks):
            continue   # all current: already tried
        mixed = dict(current)
        for unit, pick in zip(units, picks):
            if pick:
                mixed.update({key: previous[key] for key in unit})
        yield mixed
