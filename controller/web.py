"""What both Flask apps share: health routes, one request log line, JSON errors, metrics.

Each listener's ``create_app`` calls :func:`install` once; nothing here is a module-level app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from controller import metrics
from controller.errors import ServiceError
from controller.logs import fields

log = logging.getLogger("gitjob_webhook.http")

Readiness = Callable[[], tuple[bool, str]]
HEALTH_ROUTES = ("/healthz", "/readyz", "/metrics")


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """The JSON error body every listener answers with: ``{"error": code, "message": ...}``."""
    response = jsonify(error=code, message=message)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _health_blueprint(readiness: Readiness) -> Blueprint:
    health = Blueprint("health", __name__)

    @health.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @health.get("/readyz")
    def readyz() -> Response:
        ready, reason = readiness()
        response = jsonify(status="ready" if ready else "not ready", reason=reason)
        response.status_code = 200 if ready else 503
        return response

    @health.get("/metrics")
    def metrics_route() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    return health


def install(app: Flask, listener: str, readiness: Readiness) -> None:
    """Register health routes, JSON error handling and the per-request log line on ``app``."""
    app.register_blueprint(_health_blueprint(readiness))
    # Labelled metric children, looked up once per label set: the admission path is latency first.
    counters: dict[tuple[str, str, str], Any] = {}
    timers: dict[str, Any] = {}

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        duration = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        key = (route, request.method, str(response.status_code))
        counter = counters.get(key)
        if counter is None:
            counter = counters.setdefault(key, metrics.HTTP_REQUESTS.labels(listener, *key))
        counter.inc()
        timer = timers.get(route)
        if timer is None:
            timer = timers.setdefault(route, metrics.HTTP_DURATION.labels(listener, route))
        timer.observe(duration)
        if request.path not in HEALTH_ROUTES or response.status_code >= 400:
            log.info("request", extra=fields(
                listener=listener, method=request.method, path=request.path,
                status=response.status_code, duration_ms=round(duration * 1000, 2),
                delivery=g.get("delivery_id"), remote=request.remote_addr))
        return response

    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError) -> Response:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        headers = {}
        if error.code == 405:
            allowed = error.valid_methods if hasattr(error, "valid_methods") else None
            headers["Allow"] = ", ".join(allowed or ["POST"])
        name = (error.name or "error").lower().replace(" ", "-")
        return error_response(error.code or 500, name, error.description or name, headers)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # A bug, never an input problem: log it with the trace, answer without details.
        log.error("unexpected error", exc_info=error, extra=fields(path=request.path))
        return error_response(500, "internal", "internal error; see the service log")
