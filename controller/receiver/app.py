"""The receiver's Flask app: ``POST`` on any path is a provider delivery (Ingress rewrites vary)."""

from __future__ import annotations

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from controller import web
from controller.errors import MethodNotAllowed, PayloadTooLarge, RequestTimeout, TooManyRequests
from controller.receiver.limits import RateLimiter
from controller.receiver.pipeline import Delivery, Receiver
from controller.settings import Settings
from controller.store import Store

# Where each provider puts its delivery id, so that even a rejected delivery's log line carries it.
DELIVERY_ID_HEADERS = ("x-github-delivery", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid",
                       "x-request-uuid", "x-request-id", "x-forgejo-delivery", "x-gitea-delivery",
                       "x-gogs-delivery", "x-vss-activityid")


def create_app(settings: Settings, store: Store) -> Flask:
    """Build the receiver app around a store; starts the store's caches."""
    app = Flask("gitjob_webhook.receiver")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_size
    receiver = Receiver(settings, store)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    web.install(app, "receiver", store.readiness)
    store.start()

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
    def deliver(path: str) -> Response:
        if request.method != "POST":
            raise MethodNotAllowed("deliveries are POSTed", headers={"Allow": "POST"})
        wait = limiter.acquire(_source(settings))
        if wait:
            raise TooManyRequests("too many deliveries from this source",
                                  headers={"Retry-After": str(max(1, round(wait)))})
        headers = {name.lower(): value for name, value in request.headers.items()}
        g.delivery_id = next((headers[name] for name in DELIVERY_ID_HEADERS if headers.get(name)), None)
        reply = receiver.handle(Delivery(headers, _body(settings.max_body_size, settings.body_timeout)))
        g.delivery_id = reply.body.get("delivery") or g.delivery_id
        response = jsonify(reply.body)
        response.status_code = reply.status
        response.headers.update(reply.headers)
        return response

    return app


def _body(limit: int, timeout: float) -> bytes:
    """The raw body; 413 when it is over ``limit``, whether it has a Content-Length or is chunked.

    A client that stops sending its body would otherwise hold a gunicorn thread for as long as it
    keeps the connection open: each read from the socket times out after ``timeout`` seconds (408).
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(timeout)
    try:
        data = request.get_data(cache=False)
    except (OSError, ClientDisconnected):
        # werkzeug reports the socket timeout as a client that went away; either way, 408.
        raise RequestTimeout(f"the body stalled for {timeout:g} s (--body-timeout)",
                             headers={"Connection": "close"}) from None
    # werkzeug refuses an over-long Content-Length, but silently cuts a chunked body at the limit:
    # one more byte from the server's stream tells a body of exactly the limit from a longer one.
    if len(data) >= limit and request.content_length is None and request.environ["wsgi.input"].read(1):
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes (--max-body-size)")
    return data


def _source(settings: Settings) -> str:
    if settings.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.remote_addr or "unknown"
