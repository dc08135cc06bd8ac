"""The rendered RBAC grants each component exactly the requests its code makes (``rbac_table.CALLS``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from controller.store import rbac
from deploy.conftest import find
from deploy.rbac_table import (CALLS, CONTROLLER_NAMESPACE, SERVICE_ACCOUNTS, Attributes, Call, Grant,
                               allowed, call_attributes, grants_for)

COMPONENTS = tuple(SERVICE_ACCOUNTS)


def _calls(component: str) -> list[Call]:
    return [call for call in CALLS if call.component == component]


def _permissions(grant: Grant) -> Iterator[tuple[str, str, str, str]]:
    """Every (group, resource, verb, resourceName or "") a rule grants."""
    rule = grant.rule
    return itertools.product(rule.get("apiGroups", ()), rule.get("resources", ()), rule.get("verbs", ()),
                             rule.get("resourceNames") or ("",))


def _granted_at_run_time(namespace: str) -> list[dict[str, Any]]:
    """The Role and RoleBinding the admission side writes for a namespace whose GitRepo names a Secret."""
    return [rbac.role_object(namespace, ("some-name",)),
            rbac.binding_object(namespace, (CONTROLLER_NAMESPACE, SERVICE_ACCOUNTS["receiver"]))]


@pytest.mark.parametrize("call", [pytest.param(c, id=f"{c.component}-{c.why}") for c in CALLS])
@pytest.mark.parametrize("namespace", ["fleet-default", "team-a"])
def test_every_request_the_code_makes_is_granted(
    rendered: list[dict[str, Any]], call: Call, namespace: str
) -> None:
    objects = rendered + (_granted_at_run_time(namespace) if call.granted_at_run_time else [])
    grants = grants_for(objects, SERVICE_ACCOUNTS[call.component])
    assert allowed(grants, call_attributes(call, namespace=namespace)), call


@pytest.mark.parametrize("call", [pytest.param(c, id=f"{c.component}-{c.why}")
                                  for c in CALLS if c.granted_at_run_time])
def test_what_is_granted_at_run_time_is_not_granted_by_the_manifests(
    rendered: list[dict[str, Any]], call: Call
) -> None:
    assert not allowed(grants_for(rendered, SERVICE_ACCOUNTS[call.component]), call_attributes(call)), call


@pytest.mark.parametrize("component", COMPONENTS)
def test_nothing_is_granted_that_the_code_does_not_use(
    rendered: list[dict[str, Any]], component: str
) -> None:
    used = [call_attributes(call) for call in _calls(component)]
    for grant in grants_for(rendered, SERVICE_ACCOUNTS[component]):
        for group, resource, verb, name in _permissions(grant):
            assert any(a.group == group and a.resource == resource and a.verb == verb
                       and (not name or a.name == name or a.name == "some-name") for a in used), \
                f"{grant.source} grants {verb} {resource}.{group or 'core'} {name} that no code path uses"


@pytest.mark.parametrize("component", COMPONENTS)
def test_nothing_is_cluster_wide_that_could_be_namespaced(
    rendered: list[dict[str, Any]], component: str
) -> None:
    outside_controller = [call_attributes(call) for call in _calls(component)
                          if "{controller}" not in call.path]
    for grant in grants_for(rendered, SERVICE_ACCOUNTS[component]):
        if grant.namespace:
            continue
        for group, resource, verb, _ in _permissions(grant):
            assert any(a.group == group and a.resource == resource and a.verb == verb
                       for a in outside_controller), \
                f"{grant.source}: {verb} {resource} is used in {CONTROLLER_NAMESPACE} only: make it a Role"


@pytest.mark.parametrize("component", COMPONENTS)
def test_what_lives_in_the_controller_namespace_comes_from_a_role_there(
    rendered: list[dict[str, Any]], component: str
) -> None:
    namespaced = [g for g in grants_for(rendered, SERVICE_ACCOUNTS[component]) if g.namespace]
    for call in _calls(component):
        if "{controller}" in call.path:
            assert allowed(namespaced, call_attributes(call)), call
    # And the Role does not leak into GitRepo namespaces.
    for call in _calls(component):
        if "{controller}" in call.path:
            elsewhere = call_attributes(call)
            elsewhere = Attributes(elsewhere.verb, elsewhere.group, elsewhere.resource, "fleet-default",
                                   elsewhere.name)
            assert not allowed(namespaced, elsewhere)


def test_namespaced_rules_name_their_objects_wherever_rbac_can(rendered: list[dict[str, Any]]) -> None:
    for role in (o for o in rendered if o["kind"] == "Role"):
        for rule in role["rules"]:
            # create cannot be limited by name; every other verb here can.
            if set(rule["verbs"]) - {"create"}:
                assert rule.get("resourceNames"), (role["metadata"]["name"], rule)
            else:
                assert not rule.get("resourceNames")


def test_no_wildcards_anywhere(rendered: list[dict[str, Any]]) -> None:
    for role in (o for o in rendered if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(field) or ()), (role["metadata"]["name"], rule)


@pytest.mark.parametrize("probe", [
    pytest.param(Attributes("patch", "fleet.cattle.io", "gitrepos", "fleet-default", "app"),
                 id="gitrepo-spec"),
    pytest.param(Attributes("get", "", "secrets", "fleet-default", "anything"), id="get-any-secret"),
    pytest.param(Attributes("update", "coordination.k8s.io", "leases", CONTROLLER_NAMESPACE,
                            "gitjob-webhook-reconcile"), id="lease"),
])
def test_the_internet_facing_receiver_cannot_change_specs_or_elect_itself(
    rendered: list[dict[str, Any]], probe: Attributes
) -> None:
    assert not allowed(grants_for(rendered, SERVICE_ACCOUNTS["receiver"]), probe)


@pytest.mark.parametrize("probe", [
    pytest.param(Attributes("patch", "fleet.cattle.io", "gitrepos/status", "fleet-default", "app"),
                 id="status"),
    pytest.param(Attributes("list", "", "secrets", "fleet-default", "my-secret"), id="secrets-elsewhere"),
    pytest.param(Attributes("list", "", "secrets", CONTROLLER_NAMESPACE, "gitjob-webhook-admission-tls"),
                 id="its-own-tls-secret"),
    pytest.param(Attributes("update", "coordination.k8s.io", "leases", CONTROLLER_NAMESPACE, "other-lease"),
                 id="other-lease"),
])
def test_the_admission_server_reads_only_what_it_needs(
    rendered: list[dict[str, Any]], probe: Attributes
) -> None:
    assert not allowed(grants_for(rendered, SERVICE_ACCOUNTS["admission"]), probe)


@pytest.mark.parametrize("deployment, component", [
    ("gitjob-webhook-receiver", "receiver"),
    ("gitjob-webhook-admission", "admission"),
])
def test_each_deployment_runs_as_its_own_service_account(
    rendered: list[dict[str, Any]], deployment: str, component: str
) -> None:
    spec = find(rendered, "Deployment", deployment)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == SERVICE_ACCOUNTS[component]
    find(rendered, "ServiceAccount", SERVICE_ACCOUNTS[component])
