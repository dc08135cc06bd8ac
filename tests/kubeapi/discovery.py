"""Legacy discovery documents (`/version`, `/api`, `/apis`, …) and the minimal OpenAPI v3 index that
lets kubectl 1.37 use server-side field validation without downloading `/openapi/v2`."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ResourceType, all_resources, group_versions

VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0", "gitCommit": "kubeapi-emulator",
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
           "compiler": "gc", "platform": "linux/amd64"}


def _resource_entries(resources: list[ResourceType]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rt in resources:
        out.append({"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                    "kind": rt.kind, "verbs": list(rt.verbs), "shortNames": list(rt.short_names),
                    "storageVersionHash": hashlib.sha256(rt.plural.encode()).hexdigest()[:12]})
        if rt.has_status:
            out.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": ["get", "patch", "update"]})
    return out


def _in_gv(group: str, version: str) -> list[ResourceType]:
    return [r for r in all_resources() if r.group == group and r.version == version]


def version() -> dict[str, Any]:
    return dict(VERSION)


def core_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def resource_list(group: str, version_: str) -> dict[str, Any] | None:
    resources = _in_gv(group, version_)
    if not resources:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version_}" if group else version_,
            "resources": _resource_entries(resources)}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, vs) for g, vs in group_versions().items()]}


def group(name: str) -> dict[str, Any] | None:
    versions = group_versions().get(name)
    if not versions:
        return None
    return dict(_group(name, versions), kind="APIGroup", apiVersion="v1")


# -- OpenAPI v3 ------------------------------------------------------------------------------------
def _gv_key(group: str, version_: str) -> str:
    return f"apis/{group}/{version_}" if group else "api/v1"


def openapi_document(group: str, version_: str) -> dict[str, Any] | None:
    """Per-group-version document: item paths with a `patch` operation that carries
    `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter."""
    resources = _in_gv(group, version_)
    if not resources:
        return None
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in resources:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        base = rt.group_version_path
        item = (f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}" if rt.namespaced
                else f"{base}/{rt.plural}/{{name}}")
        op = {"operationId": f"patch{rt.kind}", "parameters": params,
              "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
              "responses": {"200": {"description": "OK"}}}
        paths[item] = {"patch": op}
        if rt.has_status:
            paths[item + "/status"] = {"patch": dict(op, operationId=f"patch{rt.kind}Status")}
        schemas[f"{rt.api_version.replace('/', '.')}.{rt.kind}"] = {
            "type": "object", "x-kubernetes-group-version-kind": [gvk],
            "x-kubernetes-preserve-unknown-fields": True}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"}, "paths": paths,
            "components": {"schemas": schemas}}


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()


def openapi_index() -> dict[str, Any]:
    gvs = {("", "v1")} | {(g, v) for g, vs in group_versions().items() for v in vs}
    paths = {}
    for g, v in sorted(gvs):
        doc = openapi_document(g, v)
        assert doc is not None
        key = _gv_key(g, v)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(doc)}"}
    return {"paths": paths}
