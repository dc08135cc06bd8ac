"""The admission benchmark's floor: a bare Flask app answering a constant allowed AdmissionReview.

Served through the service's own gunicorn setup (``controller.serving.gunicorn.gunicorn_options`` and the same
``ReloadingContext`` TLS front), so it differs from ``serve admission`` only in the work per request:
no review parsing, no decision, no metrics, no logging, no store.

Run: ``python tests/bench/floor_app.py --listen 127.0.0.1:PORT --tls-cert F --tls-key F``.
"""

from __future__ import annotations

import argparse
import json

from flask import Flask, Response

ALLOWED = json.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "floor", "allowed": True},
    }
)


def create_app() -> Flask:
    """One route per admission path, each returning the same constant body."""
    app = Flask("floor")

    @app.get("/readyz")
    def readyz() -> Response:
        return Response('{"status":"ready"}', content_type="application/json")

    @app.post("/mutate/gitrepos")
    @app.post("/validate/secrets")
    def review() -> Response:
        return Response(ALLOWED, content_type="application/json")

    return app


def main() -> None:
    from controller.serving import gunicorn as server
    from controller.settings import Settings, build
    from controller.serving.tls import ReloadingContext

    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--tls-cert", dest="tls_cert", required=True)
    parser.add_argument("--tls-key", dest="tls_key", required=True)
    arguments = vars(parser.parse_args())
    settings: Settings = build(arguments, environ={})
    assert settings.listen is not None
    context = ReloadingContext(settings.tls_cert or "", settings.tls_key or "")
    options = server.gunicorn_options(settings, settings.listen, "floor", 3 * 1024 * 1024, context.front)
    server.run(create_app, options)


if __name__ == "__main__":
    main()
