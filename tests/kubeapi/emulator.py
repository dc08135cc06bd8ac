"""`Emulator`: the test-facing object that owns the store, the HTTP server and the test hooks."""

from __future__ import annotations

import base64
import os
import ssl
import threading
import time
from typing import Any, Callable, Iterable

import yaml

from . import errors
from .admission import ADMIN, UserInfo
from .api import Api, Context
from .hooks import Hooks, RequestRecord
from .resources import by_api_version_kind, by_plural
from .server import EmulatorHTTPServer
from .store import Store
from .tlsutil import CertPair, TestCA, test_ca

DEFAULT_NAMESPACES = ("default", "cattle-fleet-system", "fleet-local", "fleet-default")


class Emulator:
    """An in-process kube-apiserver stand-in on 127.0.0.1:<ephemeral port>."""

    def __init__(
        self,
        tls: bool = True,
        token: str | None = "test-token",
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        history_size: int = 1000,
    ) -> None:
        self.tls = tls
        self.token = token
        self.namespaces = tuple(namespaces)
        self.hooks = Hooks()
        self.api = Api(Store(history_size))
        self.tokens: dict[str, UserInfo] = {token: ADMIN} if token else {}
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ca: TestCA | None = test_ca() if tls else None
        self._seed()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        ctx: ssl.SSLContext | None = None
        if self._ca is not None:
            ctx = self._ca.server_context(self._ca.issue(("localhost",), ("127.0.0.1",)))
        self._server = EmulatorHTTPServer(self.api, self.hooks, self.tokens, ctx)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kubeapi-emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.stopping.set()
        self.api.store.end_watches()
        server.shutdown()
        server.server_close()
        server.wait_idle_watches(2.0)
        server.close_connections()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None

    def __enter__(self) -> "Emulator":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- TLS and clients ---------------------------------------------------------------------------
    @property
    def ca_file(self) -> str | None:
        return self._ca.ca_file if self._ca else None

    @property
    def ca_pem(self) -> bytes | None:
        return self._ca.cert_pem if self._ca else None

    def issue_cert(
        self, dns_names: Iterable[str] = ("localhost",), ip_addresses: Iterable[str] = ("127.0.0.1",)
    ) -> CertPair:
        """A server certificate from the test CA (for webhook servers the emulator will call)."""
        return test_ca().issue(tuple(dns_names), tuple(ip_addresses))

    def add_token(self, token: str, username: str, groups: Iterable[str] = ("system:authenticated",)) -> None:
        """Accept another bearer token, reported to webhooks as this user."""
        self.tokens[token] = UserInfo(username, tuple(groups))

    def kubeconfig(self) -> dict[str, Any]:
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "emulator", "cluster": cluster}],
            "users": [{"name": "emulator-admin", "user": user}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator-admin", "namespace": "default"},
                }
            ],
            "current-context": "emulator",
        }

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> str:
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(self.kubeconfig(), fh)
        return os.fspath(path)

    # -- seeding and direct access -----------------------------------------------------------------
    def _seed(self) -> None:
        for ns in self.namespaces:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create through the POST code path (server metadata filled in), without admission."""
        rt = by_api_version_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise KeyError(f"unknown type {obj.get('apiVersion')}/{obj.get('kind')}")
        namespace = (obj.get("metadata") or {}).get("namespace") if rt.namespaced else None
        return self.api.create(rt, namespace, obj, Context(admission=False))

    def get(self, kind_plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.api.store.get(by_plural(kind_plural), namespace, name)

    def list(self, kind_plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.api.store.list(by_plural(kind_plural), namespace)[1]

    def delete(self, kind_plural: str, namespace: str | None, name: str) -> None:
        """Remove at once (finalizers ignored), emitting DELETED; missing objects are ignored."""
        try:
            self.api.store.remove(by_plural(kind_plural), namespace, name)
        except errors.ApiError:
            pass

    @property
    def resource_version(self) -> int:
        return self.api.store.resource_version

    # -- test hooks --------------------------------------------------------------------------------
    def map_service(self, namespace: str, name: str, port: int) -> None:
        self.api.admission.map_service(namespace, name, port)

    def fail_next(
        self, method: str, path_regex: str, status: int, count: int = 1, retry_after: int | None = None
    ) -> None:
        self.hooks.fail_next(method, path_regex, status, count, retry_after)

    def delay(self, method: str, path_regex: str, seconds: float, count: int | None = None) -> None:
        self.hooks.delay(method, path_regex, seconds, count)

    def cut_watches(self) -> int:
        return self._server.cut_watches() if self._server else 0

    def compact(self) -> None:
        self.api.store.compact()

    @property
    def requests(self) -> list[RequestRecord]:
        return self.hooks.requests

    @staticmethod
    def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def reset(self) -> None:
        """Back to the seeded namespaces: clears objects, open watches, hooks, log and service map."""
        if self._server is not None:
            self._server.cut_watches()
        self.api.store.clear()
        self.hooks.clear()
        self.api.admission.clear_services()
        self.tokens.clear()
        if self.token:
            self.tokens[self.token] = ADMIN
        self._seed()
