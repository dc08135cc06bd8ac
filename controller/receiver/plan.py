"""What a delivery would do, decided without writing anything.

In order, so that an unauthenticated body costs as little as possible: the raw bytes are checked
against the Secrets the store holds (before any parsing); a delivery that verified against none is
parsed only within a budget; then the GitRepos tracking the pushed repository are looked up, those
the push concerns are chosen, and the delivery is checked against each Secret that applies to
them. The pipeline acts on a :class:`Plan`; ``explain`` reports one. Keeping the decision here is
what makes ``explain`` tell the truth about the receiver.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.fleet.gitrepos import GitRepo
from controller.fleet.secrets import GLOBAL_SECRET
from controller.providers.base import EventKind, Headers, Provider, PushEvent
from controller.providers.payloads import TRUSTED_PARSE_BUDGET, UNTRUSTED_PARSE_BUDGET, check_parse_budget
from controller.receiver import matching
from controller.receiver.authentication import ExpiredKeys, SecretRef, Verdict, Verifier, secret_for
from controller.serving.errors import NotAuthenticated, ServiceError, Throttled, Unavailable
from controller.store import Store

REQUIRE_SIGNATURE_PROBLEM = ("no secret is configured for this repository and --require-signature is set: "
                             "create the gitjob-webhook Secret or a GitRepo webhookSecret")
RETRY_AFTER_SECONDS = "30"


@dataclass(frozen=True)
class Plan:
    """The receiver's decision about one delivery, before any write."""

    provider: Provider
    event: PushEvent
    namespace: str
    """The controller namespace, home of the global Secret."""
    keys: tuple[str, ...]
    """Normalised repository keys of the payload's URLs that the provider may speak for."""
    foreign_keys: tuple[str, ...]
    """Keys on another provider's SaaS host: never looked up."""
    candidates: tuple[GitRepo, ...]
    """GitRepos tracking one of ``keys``."""
    targets: tuple[matching.Target, ...]
    """Candidates the push concerns, each with the ref change that concerns it."""
    verdicts: dict[SecretRef, Verdict]
    """The delivery checked against each Secret that applies (see :func:`secrets_to_check`)."""
    verified_before_parsing: bool
    """It verified against a Secret the store holds before its body was parsed."""

    @property
    def authenticated(self) -> bool:
        """The delivery verified against a Secret that applies."""
        return any(verdict.verified for verdict in self.verdicts.values())

    @property
    def key_used(self) -> str:
        """``previous`` when the delivery verified only with keys a rotation is phasing out."""
        verified = [verdict for verdict in self.verdicts.values() if verdict.verified]
        return "previous" if verified and all(v.key == "previous" for v in verified) else "current"

    @property
    def applying(self) -> list[Verdict]:
        """Verdicts of the Secrets that apply (an absent global Secret does not)."""
        return [verdict for verdict in self.verdicts.values() if verdict.applies]

    def verdict_for(self, gitrepo: GitRepo) -> Verdict | None:
        """The verdict of the GitRepo's own Secret, when it was checked."""
        return self.verdicts.get(secret_for(gitrepo, self.namespace))

    def refusal(self, require_signature: bool) -> ServiceError | None:
        """Why the delivery as a whole is refused (401, or 503 for a Secret not read yet), else None."""
        applying = self.applying
        if self.authenticated and not (self.targets and self._waiting_targets()):
            return None
        unknown = [verdict for verdict in applying if verdict.unknown]
        if unknown:
            return Unavailable(f"{self.provider.name} delivery cannot be authenticated yet: "
                               f"{unknown[0].problem(self.provider)}; retry",
                               headers={"Retry-After": RETRY_AFTER_SECONDS})
        if applying and not self.authenticated:
            return NotAuthenticated(f"{self.provider.name} delivery not authenticated: "
                                    f"{applying[0].problem(self.provider)}")
        if not applying and not self.provider.unauthenticated_allowed:
            return NotAuthenticated(f"{self.provider.name} deliveries are always signed, and no Secret "
                                    f"with a '{self.provider.secret_keys[0]}' key applies to this repository")
        if not applying and require_signature:
            return NotAuthenticated(REQUIRE_SIGNATURE_PROBLEM)
        return None

    def permitted(self, target: matching.Target, require_signature: bool) -> bool:
        """Whether this target may be written: its own Secret verified, or none applies to it."""
        verdict = self.verdict_for(target.gitrepo)
        if verdict is not None and verdict.applies:
            return verdict.verified
        return not require_signature and self.provider.unauthenticated_allowed

    def _waiting_targets(self) -> bool:
        """A target whose Secret is unknown: writing the others now would make a redelivery skip it."""
        return any((verdict := self.verdict_for(target.gitrepo)) is not None and verdict.unknown
                   for target in self.targets)


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


def make_plan(provider: Provider, headers: Headers, body: bytes, store: Store, namespace: str,
              throttled: bool = False, refuse_early: bool = True,
              expired: ExpiredKeys | None = None) -> Plan:
    """Verify what can be verified, parse, match, and check the Secrets that apply.

    Raises the provider's `MalformedDelivery`, `UnsupportedContentType` or `TooLarge`; `Throttled`
    when the source is over its failure budget and the delivery did not verify first; and, with
    ``refuse_early``, `NotAuthenticated` before parsing when no GitRepo could accept the delivery
    (``explain`` passes False: it reports on every GitRepo all the same).
    """
    verifier = Verifier(provider, headers, body, store.secret, expired=expired)
    held = [SecretRef(ns, name, per_gitrepo=(ns, name) != (namespace, GLOBAL_SECRET))
            for ns, name in store.webhook_secrets()]
    verified_by = verifier.verifies_before_parsing(held)
    if verified_by is None:
        if throttled:
            raise Throttled("too many failed deliveries from this source",
                            headers={"Retry-After": "10"})
        hopeless = verifier.refusal_before_parsing(held, SecretRef(namespace, GLOBAL_SECRET))
        if hopeless is not None and refuse_early:
            raise NotAuthenticated(f"{provider.name} delivery not authenticated: "
                                   f"{hopeless.problem(provider)}")
    # Only the global Secret's holder (the provider the operator configured) gets the larger budget:
    # a GitRepo's own Secret is its owner's, and tenants must not be able to exhaust the worker.
    trusted = verified_by is not None and not verified_by.per_gitrepo
    check_parse_budget(body, TRUSTED_PARSE_BUDGET if trusted else UNTRUSTED_PARSE_BUDGET)
    event = provider.parse(headers, body)
    keys, foreign = matching.spoken_for(provider, matching.payload_keys(event))
    candidates = tuple(matching.trackers(keys, store.gitrepos_for))
    targets = tuple(matching.targets(event, candidates)) if event.kind is EventKind.PUSH else ()
    checked = {ref: verifier.verdict(ref) for ref in secrets_to_check(targets, candidates, namespace)}
    return Plan(provider, event, namespace, keys, foreign, candidates, targets, checked,
                verified_by is not None)
