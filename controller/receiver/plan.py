"""What a delivery would do, decided without writing anything.

Which GitRepos track the pushed repository, which of them the push concerns, which secrets apply
and whether the delivery verifies against them. The pipeline acts on a :class:`Plan`; ``explain``
reports one. Keeping the decision here is what makes ``explain`` tell the truth about the receiver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.receiver import matching
from controller.fleet.gitrepos import GitRepo
from controller.providers.base import EventKind, Headers, Provider, PushEvent
from controller.receiver.authentication import ReadSecret, SecretRef, Verdict, check, secret_for
from controller.fleet.secrets import GLOBAL_SECRET
from controller.store import Store

REQUIRE_SIGNATURE_PROBLEM = ("no secret is configured for this repository and --require-signature is set: "
                             "create the gitjob-webhook Secret or a GitRepo webhookSecret")


@dataclass(frozen=True)
class Plan:
    """The receiver's decision about one parsed delivery, before any write."""

    event: PushEvent
    namespace: str
    """The controller namespace, home of the global Secret."""
    keys: tuple[str, ...]
    """Normalised repository keys of the payload's URLs."""
    candidates: tuple[GitRepo, ...]
    """GitRepos tracking one of ``keys``."""
    targets: tuple[matching.Target, ...]
    """Candidates the push concerns, each with the ref change that concerns it."""
    mismatches: Mapping[str, str]
    """``namespace/name`` of each other candidate → why the push does not concern it (pushes only)."""
    verdicts: Mapping[SecretRef, Verdict]
    """The delivery checked against each Secret that applies (see :func:`secrets_to_check`)."""

    @property
    def authenticated(self) -> bool:
        """The delivery verified against at least one Secret."""
        return any(verdict.verified for verdict in self.verdicts.values())

    @property
    def applying(self) -> list[Verdict]:
        """Verdicts of the Secrets that apply (an absent global Secret does not)."""
        return [verdict for verdict in self.verdicts.values() if verdict.applies]

    def verdict_for(self, gitrepo: GitRepo) -> Verdict | None:
        """The verdict of the GitRepo's own Secret, when it was checked."""
        return self.verdicts.get(secret_for(gitrepo, self.namespace))

    def rejection(self, provider: Provider, require_signature: bool) -> str | None:
        """The 401 message when the delivery as a whole must be refused, else None."""
        applying = self.applying
        if applying and not self.authenticated:
            return f"{provider.name} delivery not authenticated: {applying[0].problem(provider)}"
        if not applying and require_signature:
            return REQUIRE_SIGNATURE_PROBLEM
        return None

    def permitted(self, target: matching.Target, require_signature: bool) -> bool:
        """Whether this target may be written: its own Secret verified, or none applies to it."""
        verdict = self.verdict_for(target.gitrepo)
        if verdict is not None and verdict.applies:
            return verdict.verified
        return not require_signature


def secrets_to_check(targets: tuple[matching.Target, ...], candidates: tuple[GitRepo, ...],
                     namespace: str) -> list[SecretRef]:
    """For a push, the Secret of each GitRepo it would patch; for a delivery that patches nothing
    (ping, other event, no match), the global Secret and those of the GitRepos tracking the
    repository: verifying against any of them is enough for a provider's test delivery.
    """
    if targets:
        return [secret_for(target.gitrepo, namespace) for target in targets]
    return [SecretRef(namespace, GLOBAL_SECRET)] + \
        [secret_for(gitrepo, namespace) for gitrepo in candidates if gitrepo.webhook_secret]


def make_plan(provider: Provider, event: PushEvent, headers: Headers, body: bytes, store: Store,
              namespace: str) -> Plan:
    """Match the event against the store's GitRepos and check it against the Secrets that apply."""
    keys = matching.payload_keys(event)
    candidates = tuple(matching.trackers(keys, store.gitrepos_for))
    targets: tuple[matching.Target, ...] = ()
    mismatches: dict[str, str] = {}
    if event.kind is EventKind.PUSH:
        chosen, mismatches = matching.targets(event, candidates)
        targets = tuple(chosen)
    read: ReadSecret = store.secret
    verdicts = check(provider, headers, body, secrets_to_check(targets, candidates, namespace), read)
    return Plan(event, namespace, keys, candidates, targets, mismatches, verdicts)
