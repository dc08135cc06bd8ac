"""Cluster: one test's view of the shared control plane, isolated by namespace, never by restarting.

The server has no namespace controller and no garbage collector, so nothing a test creates goes
away by itself. Teardown deletes, by UID, every object of the kinds below that appeared during the
test (in any namespace but kube-system's, and cluster-scoped ones too), then the namespaces that
appeared, finalising them as the namespace controller would. Anything else a test creates it must
register with ``track()``.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import string
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from cluster.controlplane import ControlPlane
from support.waiting import wait_for

_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
_SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease"}


@dataclass(frozen=True)
class _Kind:
    kind: str
    prefix: str  # /api/v1 or /apis/GROUP/VERSION
    resource: str
    namespaced: bool = True

    @property
    def list_path(self) -> str:
        return f"{self.prefix}/{self.resource}"

    def object_path(self, namespace: str | None, name: str) -> str:
        where = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{self.prefix}{where}/{self.resource}/{name}"


# Deletion order: webhook configurations first, so a webhook whose server the test has stopped
# cannot refuse the deletions that follow; namespaces after their objects; RBAC and CRDs last.
SWEPT = (
    _Kind("MutatingWebhookConfiguration", "/apis/admissionregistration.k8s.io/v1",
          "mutatingwebhookconfigurations", namespaced=False),
    _Kind("ValidatingWebhookConfiguration", "/apis/admissionregistration.k8s.io/v1",
          "validatingwebhookconfigurations", namespaced=False),
    _Kind("GitRepo", "/apis/fleet.cattle.io/v1alpha1", "gitrepos"),
    _Kind("Secret", "/api/v1", "secrets"),
    _Kind("ConfigMap", "/api/v1", "configmaps"),
    _Kind("Event", "/api/v1", "events"),
    _Kind("Lease", "/apis/coordination.k8s.io/v1", "leases"),
    _Kind("ServiceAccount", "/api/v1", "serviceaccounts"),
    _Kind("Service", "/api/v1", "services"),
    _Kind("Deployment", "/apis/apps/v1", "deployments"),
    _Kind("Role", "/apis/rbac.authorization.k8s.io/v1", "roles"),
    _Kind("RoleBinding", "/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    _Kind("Namespace", "/api/v1", "namespaces", namespaced=False),
    _Kind("ClusterRole", "/apis/rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False),
    _Kind("ClusterRoleBinding", "/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings",
          namespaced=False),
    _Kind("CustomResourceDefinition", "/apis/apiextensions.k8s.io/v1", "customresourcedefinitions",
          namespaced=False),
)


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "x"


class Cluster:
    """The shared control plane as one test uses it; ``cleanup()`` undoes what the test created."""

    def __init__(self, control_plane: ControlPlane, directory: pathlib.Path, test_name: str) -> None:
        self.control_plane = control_plane
        self.directory = directory
        self.test_name = test_name
        self.kubeconfig = control_plane.write_kubeconfig(directory / "admin.kubeconfig")
        self.namespaces: list[str] = []
        self._tracked: list[tuple[str, str, str | None]] = []
        self._clients: list[ApiClient] = []
        self._before = self._snapshot()

    def client(self) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` for the admin (closed at teardown)."""
        api_client: ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig))
        self._clients.append(api_client)
        return api_client

    def namespace(self, prefix: str = "t") -> str:
        """Create a namespace named after the test (``t-<test>-<random>``) and return its name."""
        suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))
        head = _slug(prefix, 20)
        name = f"{head}-{_slug(self.test_name, 63 - len(head) - 6)}-{suffix}"
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        created = self.control_plane.request("POST", "/api/v1/namespaces", namespace)
        if created.status_code != 201:
            raise AssertionError(f"creating namespace {name}: {created.status_code} {created.text}")
        self.namespaces.append(name)
        return name

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 30,
                kubeconfig: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl as the admin (or with ``kubeconfig``); never raises on failure."""
        config_file = str(kubeconfig or self.kubeconfig)
        env = {**os.environ, "HOME": str(self.directory), "KUBECONFIG": config_file}
        command = [str(self.control_plane.binaries.path("kubectl")), "--kubeconfig", config_file,
                   "--cache-dir", str(self.directory / "kubectl-cache"), *args]
        return subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, env=env)

    def apply(self, manifest: str | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Server-side apply YAML text, an object or a list of objects; returns the objects as stored."""
        if isinstance(manifest, str):
            objects = [document for document in yaml.safe_load_all(manifest) if document]
        elif isinstance(manifest, Mapping):
            objects = [dict(manifest)]
        else:
            objects = [dict(item) for item in manifest]
        document = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects})
        run = self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=pytest",
                           "-o", "yaml", "-f", "-", input=document)
        if run.returncode != 0:
            raise AssertionError(f"kubectl apply failed ({run.returncode}): {run.stderr.strip()}")
        applied = yaml.safe_load(run.stdout)
        return list(applied["items"]) if applied.get("kind") == "List" else [applied]

    def track(self, kind: str, name: str, namespace: str | None = None) -> None:
        """Delete this object at teardown (kinds the sweep does not know, e.g. a PodDisruptionBudget)."""
        self._tracked.append((kind, name, namespace))

    def service_account_kubeconfig(self, namespace: str, name: str, expiration: int = 3600) -> pathlib.Path:
        """Create ServiceAccount ``namespace/name`` (if absent), mint a token for it through the
        TokenRequest API, and write a kubeconfig that authenticates with it."""
        plane = self.control_plane
        account = plane.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
        if account.status_code not in (201, 409):
            raise AssertionError(f"creating ServiceAccount {namespace}/{name}: "
                                 f"{account.status_code} {account.text}")
        minted = plane.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                               {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                "spec": {"expirationSeconds": expiration}})
        if minted.status_code != 201:
            raise AssertionError(f"TokenRequest for {namespace}/{name}: {minted.status_code} {minted.text}")
        return plane.write_kubeconfig(self.directory / f"{namespace}.{name}.kubeconfig",
                                      token=minted.json()["status"]["token"],
                                      user=f"system:serviceaccount:{namespace}:{name}")

    def _snapshot(self) -> dict[str, set[str]]:
        return {kind.kind: {item["metadata"]["uid"] for item in self._list(kind)} for kind in SWEPT}

    def _list(self, kind: _Kind) -> list[dict[str, Any]]:
        listed = self.control_plane.request("GET", kind.list_path, timeout=30,
                                            headers={"Accept": _METADATA_ONLY})
        listed.raise_for_status()
        items: list[dict[str, Any]] = listed.json().get("items") or []
        return [item for item in items if item["metadata"].get("namespace") not in _SYSTEM_NAMESPACES]

    def cleanup(self) -> None:
        """Delete what appeared since set-up and what was tracked; close the clients."""
        errors: list[str] = []
        for kind in SWEPT:
            for item in self._list(kind):
                metadata = item["metadata"]
                if metadata["uid"] not in self._before[kind.kind]:
                    errors += self._delete(kind, metadata)
        errors += self._delete_tracked()
        for api_client in self._clients:
            api_client.close()  # type: ignore[no-untyped-call]
        if errors:
            raise AssertionError("cluster clean-up left objects behind:\n" + "\n".join(errors))

    def _delete(self, kind: _Kind, metadata: Mapping[str, Any]) -> list[str]:
        path = kind.object_path(metadata.get("namespace"), metadata["name"])
        request = self.control_plane.request
        if metadata.get("finalizers") and kind.namespaced:
            # Nothing here runs the controllers that would remove them (Fleet's, for GitRepos). The
            # finalizers of CRDs and namespaces are the server's own, handled below or by the server.
            request("PATCH", path, {"metadata": {"finalizers": None}}, "application/merge-patch+json")
        deleted = request("DELETE", path)
        if deleted.status_code not in (200, 202, 404):
            return [f"DELETE {path}: {deleted.status_code} {deleted.text}"]
        if kind.kind == "Namespace" and deleted.status_code != 404:
            # What the namespace controller does once the namespace is empty: finalise, delete.
            namespace = deleted.json()
            namespace["spec"]["finalizers"] = []
            finalized = request("PUT", f"{path}/finalize", namespace)
            if finalized.status_code not in (200, 404):
                return [f"PUT {path}/finalize: {finalized.status_code} {finalized.text}"]
            request("DELETE", path)
        if kind.kind == "CustomResourceDefinition":
            # The server deletes the CRD's objects first; a later test may create the same CRD again.
            wait_for(lambda: request("GET", path).status_code == 404, timeout=30,
                     message=f"CRD {metadata['name']} to be deleted")
        return []

    def _delete_tracked(self) -> list[str]:
        by_namespace: dict[str | None, list[str]] = {}
        for kind, name, namespace in self._tracked:
            by_namespace.setdefault(namespace, []).append(f"{kind}/{name}")
        errors = []
        for namespace, names in by_namespace.items():
            where = ["--namespace", namespace] if namespace else []
            run = self.kubectl("delete", "--ignore-not-found", "--wait=false", *where, *names)
            if run.returncode != 0:
                errors.append(f"kubectl delete {' '.join(names)}: {run.stderr.strip()}")
        return errors
