"""One delivery, start to finish: recognise, plan (verify, parse, match), write, answer.

No write happens before the delivery has verified against every secret that applies to what it
would write. The pipeline never sees Flask: it takes a :class:`Delivery` and returns a
:class:`Reply` or raises a :class:`~controller.serving.errors.ServiceError`. With ``dry_run`` it
writes nothing and says what it would have written: that is how ``explain`` predicts the answer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from controller import metrics
from controller.fleet.gitrepos import GitRepo
from controller.logs import fields, safe
from controller.providers import detect, identifying_headers
from controller.providers.base import (EventKind, Headers, MalformedDelivery, Provider, TooLarge,
                                       UnsupportedContentType)
from controller.receiver import matching
from controller.receiver.authentication import ExpiredKeys
from controller.receiver.limits import DeliveryMemory
from controller.receiver.plan import RETRY_AFTER_SECONDS, Plan, make_plan
from controller.serving.errors import (BodyTooLarge, MalformedRequest, ServiceError, UnknownSender,
                                       UnsupportedContent)
from controller.settings import Settings
from controller.store import GitRepoGone, Store, StoreError, StoreUnavailable

log = logging.getLogger("gitjob_webhook.receiver")


@dataclass(frozen=True)
class Delivery:
    """What the HTTP layer hands over: lower-cased headers and the raw body."""

    headers: Headers
    body: bytes


@dataclass
class Reply:
    """The answer: status and JSON body, and whether a secret authenticated the delivery."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    authenticated: bool = False


@dataclass(frozen=True)
class GitRepoResult:
    """What happened to one GitRepo the push concerned."""

    gitrepo: GitRepo
    result: str   # patched, current, failed, unauthorized
    commit: str
    ref: str
    detail: str = ""


