"""The receiver's per-namespace read access to webhook Secrets, as Roles and RoleBindings.

Written by server-side apply under one name, which is what RBAC ``resourceNames`` can scope the
admission ServiceAccount's rights to (a create could not be limited by name); read back with a
``metadata.name`` field selector for the same reason.
"""

from __future__ import annotations

from typing import Any

from controller.store.kubeapi import ApiError, KubeApi

ROLE_NAME = "gitjob-webhook-receiver-secrets"
"""The Role and RoleBinding, in each namespace whose GitRepos name webhook Secrets, that let the
receiver read exactly those Secrets (maintained by the admission side)."""
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "gitjob-webhook-admission"
_GROUP = "rbac.authorization.k8s.io"


def _path(kind: str, namespace: str = "", name: str = "") -> str:
    base = f"/apis/{_GROUP}/v1"
    if namespace:
        base += f"/namespaces/{namespace}"
    return f"{base}/{kind}" + (f"/{name}" if name else "")


def read_grants(api: KubeApi, role: str = ROLE_NAME) -> dict[str, tuple[str, ...]]:
    """Namespace → the Secret names the Role of that name grants, across the cluster."""
    answer = api.request("GET", _path("roles"), query=[("fieldSelector", f"metadata.name={role}")],
                         timeout=10)
    grants: dict[str, tuple[str, ...]] = {}
    for item in answer.get("items") or []:
        namespace = str((item.get("metadata") or {}).get("namespace") or "")
        names = {str(name) for rule in item.get("rules") or [] for name in rule.get("resourceNames") or []}
        grants[namespace] = tuple(sorted(names))
    return grants


_LABELS = {"app.kubernetes.io/name": "gitjob-webhook", "app.kubernetes.io/component": "receiver"}


def role_object(namespace: str, secrets: tuple[str, ...], role: str = ROLE_NAME) -> dict[str, Any]:
    """The Role that lets its subject get, list and watch exactly ``secrets`` in ``namespace``."""
    return {
        "apiVersion": f"{_GROUP}/v1", "kind": "Role",
        "metadata": {"name": role, "namespace": namespace, "labels": _LABELS},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(secrets),
                   "verbs": ["get", "list", "watch"]}],
    }


def binding_object(namespace: str, subject: tuple[str, str], role: str = ROLE_NAME) -> dict[str, Any]:
    """The RoleBinding of that Role to ``subject`` (namespace, ServiceAccount name)."""
    return {
        "apiVersion": f"{_GROUP}/v1", "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace, "labels": _LABELS},
        "roleRef": {"apiGroup": _GROUP, "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "namespace": subject[0], "name": subject[1]}],
    }


def apply_grant(api: KubeApi, role: str, namespace: str, secrets: tuple[str, ...],
                subject: tuple[str, str]) -> None:
    """Let ``subject`` (namespace, ServiceAccount) get, list and watch exactly ``secrets`` there."""
    for kind, body in (("roles", role_object(namespace, secrets, role)),
                       ("rolebindings", binding_object(namespace, subject, role))):
        api.request("PATCH", _path(kind, namespace, role), body=body, content_type=APPLY_PATCH,
                    query=[("fieldManager", FIELD_MANAGER), ("force", "true")], timeout=10)


def delete_grant(api: KubeApi, role: str, namespace: str) -> None:
    """Remove the RoleBinding, then the Role (either may be gone already)."""
    for kind in ("rolebindings", "roles"):
        try:
            api.request("DELETE", _path(kind, namespace, role), timeout=10)
        except ApiError as error:
            if error.status != 404:
                raise
