"""The receiver's Flask app: ``POST`` on any path is a provider delivery (Ingress rewrites vary).

The request has been read whole by the serving worker before this runs (see
:mod:`controller.serving.worker`), so nothing here waits on the client.
"""

from __future__ import annotations

from flask import Flask, Response, g, jsonify, request
from gunicorn.http.errors import NoMoreData, ParseException

from controller.logs import safe
from controller.providers import DELIVERY_ID_HEADERS
from controller.receiver.limits import FailureBudget, client_address
from controller.receiver.pipeline import Delivery, Receiver
from controller.serving import web
from controller.serving.errors import BodyTooLarge, MalformedRequest, ServiceError
from controller.settings import Settings
from controller.store import Store


def create_app(settings: Settings, store: Store) -> Flask:
    """Build the receiver app around a store; its caches start with :func:`web.background`."""
    app = Flask("gitjob_webhook.receiver")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_size
    receiver = Receiver(settings, store)
    failures = FailureBudget(settings.rate_limit, settings.rate_burst)
    hops = settings.trusted_proxies if settings.trust_forwarded_for else 0
    web.install(app, "receiver", store.readiness)
    web.background(app).add(store.start, store.stop)

    # Any path, as Fleet does: Ingress rewrites vary. Other methods get the router's 405 with Allow.
    @app.post("/", defaults={"path": ""}, provide_automatic_options=False)
    @app.post("/<path:path>", provide_automatic_options=False)
    def deliver(path: str) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        g.delivery_id = safe(next((headers[name] for name in DELIVERY_ID_HEADERS if headers.get(name)), None))
        source = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), hops)
        try:
            reply = receiver.handle(Delivery(headers, _body(settings.max_body_size)),
                                    throttled=failures.exhausted(source))
        except ServiceError as error:
            # What fails spends the source's budget; the receiver's own trouble (5xx) does not.
            if error.status < 500:
                failures.spend(source)
            raise
        if not reply.authenticated:
            failures.spend(source)
        # The request's log line names the delivery as the answer does (Azure DevOps: the body's id).
        g.delivery_id = safe(reply.body.get("delivery")) or g.delivery_id
        response = jsonify(reply.body)
        response.status_code = reply.status
        response.headers.update(reply.headers)
        return response

    return app


def _body(limit: int) -> bytes:
    """The raw body (already in memory); 413 when it is over ``limit``, announced or chunked."""
    try:
        data = request.get_data(cache=False)
    except (ParseException, NoMoreData) as error:
        # The worker's framing check is meant to catch these first; gunicorn's reader is the last word.
        raise MalformedRequest(f"the request body is malformed: {type(error).__name__}") from None
    # werkzeug refuses an over-long Content-Length, but silently cuts a chunked body at the limit:
    # one more byte from the stream tells a body of exactly the limit from a longer one.
    if len(data) >= limit and request.content_length is None and request.environ["wsgi.input"].read(1):
        raise BodyTooLarge(f"the body is over the limit of {limit} bytes (--max-body-size)")
    return data