class Receiver:
    """The receiver's core, bound to a store and settings; one per worker process."""

    def __init__(self, settings: Settings, store: Store, memory: DeliveryMemory | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 dry_run: bool = False) -> None:
        self.settings = settings
        self.store = store
        self.memory = memory or DeliveryMemory()
        self.now = now
        self.dry_run = dry_run
        self.expired = ExpiredKeys()
        # Offline, the caller is the operator at the console: names are no secret to them.
        self.show_names_always = store.offline

    def handle(self, delivery: Delivery, throttled: bool = False) -> Reply:
        """Process one delivery; errors are raised as ServiceError subclasses.

        ``throttled``: the source spent its failure budget; only a delivery that verifies before
        parsing is served.
        """
        started = time.perf_counter()
        provider = detect(delivery.headers, delivery.body)
        if provider is None:
            metrics.DELIVERIES.labels("unknown", "", "unknown-sender").inc()
            raise UnknownSender(f"unknown sender: none of the provider headers ({identifying_headers()}) "
                                "is present")
        kind = ""
        try:
            plan = self._plan(provider, delivery, throttled)
            kind = plan.event.kind.value
            reply = self._process(provider, plan, delivery)
        except ServiceError as error:
            metrics.DELIVERIES.labels(provider.name, kind, error.code).inc()
            raise
        finally:
            metrics.DELIVERY_DURATION.labels(provider.name).observe(time.perf_counter() - started)
        metrics.DELIVERIES.labels(provider.name, kind, reply.body["outcome"]).inc()
        return reply

    def _plan(self, provider: Provider, delivery: Delivery, throttled: bool) -> Plan:
        try:
            return make_plan(provider, delivery.headers, delivery.body, self.store, self.settings.namespace,
                             throttled, expired=self.expired)
        except UnsupportedContentType as error:
            raise UnsupportedContent(f"{provider.name}: {error}") from None
        except TooLarge as error:
            raise BodyTooLarge(f"{provider.name} delivery: {error}") from None
        except MalformedDelivery as error:
            raise MalformedRequest(f"{provider.name} delivery is malformed: {error}") from None

    def _process(self, provider: Provider, plan: Plan, delivery: Delivery) -> Reply:
        event = plan.event
        self._authorize(provider, plan)
        authenticated = plan.authenticated
        base: dict[str, Any] = {"provider": provider.name, "event": event.event,
                                "delivery": event.delivery_id, "authenticated": authenticated}
        if authenticated:
            base["secret"] = plan.key_used
            if plan.key_used == "previous" and not self.dry_run:
                metrics.PREVIOUS_SECRET_DELIVERIES.labels(provider.name).inc()
        if event.kind is EventKind.PING:
            return Reply(200, {"outcome": "ping", **base, "message": "pong: the delivery was understood"
                               + (" and verified" if authenticated else "")}, authenticated=authenticated)
        if event.kind is EventKind.OTHER:
            return Reply(200, {"outcome": "ignored", **base,
                               "message": f"{provider.name} event {event.event!r} does not trigger a sync"},
                         authenticated=authenticated)
        digest = hashlib.sha256(delivery.body).hexdigest()
        base["refs"] = [{"ref": change.ref, "commit": change.commit} for change in event.changes]
        if self.memory.seen(digest):
            return Reply(200, {"outcome": "duplicate", **base,
                               "message": "this delivery was already processed; nothing written"},
                         authenticated=authenticated)
        require = self.settings.require_signature
        allowed = [target for target in plan.targets if plan.permitted(target, require)]
        results = self._write(provider, plan, allowed)
        results += [GitRepoResult(t.gitrepo, "unauthorized", t.change.commit, t.change.ref,
                                  "signed with another secret") for t in plan.targets if t not in allowed]
        return self._answer(provider, base, results, digest, authenticated, bool(plan.candidates))

    def _authorize(self, provider: Provider, plan: Plan) -> None:
        refusal = plan.refusal(self.settings.require_signature)
        if self.dry_run:   # explain: it reports the refusal; nothing was received, so nothing is logged
            if refusal is not None:
                raise refusal
            return
        if refusal is not None:
            # One field of what the client sent, cut short; the rest is ours.
            log.warning("delivery refused", extra=fields(
                provider=provider.name, delivery=safe(plan.event.delivery_id), status=refusal.status,
                secrets=[str(v.secret) for v in plan.applying][:5], reason=refusal.message))
            raise refusal
        if not plan.applying:
            metrics.UNAUTHENTICATED.labels(provider.name).inc()
            log.warning("unauthenticated delivery accepted: no secret applies; create the "
                        "gitjob-webhook Secret or set spec.webhookSecret", extra=fields(
                            provider=provider.name, delivery=safe(plan.event.delivery_id)))

    def _write(self, provider: Provider, plan: Plan, targets: list[matching.Target]) -> list[GitRepoResult]:
        results: list[GitRepoResult] = []
        unavailable = ""
        for target in targets:
            gitrepo, change = target.gitrepo, target.change
            if target.current:
                results.append(GitRepoResult(gitrepo, "current", change.commit, change.ref))
                continue
            if unavailable:
                # The API server already failed this delivery: do not spend the sender's timeout again.
                results.append(GitRepoResult(gitrepo, "failed", change.commit, change.ref, unavailable))
                continue
            if self.dry_run:
                results.append(GitRepoResult(gitrepo, "patched", change.commit, change.ref))
                continue
            try:
                self.store.patch_status(gitrepo, change.commit, self.now())
            except StoreUnavailable as error:
                unavailable = str(error)
                results.append(GitRepoResult(gitrepo, "failed", change.commit, change.ref, unavailable))
                continue
            except GitRepoGone:
                continue
            except StoreError as error:
                results.append(GitRepoResult(gitrepo, "failed", change.commit, change.ref, str(error)))
                continue
            results.append(GitRepoResult(gitrepo, "patched", change.commit, change.ref))
            # No delivery id in the message: identical pushes (redeliveries) then aggregate into one Event.
            self.store.record_event(gitrepo, "WebhookReceived",
                                    f"{provider.name} push to {change.ref} at {change.commit[:12]}")
            verdict = plan.verdict_for(gitrepo)
            if verdict is not None and verdict.key == "previous":
                expiry = verdict.previous_expires.isoformat() if verdict.previous_expires else "?"
                self.store.record_event(gitrepo, "WebhookSecretPrevious", (
                    f"{provider.name} delivery verified with the previous key of its webhook Secret, "
                    f"accepted until {expiry}: set the new key in the provider's webhook settings"),
                    kind="Warning")
        if not self.dry_run:
            for result in results:
                metrics.GITREPO_PATCHES.labels(result.result).inc()
                log.info("gitrepo", extra=fields(gitrepo=result.gitrepo.ref, result=result.result,
                                                 commit=result.commit, ref=result.ref,
                                                 delivery=safe(plan.event.delivery_id),
                                                 detail=result.detail or None))
        return results

    def _answer(self, provider: Provider, base: dict[str, Any], results: list[GitRepoResult], digest: str,
                authenticated: bool, tracked: bool) -> Reply:
        counts = {name: sum(1 for r in results if r.result == name)
                  for name in ("patched", "current", "failed", "unauthorized")}
        body: dict[str, Any] = {"outcome": "processed", **base, "summary": counts}
        if authenticated or self.show_names_always:
            body["gitrepos"] = [{"namespace": r.gitrepo.namespace, "name": r.gitrepo.name,
                                 "result": r.result, "ref": r.ref, "commit": r.commit}
                                for r in results if r.result != "unauthorized"]
        if not results and base["refs"] and not any(ref["commit"] for ref in base["refs"]):
            body["message"] = "the push only deletes refs: there is no commit for Fleet to fetch"
        elif not results:
            body["message"] = ("no GitRepo tracks this ref" if tracked else
                               "no GitRepo tracks this repository") + \
                ("" if self.dry_run else "; `gitjob-webhook explain` shows why for each GitRepo")
        if counts["failed"]:
            # Not remembered as seen: the provider's redelivery (same body) must retry.
            body["outcome"] = "unavailable"
            body["message"] = "Kubernetes did not accept every status patch; redeliver to retry"
            return Reply(503, body, {"Retry-After": RETRY_AFTER_SECONDS}, authenticated)
        # Remembered only when it wrote (or found current) a GitRepo: a delivery that matched nothing
        # must count again once its GitRepo exists, or its redelivery would be dropped as a duplicate.
        if not self.dry_run and (counts["patched"] or counts["current"]):
            self.memory.remember(digest)
        return Reply(200, body, authenticated=authenticated)
