"""Registry of the resource types the emulator serves, and per-type naming helpers."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (a group/version/plural) and how the emulator treats it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False  # a /status subresource with the CRD status strategy
    custom: bool = False  # custom resource: no strategic merge, PUT needs a resourceVersion
    tracks_generation: bool = False
    strategic_merge: bool = False  # accepts application/strategic-merge-patch+json
    admission_exempt: bool = False  # webhooks are never called for these (webhook configurations)
    verbs: tuple[str, ...] = field(
        default=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified_resource(self) -> str:
        """`gitrepos.fleet.cattle.io` or `secrets` (used in NotFound/Conflict messages)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`GitRepo.fleet.cattle.io` or `Secret` (used in Invalid messages)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"

    def collection_path(self, namespace: str | None) -> str:
        base = self.group_version_path
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


_ALL = (
    ResourceType("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",),
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    ResourceType("", "v1", "secrets", "secret", "Secret", True, (), strategic_merge=True),
    ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",), strategic_merge=True),
    ResourceType("", "v1", "events", "event", "Event", True, ("ev",), strategic_merge=True),
    ResourceType("events.k8s.io", "v1", "events", "event", "Event", True, ("ev",), strategic_merge=True),
    ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, (), strategic_merge=True),
    ResourceType("fleet.cattle.io", "v1alpha1", "gitrepos", "gitrepo", "GitRepo", True, (),
                 has_status=True, custom=True, tracks_generation=True),
    ResourceType("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                 "mutatingwebhookconfiguration", "MutatingWebhookConfiguration", False, (),
                 tracks_generation=True, strategic_merge=True, admission_exempt=True),
    ResourceType("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                 "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", False, (),
                 tracks_generation=True, strategic_merge=True, admission_exempt=True),
)

# Kinds a deployment's manifests hold (Deployments, Services, RBAC, ...), stored generically: no
# controllers, no defaulting, no validation beyond the common metadata rules. Opt-in through
# `serving_also`, so the default discovery documents stay exactly as the conformance suite pins them.
MANIFEST_KINDS = (
    ResourceType("", "v1", "services", "service", "Service", True, ("svc",), strategic_merge=True),
    ResourceType("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",),
                 strategic_merge=True),
    ResourceType("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",),
                 tracks_generation=True, strategic_merge=True),
    ResourceType("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True,
                 ("pdb",), tracks_generation=True, strategic_merge=True),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", True,
                 ("netpol",), tracks_generation=True, strategic_merge=True),
    ResourceType("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True, ("ing",),
                 tracks_generation=True, strategic_merge=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True, (), strategic_merge=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True, (),
                 strategic_merge=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False, (),
                 strategic_merge=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
                 "ClusterRoleBinding", False, (), strategic_merge=True),
)

_extra: list[ResourceType] = []

RESOURCES: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in _ALL}


@contextmanager
def serving_also(types: tuple[ResourceType, ...] = MANIFEST_KINDS) -> Iterator[None]:
    """Serve more resource types (discovery, OpenAPI, REST) while the block runs; process-wide."""
    added = [rt for rt in types if (rt.group, rt.version, rt.plural) not in RESOURCES]
    for rt in added:
        _extra.append(rt)
        RESOURCES[(rt.group, rt.version, rt.plural)] = rt
    try:
        yield
    finally:
        for rt in added:
            _extra.remove(rt)
            RESOURCES.pop((rt.group, rt.version, rt.plural), None)


def _registered() -> tuple[ResourceType, ...]:
    return _ALL + tuple(_extra)


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return RESOURCES.get((group, version, plural))


def by_plural(plural: str) -> ResourceType:
    """Resolve a test-hook name: `secrets`, `gitrepos`, or `events.events.k8s.io` for a grouped one."""
    name, _, group = plural.partition(".")
    matches = [r for r in _registered() if r.plural == name and (not group or r.group == group)]
    if not matches:
        raise KeyError(f"unknown resource {plural!r}")
    # `events` alone means the core type; a grouped name selects exactly.
    matches.sort(key=lambda r: r.group != "")
    return matches[0]


def by_api_version_kind(api_version: str, kind: str) -> ResourceType | None:
    for r in _registered():
        if r.api_version == api_version and r.kind == kind:
            return r
    return None


def all_resources() -> tuple[ResourceType, ...]:
    return _registered()


def group_versions() -> dict[str, list[str]]:
    """Non-core groups -> versions, in registry order."""
    out: dict[str, list[str]] = {}
    for r in _registered():
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out
