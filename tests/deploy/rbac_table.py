"""What each component asks of the API server, and a small RBAC authorizer to hold the manifests to it.

``CALLS`` is read off the code (``controller/store/kube.py``, ``kubeapi.py``, ``events.py``,
``lease.py``, ``reflector.py``, ``reconcile.py``); ``test_rbac.py`` checks the rendered RBAC grants
exactly these, and ``test_cluster_deploy.py`` checks the running components make no other request.
``certs inject`` is run by an operator with their own credentials, not by a pod: it is not here.

Path templates: ``{ns}`` is any namespace (where GitRepos live), ``{controller}`` the controller
namespace (cattle-fleet-system), ``{name}`` any name; a literal is a fixed name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONTROLLER_NAMESPACE = "cattle-fleet-system"
SERVICE_ACCOUNTS = {"receiver": "gitjob-webhook-receiver", "admission": "gitjob-webhook-admission"}


@dataclass(frozen=True)
class Call:
    """One kind of request a component makes."""

    component: str
    method: str
    path: str
    watch: bool = False
    field_selector: str = ""
    why: str = ""
    granted_at_run_time: bool = False
    """Granted by the Role the admission side writes (controller/store/rbac.py), not by the manifests."""


GITREPOS = "/apis/fleet.cattle.io/v1alpha1/gitrepos"
GITREPO = "/apis/fleet.cattle.io/v1alpha1/namespaces/{ns}/gitrepos/{name}"
SECRETS = "/api/v1/namespaces/{ns}/secrets"
CONTROLLER_SECRETS = "/api/v1/namespaces/{controller}/secrets"
EVENTS = "/api/v1/namespaces/{ns}/events"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{controller}/leases"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
ACCESS_ROLE = "gitjob-webhook-receiver-secrets"

CALLS: tuple[Call, ...] = (
    # Receiver: reflector.py (list, watch), kube.py patch_status, events.py, kube.py _watch_secret.
    Call("receiver", "GET", GITREPOS, why="GitRepo cache: list"),
    Call("receiver", "GET", GITREPOS, watch=True, why="GitRepo cache: watch"),
    Call("receiver", "PATCH", GITREPO + "/status", why="status.webhookCommit, lastWebhookTime"),
    Call("receiver", "POST", EVENTS, why="WebhookReceived Event"),
    Call("receiver", "GET", EVENTS + "/{name}", why="the same Event again: read its count"),
    Call("receiver", "PATCH", EVENTS + "/{name}", why="the same Event again: bump its count"),
    Call("receiver", "GET", CONTROLLER_SECRETS, field_selector="metadata.name=gitjob-webhook",
         why="the global Secret: list"),
    Call("receiver", "GET", CONTROLLER_SECRETS, watch=True, field_selector="metadata.name=gitjob-webhook",
         why="the global Secret: watch"),
    # secrets.py: a Secret a GitRepo names, watched by name, or read with a GET past the watch bound.
    Call("receiver", "GET", SECRETS, field_selector="metadata.name={name}", granted_at_run_time=True,
         why="a GitRepo's spec.webhookSecret: list"),
    Call("receiver", "GET", SECRETS, watch=True, field_selector="metadata.name={name}",
         granted_at_run_time=True, why="a GitRepo's spec.webhookSecret: watch"),
    Call("receiver", "GET", SECRETS + "/{name}", granted_at_run_time=True,
         why="a GitRepo's spec.webhookSecret: read in turn past the watch bound"),
    # Admission server: reflector.py, kube.py set_polling_interval (reconcile.py), lease.py.
    Call("admission", "GET", GITREPOS, why="GitRepo cache: list"),
    Call("admission", "GET", GITREPOS, watch=True, why="GitRepo cache: watch"),
    Call("admission", "PATCH", GITREPO, why="reconcile: spec.pollingInterval and its annotation"),
    Call("admission", "GET", CONTROLLER_SECRETS, field_selector="metadata.name=gitjob-webhook",
         why="webhook mode auto: the global Secret, list"),
    Call("admission", "GET", CONTROLLER_SECRETS, watch=True, field_selector="metadata.name=gitjob-webhook",
         why="webhook mode auto: the global Secret, watch"),
    Call("admission", "GET", LEASES + "/gitjob-webhook-reconcile", why="leader election: read"),
    Call("admission", "POST", LEASES, why="leader election: first replica creates the Lease"),
    Call("admission", "PUT", LEASES + "/gitjob-webhook-reconcile", why="leader election: take or renew"),
    # admission/missed.py through events.py: the leader's WebhookMissed Events.
    Call("admission", "POST", EVENTS, why="WebhookMissed Event"),
    Call("admission", "GET", EVENTS + "/{name}", why="the same WebhookMissed Event again: read its count"),
    Call("admission", "PATCH", EVENTS + "/{name}", why="the same WebhookMissed Event again: bump its count"),
    # admission/access.py through store/rbac.py: the receiver's Secret access, one Role per namespace.
    Call("admission", "GET", RBAC + "/roles", field_selector=f"metadata.name={ACCESS_ROLE}",
         why="the receiver's Secret access: read back"),
    Call("admission", "PATCH", RBAC + "/namespaces/{ns}/roles/" + ACCESS_ROLE,
         why="the receiver's Secret access: server-side apply of the Role"),
    Call("admission", "PATCH", RBAC + "/namespaces/{ns}/rolebindings/" + ACCESS_ROLE,
         why="the receiver's Secret access: server-side apply of the RoleBinding"),
    Call("admission", "POST", RBAC + "/namespaces/{ns}/roles",
         why="an apply that creates the Role is also authorized as create"),
    Call("admission", "POST", RBAC + "/namespaces/{ns}/rolebindings",
         why="an apply that creates the RoleBinding is also authorized as create"),
    Call("admission", "DELETE", RBAC + "/namespaces/{ns}/roles/" + ACCESS_ROLE,
         why="the receiver's Secret access: no GitRepo names a Secret there any more"),
    Call("admission", "DELETE", RBAC + "/namespaces/{ns}/rolebindings/" + ACCESS_ROLE,
         why="the receiver's Secret access: no GitRepo names a Secret there any more"),
    Call("admission", "ESCALATE", RBAC + "/namespaces/{ns}/roles/" + ACCESS_ROLE,
         why="the Role grants Secret reads the admission account does not hold itself"),
    Call("admission", "BIND", RBAC + "/namespaces/{ns}/roles/" + ACCESS_ROLE,
         why="binding that Role to the receiver's ServiceAccount"),
)


@dataclass(frozen=True)
class Attributes:
    """The authorization attributes of a request, as kube-apiserver's RequestInfo derives them."""

    verb: str
    group: str
    resource: str  # with "/subresource"
    namespace: str  # "" for a cluster-wide collection
    name: str  # "" when none (a list without a metadata.name field selector, a create)


