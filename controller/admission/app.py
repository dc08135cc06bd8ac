"""The admission server's Flask app: the GitRepo mutating and the Secret validating webhooks.

Reads only caches (the store), never the API server, so its latency is the review's own.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, request

from controller import metrics, web
from controller.admission.mutation import mutate_gitrepo
from controller.admission.reviews import BadReview, Decision, Review, build_response, parse_review
from controller.admission.validation import validate_secret
from controller.logs import fields
from controller.reconcile import LEASE_NAME, Reconciler
from controller.settings import Settings
from controller.store import GLOBAL_SECRET, Store

log = logging.getLogger("gitjob_webhook.admission")

MAX_REVIEW_BYTES = 3 * 1024 * 1024


def create_app(settings: Settings, store: Store) -> Flask:
    """Build the admission app around a store (the serving certificate is gunicorn's concern)."""
    app = Flask("gitjob_webhook.admission")
    web.install(app, "admission", store.readiness)
    store.start()
    Reconciler(store, settings, store.leader_elector(LEASE_NAME), settings.reconcile_period).start()

    def answer(webhook: str, judge: str) -> Response:
        try:
            review = parse_review(request.get_data(cache=False), MAX_REVIEW_BYTES)
        except BadReview as error:
            metrics.ADMISSION_DECISIONS.labels(webhook, "", "bad-review", "malformed").inc()
            return web.error_response(400, "bad-review", error.reason)
        if judge == "mutate":
            decision = mutate_gitrepo(
                review,
                webhook_mode=settings.webhook_mode,
                global_secret_exists=store.secret(settings.namespace, GLOBAL_SECRET) is not None,
                polling_interval=settings.webhook_polling_interval,
                require_signature=settings.require_signature,
            )
        else:
            decision = validate_secret(
                review, controller_namespace=settings.namespace, require_signature=settings.require_signature
            )
        _record(webhook, review, decision)
        body = build_response(review, decision, mutating=judge == "mutate")
        return Response(json.dumps(body), content_type="application/json")

    @app.post("/mutate/gitrepos")
    def mutate() -> Response:
        return answer("gitrepos", "mutate")

    @app.post("/validate/secrets")
    def validate() -> Response:
        return answer("secrets", "validate")

    return app


def _record(webhook: str, review: Review, decision: Decision) -> None:
    result = "denied" if not decision.allowed else ("patched" if decision.patch else "allowed")
    for reason in decision.reasons or ("none",):
        metrics.ADMISSION_DECISIONS.labels(webhook, review.operation, result, reason).inc()
    if not decision.allowed:
        log.warning(
            "admission denied",
            extra=fields(
                webhook=webhook,
                operation=review.operation,
                namespace=review.namespace,
                name=review.name,
                user=review.user.username,
                uid=review.uid,
                reasons=list(decision.reasons),
                message=decision.message,
            ),
        )
