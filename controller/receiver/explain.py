"""``gitjob-webhook explain``: what one delivery would do, and for every GitRepo why (not).

Read-only. The answer is the receiver's own, run with ``dry_run`` (nothing written); the report per
GitRepo comes from the receiver's plan (:mod:`controller.receiver.plan`: verification, matching,
secret precedence). So the report says what the receiver would do, not what a second
implementation thinks. No secret value is ever part of the report: Secrets appear by namespace and
name, with whether they exist and how the delivery fares against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from controller.fleet.gitrepos import GitRepo
from controller.fleet.urls import key_host, repo_key
from controller.providers import HOST_OWNERS, NAMES, by_name, detect
from controller.providers.base import (EventKind, Headers, MalformedDelivery, Provider, PushEvent, RefChange,
                                       TooLarge, UnsupportedContentType, Verification, lower_headers)
from controller.receiver import matching
from controller.receiver.authentication import Verdict, Verifier, secret_for
from controller.receiver.limits import DeliveryMemory
from controller.receiver.pipeline import Delivery, Receiver
from controller.receiver.plan import Plan, make_plan
from controller.serving.errors import ServiceError
from controller.settings import Settings
from controller.store import Store

__all__ = ["ExplainError", "explain"]

_SIGNATURE_STATUS = {
    Verification.VERIFIED: "verified",
    Verification.FAILED: "failed",
    Verification.MISSING_SIGNATURE: "missing",
    Verification.NO_KEY: "no-key",
    Verification.STALE_TIMESTAMP: "stale-timestamp",
    Verification.NO_V1_SIGNATURE: "no-v1-signature",
}


class ExplainError(Exception):
    """The request to explain is wrong (unknown provider, unreadable payload); one line says why."""


class SecretReport(TypedDict):
    """A Secret the delivery is or would be checked against; never its data."""

    secret: str
    source: str
    exists: bool
    applies: bool
    signature: str
    key: str
    """Which of its keys verified: current, or previous (a rotation's overlap); "" when none did."""


def explain(provider: str, headers: list[tuple[str, str]], body: bytes, store: Store,
            settings: Settings) -> dict[str, Any]:
    """The report for one delivery: event, signature, the receiver's answer, and every GitRepo."""
    chosen = _provider(provider)
    lowered = lower_headers(headers)
    try:
        plan = make_plan(chosen, lowered, body, store, settings.namespace, refuse_early=False)
    except (MalformedDelivery, UnsupportedContentType, TooLarge) as error:
        raise ExplainError(f"the payload is not a valid {chosen.name} delivery: {error}") from None
    verifier = Verifier(chosen, lowered, body, store.secret)
    gitrepos = store.gitrepos()
    return {
        "provider": chosen.name,
        "store": store.description,
        "warnings": _warnings(chosen, lowered, body, plan, len(gitrepos)),
        "event": _event_report(plan.event),
        "signature": _signature_report(chosen, plan),
        "answer": _answer(lowered, body, store, settings),
        "gitrepos": [_gitrepo_report(gitrepo, plan, verifier, settings) for gitrepo in gitrepos],
    }


def _provider(name: str) -> Provider:
    provider = by_name(name)
    if provider is None:
        raise ExplainError(f"--provider {name!r} is not a provider; choose one of {', '.join(NAMES)}")
    return provider


def _warnings(provider: Provider, headers: Headers, body: bytes, plan: Plan, count: int) -> list[str]:
    warnings = []
    if count == 0:
        warnings.append("the store holds no GitRepo: every delivery matches nothing "
                        "(offline, pass --gitrepos FILE; or point --kubeconfig at the cluster)")
    if provider.recognises(headers, body):
        detected = detect(headers, body)
        if detected is not None and detected.name != provider.name:
            warnings.append(f"the receiver would treat this delivery as {detected.name}, not "
                            f"{provider.name}: its headers are checked first")
    else:
        warnings.append(f"the headers do not identify a {provider.name} delivery: {provider.identified_by} "
                        "is missing (pass it with --header NAME=VALUE)")
    for key in plan.foreign_keys:
        owner = HOST_OWNERS[key_host(key)]
        warnings.append(f"{key} is on {owner.title}'s host: a {provider.name} delivery never speaks for it")
    return warnings


def _event_report(event: PushEvent) -> dict[str, Any]:
    return {
        "kind": event.kind.value,
        "event": event.event,
        "delivery": event.delivery_id,
        "repositories": [{"url": url, "key": repo_key(url)} for url in event.repo_urls],
        "refs": [_change_report(change) for change in event.changes],
    }


def _change_report(change: RefChange) -> dict[str, Any]:
    return {"ref": change.ref, "commit": change.commit, "branch": change.branch, "tag": change.tag,
            "deleted": change.deleted}


def _signature_report(provider: Provider, plan: Plan) -> dict[str, Any]:
    checked = [_secret_report(verdict, applies=True) for verdict in plan.verdicts.values()]
    applying = plan.applying
    if plan.authenticated:
        status = "verified"
        detail = "the delivery verifies against a secret that applies" + (
            " with its previous key (a rotation's overlap)" if plan.key_used == "previous" else "")
    elif not applying:
        status = "no-secret"
        detail = "no secret applies: the receiver accepts it unauthenticated unless --require-signature"
    else:
        first = applying[0]
        status = _verdict_status(first)
        detail = first.problem(provider)
    return {"status": status, "detail": detail, "checked": checked}


def _verdict_status(verdict: Verdict) -> str:
    if verdict.unknown:
        return "secret-unknown"
    return "secret-missing" if verdict.result is None else _SIGNATURE_STATUS[verdict.result]


def _secret_report(verdict: Verdict, applies: bool) -> SecretReport:
    return {
        "secret": str(verdict.secret),
        "source": "spec.webhookSecret" if verdict.secret.per_gitrepo else "global",
        "exists": verdict.result is not None,
        "applies": applies and verdict.applies,
        "signature": "no-secret" if verdict.result is None else _verdict_status(verdict),
        "key": verdict.key if verdict.verified else "",
    }


def _gitrepo_report(gitrepo: GitRepo, plan: Plan, verifier: Verifier, settings: Settings) -> dict[str, Any]:
    key = repo_key(gitrepo.repo)
    same_repository = key is not None and key in plan.keys
    ref = secret_for(gitrepo, settings.namespace)
    checked = ref in plan.verdicts
    report: dict[str, Any] = {
        "namespace": gitrepo.namespace,
        "name": gitrepo.name,
        "match": False,
        "result": "",
        "mismatch": None,
        "reason": "",
        "url": {"repo": gitrepo.repo, "key": key, "payload_keys": list(plan.keys),
                "same_repository": same_repository},
        "ref": {"branch": gitrepo.branch, "revision": gitrepo.revision,
                "tracks": gitrepo.tracks,
                "webhook_commit": gitrepo.webhook_commit},
        # Not part of the decision when unchecked (not concerned): checked here only to show how it fares.
        "secret": _secret_report(plan.verdicts[ref] if checked else verifier.verdict(ref), applies=checked),
    }
    target = next((t for t in plan.targets if t.gitrepo.ref == gitrepo.ref), None)
    if target is not None:
        report.update(match=True, **_target_outcome(target, plan, settings))
    elif key is not None and key in plan.foreign_keys:
        report.update(result="not-tracked", mismatch="provider", reason=(
            f"{key_host(key)} belongs to {HOST_OWNERS[key_host(key)].title}: a {plan.provider.name} "
            "delivery never speaks for it"))
    elif not same_repository:
        report.update(result="not-tracked", mismatch="repository", reason=(
            f"spec.repo {gitrepo.repo!r} cannot be normalised to a repository" if key is None else
            f"another repository: {key} is not among the payload's {', '.join(plan.keys) or '(no URL)'}"))
    elif plan.event.kind is not EventKind.PUSH:
        report.update(result="ignored", mismatch="event",
                      reason=f"{plan.provider.name} event {plan.event.event!r} is not a push")
    else:
        report.update(result="not-concerned", mismatch="ref", reason=matching.why_not(gitrepo, plan.event))
    return report


def _target_outcome(target: matching.Target, plan: Plan, settings: Settings) -> dict[str, Any]:
    outcome: dict[str, Any] = {"ref_change": _change_report(target.change)}
    refusal = plan.refusal(settings.require_signature)
    if refusal is not None:
        outcome.update(result="rejected",
                       reason=f"the receiver would answer {refusal.status}: {refusal.message}")
    elif not plan.permitted(target, settings.require_signature):
        outcome.update(result="unauthorized", reason="the delivery does not verify against this GitRepo's "
                                                     "secret (it verifies against another one)")
    elif target.current:
        outcome.update(result="current", reason=f"status.webhookCommit is already {target.change.commit}")
    else:
        outcome.update(result="patched", reason=f"status.webhookCommit would become {target.change.commit}")
    return outcome


def _answer(headers: Mapping[str, str], body: bytes, store: Store, settings: Settings) -> dict[str, Any]:
    """What the receiver itself answers a first delivery of this (Kubernetes available, nothing written)."""
    receiver = Receiver(settings, store, DeliveryMemory(), dry_run=True)
    try:
        reply = receiver.handle(Delivery(headers, body))
    except ServiceError as error:
        return {"status": error.status, "outcome": error.code, "message": error.message}
    answer: dict[str, Any] = {"status": reply.status, "outcome": reply.body["outcome"],
                              "message": reply.body.get("message", "")}
    if "summary" in reply.body:
        answer["summary"] = reply.body["summary"]
    return answer
