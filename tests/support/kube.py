"""Objects on the real control plane as the admin sees them: arrange what the service will find,
check what it wrote, follow what changed.

These are plain JSON requests (``ControlPlane.request``) and a plain watch, never the code under
test, so that a test checks the service against the API server and not against itself.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
import yaml

from cluster.controlplane import ControlPlane
from cluster.isolation import Cluster
from support.paths import MANIFESTS
from support.waiting import wait_for

JsonObject = dict[str, Any]

CLOSE_WATCHES_ON_STOP = ("--shutdown-watch-termination-grace-period=2s",)
"""kube-apiserver flags for a private control plane a test stops under running clients. By default
the server holds its shutdown while watches are open, until the harness kills it 15 s later; with
this it ends them, as a client sees when a server goes away."""

# kind → (API prefix, resource); what the tests create, read and delete.
RESOURCES: dict[str, tuple[str, str]] = {
    "GitRepo": ("/apis/fleet.cattle.io/v1alpha1", "gitrepos"),
    "Secret": ("/api/v1", "secrets"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "Event": ("/api/v1", "events"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1",
                                     "mutatingwebhookconfigurations"),
    "ValidatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1",
                                       "validatingwebhookconfigurations"),
}
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
CLUSTER_SCOPED = frozenset(WEBHOOK_KINDS)


def api_path(kind: str, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
    """The collection (no name) or object path of ``kind``, with an optional subresource."""
    prefix, resource = RESOURCES[kind]
    where = f"/namespaces/{namespace}" if namespace and kind not in CLUSTER_SCOPED else ""
    path = f"{prefix}{where}/{resource}"
    return path + (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")


def gitrepo(name: str, namespace: str, repo: str, **spec: Any) -> JsonObject:
    """A GitRepo tracking ``repo`` (Fleet's default branch unless ``branch=`` is given)."""
    return {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"repo": repo, **spec}}


def secret(name: str, namespace: str, **string_data: str) -> JsonObject:
    """An Opaque Secret from plain-text values."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": dict(string_data)}


class Objects:
    """Create, read, change and delete objects as the admin; every call checks its answer."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def try_create(self, obj: Mapping[str, Any], dry_run: bool = False) -> requests.Response:
        """POST the object and return the answer, whatever it is."""
        metadata = obj["metadata"]
        path = api_path(obj["kind"], metadata.get("namespace"))
        return self.plane.request("POST", path + ("?dryRun=All" if dry_run else ""), obj)

    def create(self, obj: Mapping[str, Any]) -> JsonObject:
        """POST the object; returns it as stored."""
        created = self.try_create(obj)
        assert created.status_code == 201, f"creating {obj['kind']} {obj['metadata']['name']}: {created.text}"
        stored: JsonObject = created.json()
        return stored

    def create_all(self, objects: Iterable[Mapping[str, Any]], threads: int = 8) -> None:
        """POST many objects over ``threads`` keep-alive connections at once."""
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(self._create_with_own_session, objects):
                pass

    def _create_with_own_session(self, obj: Mapping[str, Any]) -> None:
        session = _thread_session(self.plane)
        metadata = obj["metadata"]
        created = session.post(self.plane.url + api_path(obj["kind"], metadata.get("namespace")),
                               data=json.dumps(obj), headers={"Content-Type": "application/json"}, timeout=60)
        assert created.status_code == 201, f"creating {obj['kind']} {metadata['name']}: {created.text}"

    def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None:
        """The object, or None when it does not exist."""
        found = self.plane.request("GET", api_path(kind, namespace, name))
        if found.status_code == 404:
            return None
        assert found.status_code == 200, found.text
        obj: JsonObject = found.json()
        return obj

    def must_get(self, kind: str, namespace: str | None, name: str) -> JsonObject:
        """The object, which must exist."""
        obj = self.get(kind, namespace, name)
        assert obj is not None, f"{kind} {namespace}/{name} does not exist"
        return obj

    def list(self, kind: str, namespace: str | None = None) -> list[JsonObject]:
        """Every object of ``kind`` in ``namespace`` (all namespaces when None)."""
        listed = self.plane.request("GET", api_path(kind, namespace), timeout=60)
        assert listed.status_code == 200, listed.text
        items: list[JsonObject] = listed.json().get("items") or []
        return items

    def patch(self, kind: str, namespace: str | None, name: str, body: Mapping[str, Any],
              subresource: str = "") -> JsonObject:
        """Merge-patch the object (or its subresource); returns it as stored."""
        patched = self.plane.request("PATCH", api_path(kind, namespace, name, subresource), body,
                                     "application/merge-patch+json")
        assert patched.status_code == 200, patched.text
        obj: JsonObject = patched.json()
        return obj

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        """Delete the object (it must exist)."""
        deleted = self.plane.request("DELETE", api_path(kind, namespace, name))
        assert deleted.status_code in (200, 202), deleted.text

    def delete_all(self, kind: str, namespace: str) -> None:
        """Delete every object of ``kind`` in ``namespace`` with one request (far quicker than one
        DELETE per object, which is how the cluster fixture cleans up)."""
        deleted = self.plane.request("DELETE", api_path(kind, namespace), timeout=300)
        assert deleted.status_code == 200, deleted.text


