"""PATCH content types: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge (Secrets and
ConfigMaps only, treated as a merge patch) and server-side apply (approximated as a merge)."""
from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import yaml

from . import errors
from .resources import ResourceType

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, JSON_PATCH, STRATEGIC, APPLY)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def parse_patch(content_type: str, raw: bytes, rt: ResourceType) -> Any:
    """Check the patch type against the resource and decode the body (400/415 on failure)."""
    if content_type not in PATCH_TYPES:
        raise errors.unsupported_media(rt, content_type)
    if content_type == STRATEGIC and not rt.strategic_merge:
        raise errors.unsupported_media(rt, content_type)
    try:
        if content_type == APPLY:
            doc = yaml.safe_load(raw.decode("utf-8") or "null")
        else:
            doc = json.loads(raw.decode("utf-8") or "null")
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from None
    if content_type == JSON_PATCH and not isinstance(doc, list):
        raise errors.bad_request("json patch must be a list of operations")
    if content_type != JSON_PATCH and not isinstance(doc, dict):
        raise errors.bad_request("patch body must be a JSON object")
    return doc


def apply_patch(content_type: str, stored: dict[str, Any], patch: Any, rt: ResourceType,
                name: str) -> dict[str, Any]:
    """Return the patched copy of `stored` (422 when a JSON patch operation fails)."""
    if content_type == JSON_PATCH:
        try:
            result = jsonpatch.JsonPatch(patch).apply(copy.deepcopy(stored))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise errors.ApiError(422, "the server rejected our request due to an error in our request: "
                                       f"{exc}",
                                  "Invalid", {"name": name, "kind": rt.plural}) from None
        if not isinstance(result, dict):
            raise errors.bad_request("json patch produced a non-object")
        return result
    return merge_patch(stored, patch)
