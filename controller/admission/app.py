"""The admission server's app: the GitRepo mutating and the Secret validating webhooks.

Reads only caches (the store), never the API server, so its latency is the review's own. The two
webhook routes are served by a bare WSGI layer in front of the Flask app (health, metrics, errors):
the API server waits on every GitRepo and Secret write for these answers, and Flask's request
context, hooks and response objects cost more than the review itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Flask, abort
from gunicorn.http.errors import NoMoreData, ParseException

from controller import metrics
from controller.admission.mutation import mutate_gitrepo
from controller.admission.reconcile import LEASE_NAME, Reconciler
from controller.admission.decisions import Decision, build_response
from controller.admission.reviews import MAX_REVIEW_BYTES, BadReview, Review, parse_review
from controller.admission.validation import validate_secret
from controller.admission.wire import AdmissionReviewResponse
from controller.fleet.secrets import GLOBAL_SECRET
from controller.logs import fields, safe
from controller.serving import web
from controller.serving.errors import INTERNAL_ERROR_MESSAGE, ServiceError, render
from controller.settings import Settings
from controller.store import SecretUnknown, Store

log = logging.getLogger("gitjob_webhook.admission")

# Path → (webhook label, mutating).
ROUTES = {"/mutate/gitrepos": ("gitrepos", True), "/validate/secrets": ("secrets", False)}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Judge = Callable[[str, bool, bytes], bytes]


def create_app(settings: Settings, store: Store) -> Flask:
    """Build the admission app around a store (the serving certificate is gunicorn's concern).

    The store's caches and the reconcile pass are registered with :func:`web.background`.
    """
    app = Flask("gitjob_webhook.admission")
    requests_log = web.install(app, "admission", store.readiness)
    reconciler = Reconciler(store, settings, store.leader_elector(LEASE_NAME), settings.reconcile_period)
    web.background(app).add(store.start, store.stop)
    web.background(app).add(reconciler.start, reconciler.stop)

    def judge(webhook: str, mutating: bool, body: bytes) -> bytes:
        try:
            review = parse_review(body, MAX_REVIEW_BYTES)
        except ServiceError:
            metrics.ADMISSION_DECISIONS.labels(webhook, "", "bad-review", "malformed").inc()
            raise
        if mutating:
            try:
                global_secret_exists = store.secret(settings.namespace, GLOBAL_SECRET) is not None
            except SecretUnknown:
                # Webhook mode cannot be told before the cache has read the Secret: leave the GitRepo
                # as it is (this webhook never denies); the reconcile pass defaults it later.
                decision = Decision(allowed=True, reasons=("cache-not-synced",),
                                    audit={"decision": "skipped"})
                _record(webhook, review, decision)
                return _answer(build_response(review, decision, mutating=True))
            decision = mutate_gitrepo(
                review, webhook_mode=settings.webhook_mode, global_secret_exists=global_secret_exists,
                polling_interval=settings.webhook_polling_interval,
                require_signature=settings.require_signature)
        else:
            decision = validate_secret(review, controller_namespace=settings.namespace,
                                       require_signature=settings.require_signature)
        _record(webhook, review, decision)
        return _answer(build_response(review, decision, mutating=mutating))

    for path in ROUTES:
        # Other methods get the router's 405 with Allow (the middleware answers POSTs).
        app.add_url_rule(path, endpoint=path, view_func=_not_a_webhook_route, methods=["POST"],
                         provide_automatic_options=False)
    app.wsgi_app = ReviewEndpoints(app.wsgi_app, judge, requests_log)  # type: ignore[method-assign]
    return app


def _answer(review: AdmissionReviewResponse) -> bytes:
    """An AdmissionReview answer as the other answers are written: compact, ending with a newline."""
    return json.dumps(review, separators=(",", ":")).encode() + b"\n"


def _not_a_webhook_route() -> NoReturn:
    # Reached by a POST the middleware did not take, whose path the router alone reads as a webhook
    # route (`//validate/secrets`, its leading slashes merged): not where the API server calls.
    abort(404)


class ReviewEndpoints:
    """WSGI middleware answering POSTs to the webhook routes; everything else goes to ``inner``."""

    def __init__(self, inner: WSGIApp, judge: Judge, requests_log: web.RequestLog) -> None:
        self.inner = inner
        self.judge = judge
        self.requests_log = requests_log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        route = ROUTES.get(path)
        method = environ.get("REQUEST_METHOD", "")
        if route is None or method != "POST":
            return self.inner(environ, start_response)
        started = time.perf_counter()
        status = 200
        try:
            payload = self.judge(route[0], route[1], _read_body(environ))
        except ServiceError as error:
            # A malformed review like any other (400): the API server applies failurePolicy.
            status, payload = error.status, render(error.status, error.code, error.message)
        except Exception as error:  # a bug, never an input problem: logged with its trace
            log.error("unexpected error", exc_info=error, extra=fields(path=path))
            status, payload = 500, render(500, "internal", INTERNAL_ERROR_MESSAGE)
        start_response(f"{status} {HTTPStatus(status).phrase}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        self.requests_log.record(path, method, path, status, time.perf_counter() - started,
                                 environ.get("REMOTE_ADDR"))
        return [payload]


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body; a review larger than the API server may send is a malformed request."""
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    too_large = BadReview(f"the review is over {MAX_REVIEW_BYTES} bytes")
    if length > MAX_REVIEW_BYTES:
        # Read (and drop) what the client is sending, so that it gets to read the 400 instead of a
        # reset connection; beyond a bound, gunicorn closes the connection anyway.
        remaining = min(length, 4 * MAX_REVIEW_BYTES)
        while remaining > 0 and (chunk := stream.read(min(remaining, 65536))):
            remaining -= len(chunk)
        raise too_large
    try:
        data: bytes = stream.read(length) if length >= 0 else stream.read(MAX_REVIEW_BYTES + 1)
    except (ParseException, NoMoreData) as error:
        raise BadReview(f"the request body is malformed: {type(error).__name__}") from None
    if len(data) > MAX_REVIEW_BYTES:
        raise too_large
    return data


def _record(webhook: str, review: Review, decision: Decision) -> None:
    result = "denied" if not decision.allowed else ("patched" if decision.patch else "allowed")
    for reason in decision.reasons or ("none",):
        metrics.ADMISSION_DECISIONS.labels(webhook, review.operation, result, reason).inc()
    if not decision.allowed:
        # Everything here is what the review says: the webhook sees who called it (the API server,
        # or whoever else reaches port 8443), not who wrote the object; the API server's audit log
        # has the authenticated user.
        log.warning("admission denied", extra=fields(
            via="admission webhook", webhook=webhook, operation=review.operation,
            namespace=safe(review.namespace), name=safe(review.name),
            user_in_review=safe(review.user.username), uid=safe(review.uid), reasons=list(decision.reasons),
            message=decision.message))
