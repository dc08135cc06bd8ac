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


class RequestLog:
    """One log line and the HTTP metrics per request of a listener.

    Labelled metric children are looked up once per label set: the admission path is latency first.
    """

    def __init__(self, listener: str) -> None:
        self.listener = listener
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[str, Any] = {}

    def record(self, route: str, method: str, path: str, status: int, duration: float,
               remote: str | None, delivery: str | None = None) -> None:
        """Count the request and, unless it is a successful health probe, log it."""
        key = (route, method, str(status))
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters.setdefault(key, metrics.HTTP_REQUESTS.labels(self.listener, *key))
        counter.inc()
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers.setdefault(route, metrics.HTTP_DURATION.labels(self.listener, route))
        timer.observe(duration)
        if path not in HEALTH_ROUTES or status >= 400:
            log.info("request", extra=fields(
                listener=self.listener, method=method, path=path, status=status,
                duration_ms=round(duration * 1000, 2), delivery=delivery, remote=remote))


def install(app: Flask, listener: str, readiness: Readiness) -> RequestLog:
    """Register health routes, JSON error handling and the per-request log line on ``app``."""
    app.register_blueprint(_health_blueprint(readiness))
    requests_log = RequestLog(listener)

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        duration = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        requests_log.record(route, request.method, request.path, response.status_code, duration,
                            request.remote_addr, g.get("delivery_id"))
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

    return requests_log
