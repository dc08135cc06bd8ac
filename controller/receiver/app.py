"""The receiver's Flask app: ``POST`` on any path is a provider delivery (Ingress rewrites vary)."""

from __future__ import annotations

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from controller.serving import web
from controller.serving.errors import BodyStalled, BodyTooLarge, Throttled
from controller.providers import DELIVERY_ID_HEADERS
from controller.receiver.limits import RateLimiter
from controller.receiver.pipeline import Delivery, Receiver
from controller.settings import Settings
from controller.store import Store


def create_app(settings: Settings, store: Store) -> Flask:
    """Build the receiver app around a store; its caches start with :func:`web.background`."""
    app = Flask("gitjob_webhook.receiver")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_size
    receiver = Receiver(settings, store)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    web.install(app, "receiver", store.readiness)
    web.background(app).add(store.start, store.stop)

    # Any path, as Fleet does: Ingress rewrites vary. Other methods get the router's 405 with Allow.
    @app.post("/", defaults={"path": ""}, provide_automatic_options=False)
    @app.post("/<path:path>", provide_automatic_options=False)
    def deliver(path: str) -> Response:
        wait = limiter.acquire(_source(settings))
        if wait:
            raise Throttled("too many deliveries from this source",
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
        raise BodyStalled(f"the body stalled for {timeout:g} s (--body-timeout)",
                          headers={"Connection": "close"}) from None
    # werkzeug refuses an over-long Content-Length, but silently cuts a chunked body at the limit:
    # one more byte from the server's stream tells a body of exactly the limit from a longer one.
    if len(data) >= limit and request.content_length is None and request.environ["wsgi.input"].read(1):
        raise BodyTooLarge(f"the body is over the limit of {limit} bytes (--max-body-size)")
    return data


def _source(settings: Settings) -> str:
    if settings.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.remote_addr or "unknown"
