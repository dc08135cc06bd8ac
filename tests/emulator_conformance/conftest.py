"""Fixtures for the emulator's conformance suite: the emulator plugin plus a tiny HTTPS admission
webhook server whose certificate comes from the emulator's test CA."""
from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest

from kubeapi import Emulator

Responder = Callable[[dict[str, Any]], dict[str, Any]]


def allow(request: dict[str, Any]) -> dict[str, Any]:
    return {"uid": request["uid"], "allowed": True}


class WebhookServer:
    """HTTPS AdmissionReview endpoint; `responders[path]` builds the `response` for a request."""

    def __init__(self, emulator: Emulator, dns_names: tuple[str, ...]) -> None:
        pair = emulator.issue_cert(("localhost",) + dns_names, ("127.0.0.1",))
        self.ca_bundle = base64.b64encode(emulator.ca_pem or b"").decode()
        self.reviews: list[dict[str, Any]] = []
        self.responders: dict[str, Responder] = {}
        self.raw: dict[str, Callable[[dict[str, Any]], Any]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = self.path.split("?")[0]
                outer.reviews.append({"path": path, "query": self.path.partition("?")[2], **review})
                if path in outer.raw:
                    answer = outer.raw[path](review["request"])
                else:
                    response = outer.responders.get(path, allow)(review["request"])
                    answer = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                              "response": response}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        ctx = emulator_ca_context(emulator, pair)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def emulator_ca_context(emulator: Emulator, pair: Any) -> Any:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.cert_file, pair.key_file)
    return ctx


@pytest.fixture
def webhook_server(emulator: Emulator) -> Iterator[WebhookServer]:
    server = WebhookServer(emulator, ("webhook.cattle-fleet-system.svc",))
    try:
        yield server
    finally:
        server.close()
