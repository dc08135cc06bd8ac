"""``gitjob-webhook explain``: what one delivery would do, and for every GitRepo why (not).

Offline and read-only: the delivery is parsed as the named provider and run through the
receiver's own plan (:mod:`controller.receiver.plan`: matching, secret precedence, verification),
so the report says what the receiver would do, not what a second implementation thinks. Nothing
is written and no secret value is ever part of the report: Secrets appear by namespace and name,
with whether they exist and how the delivery fares against them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from controller.receiver import matching
from controller.fleet.gitrepos import GitRepo
from controller.providers import NAMES, by_name, detect
from controller.providers.base import (EventKind, MalformedDelivery, Provider, PushEvent, RefChange,
                                       UnsupportedContentType, Verification, lower_headers)
from controller.receiver.authentication import SecretRef, Verdict, check, secret_for
from controller.receiver.plan import Plan, make_plan
from controller.settings import Settings
from controller.store import Store
from controller.fleet.urls import repo_key

__all__ = ["ExplainError", "explain"]

_SIGNATURE_STATUS = {
    Verification.VERIFIED: "verified",
    Verification.FAILED: "failed",
    Verification.MISSING_SIGNATURE: "missing",
    Verification.NO_KEY: "no-key",
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


def explain(provider: str, headers: list[tuple[str, str]], body: bytes, store: Store,
            settings: Settings) -> dict[str, Any]:
    """The report for one delivery: event, signature, predicted answer, and every GitRepo."""
    chosen = _provider(provider)
    lowered = lower_headers(headers)
    try:
        event = chosen.parse(lowered, body)
    except (MalformedDelivery, UnsupportedContentType) as error:
        raise ExplainError(f"the payload is not a valid {chosen.name} delivery: {error}") from None
    plan = make_plan(chosen, event, lowered, body, store, settings.namespace)
    rejection = plan.rejection(chosen, settings.require_signature)
    results = {gitrepo.ref: _gitrepo_report(gitrepo, chosen, plan, rejection, lowered, body, store, settings)
               for gitrepo in store.gitrepos()}
    return {
        "provider": chosen.name,
        "store": store.description,
        "warnings": _warnings(chosen, lowered, body),
        "event": _event_report(event),
        "signature": _signature_report(chosen, plan),
        "answer": _answer(chosen, lowered, body, event, plan, rejection, results.values()),
        "gitrepos": list(results.values()),
    }


def _provider(name: str) -> Provider:
    provider = by_name(name)
    if provider is None:
        raise ExplainError(f"--provider {name!r} is not a provider; choose one of {', '.join(NAMES)}")
    return provider


def _warnings(provider: Provider, headers: Mapping[str, str], body: bytes) -> list[str]:
    if provider.recognises(headers, body):
        detected = detect(headers, body)
        if detected is not None and detected.name != provider.name:
            return [f"the receiver would treat this delivery as {detected.name}, not {provider.name}: "
                    f"its headers are checked first"]
        return []
    return [f"the headers do not identify a {provider.name} delivery: {provider.identified_by} is missing "
            f"(pass it with --header NAME=VALUE)"]


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
        status, detail = "verified", "the delivery verifies against a secret that applies"
    elif not applying:
        status = "no-secret"
        detail = "no secret applies: the receiver accepts it unauthenticated unless --require-signature"
    else:
        first = applying[0]
        status = "secret-missing" if first.result is None else _SIGNATURE_STATUS[first.result]
        detail = first.problem(provider)
    return {"status": status, "detail": detail, "checked": checked}


def _secret_report(verdict: Verdict, applies: bool) -> SecretReport:
    return {
        "secret": str(verdict.secret),
        "source": "spec.webhookSecret" if verdict.secret.per_gitrepo else "global",
        "exists": verdict.result is not None,
        "applies": applies and verdict.applies,
        "signature": "no-secret" if verdict.result is None else _SIGNATURE_STATUS[verdict.result],
    }


def _gitrepo_report(gitrepo: GitRepo, provider: Provider, plan: Plan, rejection: str | None,
                    headers: Mapping[str, str], body: bytes, store: Store,
                    settings: Settings) -> dict[str, Any]:
    key = repo_key(gitrepo.repo)
    same_repository = key is not None and key in plan.keys
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
                "tracks": (f"branch {gitrepo.tracked_branch}" if gitrepo.tracked_branch
                           else f"revision {gitrepo.revision}"),
                "webhook_commit": gitrepo.webhook_commit},
        "secret": _gitrepo_secret(gitrepo, provider, plan, headers, body, store, settings),
    }
    target = next((t for t in plan.targets if t.gitrepo.ref == gitrepo.ref), None)
    if target is not None:
        report.update(match=True, **_target_outcome(target, plan, rejection, settings))
    elif not same_repository:
        report.update(result="not-tracked", mismatch="repository", reason=(
            f"spec.repo {gitrepo.repo!r} cannot be normalised to a repository" if key is None else
            f"another repository: {key} is not among the payload's {', '.join(plan.keys) or '(no URL)'}"))
    elif plan.event.kind is not EventKind.PUSH:
        report.update(result="ignored", mismatch="event",
                      reason=f"{provider.name} event {plan.event.event!r} is not a push")
    else:
        report.update(result="not-concerned", mismatch="ref", reason=plan.mismatches.get(
            gitrepo.ref, "the push changed no ref"))
    return report


def _target_outcome(target: matching.Target, plan: Plan, rejection: str | None,
                    settings: Settings) -> dict[str, Any]:
    outcome: dict[str, Any] = {"ref_change": _change_report(target.change)}
    if rejection is not None:
        outcome.update(result="rejected", reason=f"the receiver would answer 401: {rejection}")
    elif not plan.permitted(target, settings.require_signature):
        outcome.update(result="unauthorized", reason="the delivery does not verify against this GitRepo's "
                                                     "secret (it verifies against another one)")
    elif target.current:
        outcome.update(result="current", reason=f"status.webhookCommit is already {target.change.commit}")
    else:
        outcome.update(result="patched", reason=f"status.webhookCommit would become {target.change.commit}")
    return outcome


def _gitrepo_secret(gitrepo: GitRepo, provider: Provider, plan: Plan, headers: Mapping[str, str],
                    body: bytes, store: Store, settings: Settings) -> SecretReport:
    ref: SecretRef = secret_for(gitrepo, settings.namespace)
    verdict = plan.verdicts.get(ref)
    if verdict is not None:
        return _secret_report(verdict, applies=True)
    # Not part of the decision (this GitRepo is not concerned): checked only to show how it would fare.
    return _secret_report(check(provider, headers, body, [ref], store.secret)[ref], applies=False)


def _answer(provider: Provider, headers: Mapping[str, str], body: bytes, event: PushEvent, plan: Plan,
            rejection: str | None, results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The status and outcome the receiver would answer (a first delivery, Kubernetes available)."""
    if detect(headers, body) is None:
        return {"status": 400, "outcome": "rejected", "message": "unknown sender: no provider header"}
    if rejection is not None:
        return {"status": 401, "outcome": "unauthorized", "message": rejection}
    if event.kind is EventKind.PING:
        return {"status": 200, "outcome": "ping", "message": "pong"}
    if event.kind is EventKind.OTHER:
        return {"status": 200, "outcome": "ignored",
                "message": f"{provider.name} event {event.event!r} does not trigger a sync"}
    outcomes = [result["result"] for result in results]
    summary = {name: outcomes.count(name) for name in ("patched", "current", "unauthorized")}
    return {"status": 200, "outcome": "processed", "summary": summary,
            "message": "" if plan.targets else
            ("no GitRepo tracks this ref" if plan.candidates else "no GitRepo tracks this repository")}
