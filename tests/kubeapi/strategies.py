"""Per-type create/update strategies: server-set metadata, immutable fields, generation, the `/status`
rules of apiextensions-apiserver, Secret `stringData`, Namespace defaults, and the GitRepo validation
the tests rely on."""
from __future__ import annotations

import base64
import binascii
import copy
import datetime
import random
import re
import uuid
from typing import Any

from . import errors
from .resources import ResourceType

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # namespaces: RFC 1123 label
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "managedFields", "selfLink")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _normalise(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Type-specific defaulting applied on every write."""
    meta = obj["metadata"]
    if rt.kind == "Secret" and not rt.group:
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode("utf-8")).decode("ascii")
        obj.setdefault("type", "Opaque")
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v if isinstance(v, str) else "!", validate=True)
            except (binascii.Error, ValueError):
                raise errors.bad_request(f"Secret in version \"v1\" cannot be handled as a Secret: illegal "
                                         f"base64 data in data[{k!r}]") from None
    if rt.kind == "Namespace" and not rt.group:
        meta.setdefault("labels", {})
        meta["labels"]["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    for key in ("labels", "annotations"):
        if key in meta and not meta[key]:
            del meta[key]


def prepare_create(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """Fill server metadata for a create. `obj` already has apiVersion/kind/namespace checked."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    for f in _SERVER_FIELDS:
        meta.pop(f, None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    if rt.tracks_generation:
        meta["generation"] = 1
    if rt.has_status:
        obj.pop("status", None)
    _normalise(rt, obj)
    return obj


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def prepare_update(rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                   subresource: str | None) -> dict[str, Any]:
    """The object to store for an update of `old` with `new` (main resource or `/status`)."""
    if subresource == "status":
        result = copy.deepcopy(old)
        if "status" in new:
            result["status"] = copy.deepcopy(new["status"])
        else:
            result.pop("status", None)
    else:
        result = copy.deepcopy(new)
        if rt.has_status:
            if "status" in old:
                result["status"] = copy.deepcopy(old["status"])
            else:
                result.pop("status", None)
    meta = result.setdefault("metadata", {})
    old_meta = old["metadata"]
    for f in _SERVER_FIELDS + ("name", "namespace"):
        if f in old_meta:
            meta[f] = copy.deepcopy(old_meta[f])
        else:
            meta.pop(f, None)
    result["apiVersion"], result["kind"] = old.get("apiVersion", rt.api_version), old.get("kind", rt.kind)
    _normalise(rt, result)
    if rt.tracks_generation and subresource is None:
        ignored = ("metadata", "status") if rt.has_status else ("metadata",)
        if _without(result, *ignored) != _without(old, *ignored):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
    return result


def same_object(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from resourceVersion (a no-op write)."""
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        o = dict(o)
        o["metadata"] = _without(o.get("metadata") or {}, "resourceVersion")
        return o
    return strip(a) == strip(b)


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """422 Invalid for the rules the tests rely on."""
    meta = obj["metadata"]
    name = meta.get("name") or ""
    causes: list[tuple[str, str]] = []
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif old is None:
        pattern = _LABEL_NAME_RE if rt.kind == "Namespace" else _NAME_RE
        if not pattern.match(name) or len(name) > 253:
            causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                           "consist of lower case alphanumeric characters, '-' or '.', and must start and "
                           "end with an alphanumeric character"))
    if rt.plural == "gitrepos" and rt.group == "fleet.cattle.io":
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        if old is None and not spec.get("repo"):
            causes.append(("spec.repo", "Required value"))
        if "pollingInterval" in spec and spec["pollingInterval"] is not None:
            value = spec["pollingInterval"]
            if not isinstance(value, str):
                typename = "integer" if isinstance(value, int) else type(value).__name__
                causes.append(("spec.pollingInterval", f'Invalid value: "{typename}": spec.pollingInterval '
                               f'in body must be of type string: "{typename}"'))
            elif not _DURATION_RE.match(value):
                causes.append(("spec.pollingInterval", f'Invalid value: "{value}": spec.pollingInterval in '
                               f"body should match '{DURATION_PATTERN}'"))
    if causes:
        raise errors.invalid(rt, name, causes)