_sessions = threading.local()


def _thread_session(plane: ControlPlane) -> requests.Session:
    """One keep-alive session per thread and control plane (requests sessions are not thread-safe)."""
    cached: dict[str, requests.Session] = getattr(_sessions, "by_url", {})
    _sessions.by_url = cached
    if plane.url not in cached:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(plane.ca_file)
        session.headers["Authorization"] = f"Bearer {plane.token}"
        cached[plane.url] = session
    return cached[plane.url]


class StatusWatch:
    """Every GitRepo status the API server stored in a namespace, from a watch opened on ``start()``.

    The server sends one event per write, so a (GitRepo, webhookCommit) written twice shows up
    twice, and a write the client never heard back about shows up all the same.
    """

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.plane = plane
        self.namespace = namespace
        self._writes: Counter[tuple[str, str]] = Counter()
        self._last: dict[str, tuple[str, str]] = {}
        self._versions: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._connection: http.client.HTTPSConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> StatusWatch:
        """List (to learn the current statuses and resourceVersion), then watch from there."""
        listed = self.plane.request("GET", api_path("GitRepo", self.namespace))
        assert listed.status_code == 200, listed.text
        for item in listed.json().get("items") or []:
            self._last[item["metadata"]["name"]] = _status_of(item)
            self._versions[item["metadata"]["name"]] = item["metadata"]["resourceVersion"]
        version = str(listed.json()["metadata"]["resourceVersion"])
        context = ssl.create_default_context(cafile=str(self.plane.ca_file))
        self._connection = http.client.HTTPSConnection("127.0.0.1", self.plane.port, context=context,
                                                       timeout=30)
        query = urllib.parse.urlencode({"watch": "true", "resourceVersion": version})
        self._connection.request("GET", f"{api_path('GitRepo', self.namespace)}?{query}",
                                 headers={"Authorization": f"Bearer {self.plane.token}"})
        response = self._connection.getresponse()
        assert response.status == 200, response.read()
        if self._connection.sock is not None:
            self._connection.sock.settimeout(None)
        self._response = response
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the watch."""
        self._stopped.set()
        connection = self._connection
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=10)
        if connection is not None:
            connection.close()

    def __enter__(self) -> StatusWatch:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def writes(self) -> Counter[tuple[str, str]]:
        """(GitRepo name, webhookCommit) → how many writes stored that commit there so far."""
        with self._lock:
            return Counter(self._writes)

    def wait_for_writes(self, expected: Iterable[tuple[str, str]], timeout: float = 30.0) -> None:
        """Wait until each (GitRepo, commit) has been seen written at least once."""
        wanted = set(expected)

        def seen() -> bool:
            if self.error is not None:
                raise AssertionError(f"the status watch broke: {self.error!r}")
            return not wanted - set(self.writes())
        wait_for(seen, timeout=timeout, interval=0.05,
                 message=f"{len(wanted)} status writes to be seen by the watch")

    def wait_until_current(self, timeout: float = 30.0) -> None:
        """Wait until the watch has brought every GitRepo of the namespace as the server has it now."""
        def current() -> bool:
            if self.error is not None:
                raise AssertionError(f"the status watch broke: {self.error!r}")
            listed = self.plane.request("GET", api_path("GitRepo", self.namespace))
            assert listed.status_code == 200, listed.text
            with self._lock:
                return all(self._versions.get(item["metadata"]["name"]) == item["metadata"]["resourceVersion"]
                           for item in listed.json().get("items") or [])
        wait_for(current, timeout=timeout, interval=0.05, message="the status watch to catch up")

    def _run(self) -> None:
        pending = b""
        assert self._response is not None
        try:
            while not self._stopped.is_set():
                chunk = self._response.read1(65536)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        self._event(json.loads(line))
        except (OSError, http.client.HTTPException, ValueError) as error:
            if not self._stopped.is_set():
                self.error = error
        if not self._stopped.is_set() and self.error is None:
            self.error = EOFError("the API server ended the watch")

    def _event(self, event: Mapping[str, Any]) -> None:
        obj = event.get("object") or {}
        if event.get("type") not in ("ADDED", "MODIFIED"):
            if event.get("type") == "ERROR":
                self.error = AssertionError(f"watch error: {obj}")
            return
        name = obj["metadata"]["name"]
        status = _status_of(obj)
        with self._lock:
            self._versions[name] = obj["metadata"]["resourceVersion"]
            # A write that changed something else (spec, metadata) is not a status write.
            if status != self._last.get(name) and status[0]:
                self._writes[(name, status[0])] += 1
            self._last[name] = status


def _status_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    status = obj.get("status") or {}
    return str(status.get("webhookCommit") or ""), str(status.get("lastWebhookTime") or "")


def names(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sorted names of API objects."""
    return sorted(str(obj["metadata"]["name"]) for obj in objects)


def rendered_webhook_configurations(cluster: Cluster) -> list[JsonObject]:
    """The webhook configurations of ``kubectl kustomize manifests/`` (what ``make deploy`` applies)."""
    rendered = cluster.kubectl("kustomize", str(MANIFESTS), timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    found = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] in WEBHOOK_KINDS]
    assert sorted(d["kind"] for d in found) == list(WEBHOOK_KINDS)
    return found
