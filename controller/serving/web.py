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
from controller.serving.errors import INTERNAL_ERROR_MESSAGE, ServiceError, render
from controller.logs import fields, safe

log = logging.getLogger("gitjob_webhook.http")

Readiness = Callable[[], tuple[bool, str]]
HEALTH_ROUTES = ("/healthz", "/readyz", "/metrics")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BACKGROUND = "gitjob_webhook.background"


class Background:
    """The threads an app needs while it serves (caches, the reconcile pass).

    Kept in ``app.extensions`` and started by the gunicorn worker once it has forked (threads do
    not survive a fork), stopped when the worker exits; ``create_app`` itself starts nothing.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[Callable[[], None], Callable[[], None]]] = []

    def add(self, start: Callable[[], None], stop: Callable[[], None]) -> None:
        """Register one piece of background work; started in order, stopped in reverse."""
        self._parts.append((start, stop))

    def start(self) -> None:
        """Start everything registered."""
        for start, _ in self._parts:
            start()

    def stop(self) -> None:
        """Stop everything registered, last started first."""
        for _, stop in reversed(self._parts):
            stop()


def background(app: Flask) -> Background:
    """The app's :class:`Background`, created on first use."""
    found: Background = app.extensions.setdefault(_BACKGROUND, Background())
    return found


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """A Flask response carrying :func:`~controller.serving.errors.render`'s body."""
    response = Response(render(status, code, message), status=status, content_type="application/json")
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
               remote: str | None, delivery: str | None = None, problem: str | None = None) -> None:
        """Count the request and, unless it is a successful health probe, log it (with the problem
        the answer named, for a refusal).

        Labels come from closed sets (the route rule, known methods, the status) so that no client can
        grow the metrics; what the client chose (path, delivery id) is logged cut short.
        """
        method = method if method in _METHODS else "other"
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
                listener=self.listener, method=method, path=safe(path, 128), status=status,
                duration_ms=round(duration * 1000, 2), delivery=delivery, remote=remote,
                problem=safe(problem, 256)))


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
                            request.remote_addr, g.get("delivery_id"), g.get("problem"))
        return response

    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError) -> Response:
        g.problem = error.message
        return error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        # The router's own answers (404, 405 with its Allow header) in the service's JSON shape.
        response = error.get_response()
        name = (error.name or "error").lower().replace(" ", "-")
        answer = error_response(error.code or 500, name, error.description or name)
        if "Allow" in response.headers:
            answer.headers["Allow"] = response.headers["Allow"]
        return answer

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # A bug, never an input problem: log it with the trace, answer without details.
        log.error("unexpected error", exc_info=error, extra=fields(path=request.path))
        return error_response(500, "internal", INTERNAL_ERROR_MESSAGE)

    return requests_log