_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)"
                   r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?"
                   r"(?:/(?P<sub>[^/]+))?$")


def attributes(method: str, path: str, query: Mapping[str, Any]) -> Attributes:
    """Verb, group, resource, namespace and name of a request (list/watch by metadata.name get the name)."""
    match = _PATH.match(path)
    assert match, f"not a resource path: {path}"
    name = match["name"] or ""
    resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
    if method == "GET" and not name:
        verb = "watch" if str(query.get("watch", "")).lower() in ("true", "1") else "list"
        selector = str(query.get("fieldSelector") or "")
        if selector.startswith("metadata.name=") and "," not in selector:
            name = selector.split("=", 1)[1]
    else:
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
                "ESCALATE": "escalate", "BIND": "bind"}[method]
    return Attributes(verb, match["group"] or "", resource, match["namespace"] or "", name)


def call_attributes(call: Call, namespace: str = "fleet-default", name: str = "some-name") -> Attributes:
    """The attributes of a call, with ``{ns}`` and ``{name}`` filled in."""
    values = {"ns": namespace, "controller": CONTROLLER_NAMESPACE, "name": name}
    query: dict[str, str] = {}
    if call.watch:
        query["watch"] = "true"
    if call.field_selector:
        query["fieldSelector"] = call.field_selector.format(**values)
    return attributes(call.method, call.path.format(**values), query)


@dataclass(frozen=True)
class Grant:
    """One rule of a Role or ClusterRole, where it applies (``namespace`` "" = everywhere)."""

    source: str
    namespace: str
    rule: Mapping[str, Any]

    def allows(self, attrs: Attributes) -> bool:
        rule = self.rule
        if self.namespace and attrs.namespace != self.namespace:
            return False
        if attrs.group not in rule.get("apiGroups", ()) or attrs.resource not in rule.get("resources", ()):
            return False
        if attrs.verb not in rule.get("verbs", ()):
            return False
        names = rule.get("resourceNames") or ()
        return not names or attrs.name in names


def grants_for(objects: Iterable[dict[str, Any]], service_account: str,
               namespace: str = CONTROLLER_NAMESPACE) -> list[Grant]:
    """Every rule bound to that ServiceAccount by the given RoleBindings and ClusterRoleBindings."""
    objects = list(objects)
    roles = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects
             if o["kind"] in ("Role", "ClusterRole")}
    grants: list[Grant] = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == service_account
                   and s.get("namespace") == namespace for s in binding.get("subjects") or ()):
            continue
        where = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        ref = binding["roleRef"]
        role = roles[(ref["kind"], where if ref["kind"] == "Role" else "", ref["name"])]
        source = f"{ref['kind']} {ref['name']}" + (f" in {where}" if where else "")
        grants.extend(Grant(source, where, rule) for rule in role.get("rules") or ())
    return grants


def allowed(grants: Iterable[Grant], attrs: Attributes) -> bool:
    """Whether any grant allows the request."""
    return any(grant.allows(attrs) for grant in grants)


def matching_call(component: str, method: str, path: str, query: Mapping[str, Any]) -> Call | None:
    """The entry of ``CALLS`` a recorded request is an instance of."""
    watch = str(query.get("watch", "")).lower() in ("true", "1")
    selector = str(query.get("fieldSelector") or "")
    for call in CALLS:
        if call.component != component or call.method != method or call.watch != watch:
            continue
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", lambda m: "[^/]+" if m[1] != "controller"
                               else CONTROLLER_NAMESPACE, re.escape(call.path)) + "$"
        if not re.match(pattern, path):
            continue
        wanted = call.field_selector
        if wanted and not re.fullmatch(re.escape(wanted).replace(r"\{name\}", "[^,]+"), selector):
            continue
        if not wanted and selector:
            continue
        return call
    return None
