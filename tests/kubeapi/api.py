"""The REST verbs (get/list/create/update/patch/delete) independent of HTTP, with admission wired in.

Writes read a snapshot, compute the new object and call admission outside the store lock, then commit
only if the stored object still has the resourceVersion they started from (409 otherwise; patches and
unconditional updates without a client-supplied resourceVersion retry like the apiserver's
GuaranteedUpdate)."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from . import errors, patches, strategies
from .admission import ADMIN, Admission, Attributes, UserInfo
from .resources import ResourceType, all_resources, by_plural
from .selectors import parse_field_selector, parse_label_selector
from .store import Store

_RETRIES = 5


@dataclass
class Context:
    """Per-request: who is asking, whether to run admission, and webhook warnings to return."""

    user: UserInfo = ADMIN
    admission: bool = True
    warnings: list[str] = field(default_factory=list)
    field_manager: str | None = None


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.admission = Admission(lambda rt: self.store.list(rt)[1], self._namespace)

    def _namespace(self, name: str) -> dict[str, Any] | None:
        return self.store.get(by_plural("namespaces"), None, name)

    # -- reads -------------------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def list(self, rt: ResourceType, namespace: str | None, label_selector: str | None = None,
             field_selector: str | None = None, limit: str | None = None,
             continue_token: str | None = None) -> dict[str, Any]:
        """A list, in pages of ``limit`` items when asked (``metadata.continue`` names the next page).

        Approximation: later pages show the objects as they are now, not as of the first page's
        resourceVersion (a real API server serves every page from one snapshot).
        """
        labels, fields = parse_label_selector(label_selector), parse_field_selector(field_selector)
        after = None
        if continue_token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                after = (str(decoded["namespace"]), str(decoded["name"]))
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("invalid continue token") from None
        try:
            size = max(0, int(limit)) if limit else 0
        except ValueError:
            raise errors.bad_request(f"invalid limit {limit!r}") from None

        def keep(obj: dict[str, Any]) -> bool:
            return bool(labels(obj["metadata"].get("labels") or {}) and fields(obj))

        rv, items, more = self.store.page(rt, namespace, after, size, keep)
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if more and items:
            token = json.dumps(dict(zip(("namespace", "name"), _ident(items[-1])))).encode()
            metadata["continue"] = base64.urlsafe_b64encode(token).decode()
        return {"apiVersion": rt.api_version, "kind": rt.list_kind, "metadata": metadata, "items": items}

    # -- helpers -----------------------------------------------------------------------------------
    def _check_body(self, rt: ResourceType, body: Any, namespace: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != rt.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the "
                                     f"expected API version ({rt.api_version})")
        if kind and kind != rt.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                                     f"({rt.kind})")
        body = dict(body)
        body["apiVersion"], body["kind"] = rt.api_version, rt.kind
        meta = body.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        meta = dict(meta)
        body["metadata"] = meta
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            if namespace:
                meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return body

    def _require_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if rt.namespaced:
            if not namespace:
                raise errors.not_found_path()
            if self._namespace(namespace) is None:
                raise errors.namespace_not_found(namespace)

    def _admit(self, ctx: Context, operation: str, rt: ResourceType, namespace: str | None, name: str,
               obj: dict[str, Any] | None, old: dict[str, Any] | None,
               subresource: str | None) -> dict[str, Any] | None:
        if not ctx.admission:
            return obj
        attrs = Attributes(operation, rt, namespace, name, obj, old, ctx.user, subresource, ctx.field_manager)
        try:
            return self.admission.admit(attrs)
        finally:
            ctx.warnings.extend(attrs.warnings)

    # -- create ------------------------------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str | None, body: Any, ctx: Context) -> dict[str, Any]:
        body = self._check_body(rt, body, namespace)
        namespace = body["metadata"].get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            namespace = "default"
            body["metadata"]["namespace"] = namespace
        self._require_namespace(rt, namespace)
        obj = strategies.prepare_create(rt, body)
        strategies.validate(rt, obj, None)
        name = obj["metadata"]["name"]
        mutated = self._admit(ctx, "CREATE", rt, namespace, name, obj, None, None)
        if mutated is not obj and mutated is not None:
            obj = strategies.prepare_update(rt, obj, mutated, None)
            obj["metadata"]["generation"] = 1 if rt.tracks_generation else obj["metadata"].get("generation")
            if not rt.tracks_generation:
                obj["metadata"].pop("generation", None)
            strategies.validate(rt, obj, None)
        return self.store.commit(rt, obj, None)

    # -- update / patch ----------------------------------------------------------------------------
    def _write(self, rt: ResourceType, namespace: str | None, name: str, ctx: Context,
               subresource: str | None, produce: Any, unconditional: bool) -> dict[str, Any]:
        """Shared update path. `produce(old)` returns the requested object (before strategies)."""
        for attempt in range(_RETRIES):
            old = self.get(rt, namespace, name)
            requested = produce(old)
            new = strategies.prepare_update(rt, old, requested, subresource)
            strategies.validate(rt, new, old)
            mutated = self._admit(ctx, "UPDATE", rt, namespace, name, new, old, subresource)
            if mutated is not new and mutated is not None:
                new = strategies.prepare_update(rt, old, mutated, subresource)
                strategies.validate(rt, new, old)
            if strategies.same_object(new, old):
                return old
            old_rv = old["metadata"]["resourceVersion"]
            try:
                if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                    self.store.remove(rt, namespace, name, old_rv)
                    return new
                return self.store.commit(rt, new, old_rv)
            except errors.ApiError as exc:
                if exc.code == 409 and unconditional and attempt < _RETRIES - 1:
                    continue
                raise
        raise errors.conflict(rt, name)  # pragma: no cover - loop always returns or raises

    def update(self, rt: ResourceType, namespace: str | None, name: str, body: Any, ctx: Context,
               subresource: str | None = None) -> dict[str, Any]:
        body = self._check_body(rt, body, namespace)
        if body["metadata"].get("name") and body["metadata"]["name"] != name:
            raise errors.bad_request(f"the name of the object ({body['metadata']['name']}) does not match "
                                     f"the name on the URL ({name})")
        body["metadata"]["name"] = name
        rv = body["metadata"].get("resourceVersion")
        if not rv and rt.custom:
            self.get(rt, namespace, name)
            raise errors.invalid(rt, name, [("metadata.resourceVersion",
                                             "Invalid value: 0x0: must be specified for an update")])

        def produce(old: dict[str, Any]) -> dict[str, Any]:
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            return body

        return self._write(rt, namespace, name, ctx, subresource, produce, unconditional=not rv)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, content_type: str, raw: bytes,
              ctx: Context, subresource: str | None = None) -> tuple[int, dict[str, Any]]:
        patch = patches.parse_patch(content_type, raw, rt)
        if content_type == patches.APPLY:
            if not ctx.field_manager:
                raise errors.bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required "
                                         "value: is required for apply patch")
            checked = self._check_body(rt, patch, namespace)
            if checked["metadata"].get("name") != name:
                given = checked["metadata"].get("name")
                raise errors.bad_request(f"the name of the object ({given}) does not match the name on the "
                                         f"URL ({name})")
            if subresource is None and self.store.get(rt, namespace, name) is None:
                return 201, self.create(rt, namespace, checked, ctx)
        pinned = content_type != patches.JSON_PATCH and isinstance(patch.get("metadata"), dict) and \
            bool(patch["metadata"].get("resourceVersion"))

        def produce(old: dict[str, Any]) -> dict[str, Any]:
            result = patches.apply_patch(content_type, old, patch, rt, name)
            meta = result.get("metadata") if isinstance(result.get("metadata"), dict) else {}
            if meta.get("resourceVersion") != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            if not isinstance(result.get("metadata"), dict):
                result["metadata"] = {}
            return result

        return 200, self._write(rt, namespace, name, ctx, subresource, produce, unconditional=not pinned)

    # -- delete ------------------------------------------------------------------------------------
    def delete(self, rt: ResourceType, namespace: str | None, name: str, options: Any,
               ctx: Context) -> dict[str, Any]:
        old = self.get(rt, namespace, name)
        pre = (options or {}).get("preconditions") or {} if isinstance(options, dict) else {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise errors.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                            f"UID in object meta: {old['metadata']['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                            f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                            f"{old['metadata']['resourceVersion']}")
        self._admit(ctx, "DELETE", rt, namespace, name, None, old, None)
        rv = old["metadata"]["resourceVersion"]
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = dict(old)
            new["metadata"] = dict(old["metadata"], deletionTimestamp=strategies.now_rfc3339(),
                                   deletionGracePeriodSeconds=0)
            return self.store.commit(rt, new, rv)
        self.store.remove(rt, namespace, name, rv)
        if rt.kind == "Namespace" and not rt.group:
            self.store.remove_namespace_contents(name, all_resources())
        details: dict[str, Any] = {"name": name, "kind": rt.plural, "uid": old["metadata"]["uid"]}
        if rt.group:
            details["group"] = rt.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def delete_collection(self, rt: ResourceType, namespace: str | None, label_selector: str | None,
                          field_selector: str | None, ctx: Context) -> dict[str, Any]:
        listing = self.list(rt, namespace, label_selector, field_selector)
        for obj in listing["items"]:
            try:
                self.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"], None, ctx)
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def _ident(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
