"""The admission webhook call chain (mutating, then validating), shaped like kube-apiserver's.

Webhook configurations are read from the store. Calls go over HTTPS verified against `caBundle`
(system roots when absent); `clientConfig.service` is resolved through the emulator's service map to
127.0.0.1:<port> with TLS server name `<name>.<namespace>.svc`. No store lock is held here.
"""
from __future__ import annotations

import base64
import copy
import http.client
import json
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import jsonpatch

from . import cel, errors
from .resources import ResourceType, by_plural
from .selectors import match_label_selector


@dataclass(frozen=True)
class UserInfo:
    username: str
    groups: tuple[str, ...] = ("system:authenticated",)

    def to_json(self) -> dict[str, Any]:
        return {"username": self.username, "groups": list(self.groups)}


ADMIN = UserInfo("kubernetes-admin", ("kubeadm:cluster-admins", "system:authenticated"))


@dataclass
class Attributes:
    """What is being admitted."""

    operation: str  # CREATE | UPDATE | DELETE
    rt: ResourceType
    namespace: str | None
    name: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    user: UserInfo = ADMIN
    subresource: str | None = None
    field_manager: str | None = None
    warnings: list[str] = field(default_factory=list)


class _CallFailure(Exception):
    pass


class _Denied(Exception):
    def __init__(self, error: errors.ApiError) -> None:
        super().__init__(error.body["message"])
        self.error = error


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address while verifying the certificate for another host name."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext,
                 timeout: float) -> None:
        super().__init__(server_name, port, context=context, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        try:
            ctx: ssl.SSLContext = self._context  # type: ignore[attr-defined]
            self.sock = ctx.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class Admission:
    def __init__(self, list_objects: Callable[[ResourceType], list[dict[str, Any]]],
                 get_namespace: Callable[[str], dict[str, Any] | None]) -> None:
        self._list = list_objects
        self._get_namespace = get_namespace
        self._services: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # -- configuration -----------------------------------------------------------------------------
    def map_service(self, namespace: str, name: str, port: int) -> None:
        with self._lock:
            self._services[(namespace, name)] = port

    def clear_services(self) -> None:
        with self._lock:
            self._services.clear()

    # -- entry point -------------------------------------------------------------------------------
    def admit(self, attrs: Attributes) -> dict[str, Any] | None:
        """Run mutating then validating webhooks; return the (possibly mutated) object or raise ApiError."""
        if attrs.rt.admission_exempt:
            return attrs.obj
        obj = attrs.obj
        mutating = self._select("mutatingwebhookconfigurations", attrs)
        after_call: list[tuple[dict[str, Any], Any]] = []
        for hook in mutating:
            obj = self._invoke(hook, attrs, obj, mutate=True)
            after_call.append((hook, copy.deepcopy(obj)))
        for hook, state in after_call:  # reinvocationPolicy: IfNeeded, at most once
            if hook.get("reinvocationPolicy") == "IfNeeded" and obj != state:
                obj = self._invoke(hook, attrs, obj, mutate=True)
        for hook in self._select("validatingwebhookconfigurations", attrs):
            self._invoke(hook, attrs, obj, mutate=False)
        return obj

    # -- selection ---------------------------------------------------------------------------------
    def _select(self, plural: str, attrs: Attributes) -> list[dict[str, Any]]:
        configs = sorted(self._list(by_plural(plural)), key=lambda c: c["metadata"]["name"])
        return [h for c in configs for h in (c.get("webhooks") or []) if self._rules_match(h, attrs)
                and self._selectors_match(h, attrs)]

    @staticmethod
    def _rules_match(hook: dict[str, Any], attrs: Attributes) -> bool:
        rt = attrs.rt
        for rule in hook.get("rules") or []:
            ops, groups, versions = (rule.get(k) or [] for k in ("operations", "apiGroups", "apiVersions"))
            if not (("*" in ops or attrs.operation in ops) and ("*" in groups or rt.group in groups)
                    and ("*" in versions or rt.version in versions)):
                continue
            scope = rule.get("scope") or "*"
            if scope == "Cluster" and rt.namespaced or scope == "Namespaced" and not rt.namespaced:
                continue
            for res in rule.get("resources") or []:
                name, _, sub = res.partition("/")
                if (name in ("*", rt.plural)) and (sub == "*" or sub == (attrs.subresource or "")):
                    return True
        return False

    def _selectors_match(self, hook: dict[str, Any], attrs: Attributes) -> bool:
        ns_sel = hook.get("namespaceSelector")
        if ns_sel:
            if attrs.rt.kind == "Namespace" and not attrs.rt.group:
                source = attrs.obj or attrs.old or {}
                if not match_label_selector(ns_sel, source.get("metadata", {}).get("labels") or {}):
                    return False
            elif attrs.rt.namespaced:
                ns = self._get_namespace(attrs.namespace or "")
                labels = (ns or {}).get("metadata", {}).get("labels") or {}
                if not match_label_selector(ns_sel, labels):
                    return False
        obj_sel = hook.get("objectSelector")
        if obj_sel:
            candidates = [o for o in (attrs.obj, attrs.old) if o is not None]
            if not any(match_label_selector(obj_sel, o.get("metadata", {}).get("labels") or {})
                       for o in candidates):
                return False
        return True

    # -- calling -----------------------------------------------------------------------------------
    def _request(self, attrs: Attributes, obj: dict[str, Any] | None) -> dict[str, Any]:
        rt = attrs.rt
        kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
        options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}
        options: dict[str, Any] = {"kind": options_kind[attrs.operation], "apiVersion": "meta.k8s.io/v1"}
        if attrs.field_manager and attrs.operation != "DELETE":
            options["fieldManager"] = attrs.field_manager
        req: dict[str, Any] = {"uid": str(uuid.uuid4()), "kind": kind, "resource": resource}
        if attrs.subresource:
            req["subResource"] = attrs.subresource
        req.update({"requestKind": dict(kind), "requestResource": dict(resource)})
        if attrs.subresource:
            req["requestSubResource"] = attrs.subresource
        req["name"] = attrs.name
        if rt.namespaced and attrs.namespace:
            req["namespace"] = attrs.namespace
        req.update({"operation": attrs.operation, "userInfo": attrs.user.to_json(),
                    "object": copy.deepcopy(obj), "oldObject": copy.deepcopy(attrs.old),
                    "dryRun": False, "options": options})
        return req

    def _invoke(self, hook: dict[str, Any], attrs: Attributes, obj: dict[str, Any] | None,
                mutate: bool) -> dict[str, Any] | None:
        name = hook.get("name", "")
        request = self._request(attrs, obj)
        fail_closed = (hook.get("failurePolicy") or "Fail") != "Ignore"
        try:
            conditions = hook.get("matchConditions") or []
            env = {"object": request["object"], "oldObject": request["oldObject"], "request": request}
            for cond in conditions:
                try:
                    if not cel.evaluate(cond.get("expression", ""), env):
                        return obj
                except cel.CelError as exc:
                    raise _CallFailure(f"failed to evaluate matchCondition {cond.get('name')!r}: {exc}") \
                        from None
            response = self._post(hook, request)
            if not response.get("allowed"):
                raise _Denied(self._denial(name, attrs, response.get("status") or {}))
            attrs.warnings.extend(str(w) for w in response.get("warnings") or [])
            if mutate and response.get("patch"):
                if response.get("patchType") != "JSONPatch":
                    raise _CallFailure(f"unsupported patch type {response.get('patchType')!r}")
                try:
                    patch = json.loads(base64.b64decode(response["patch"]))
                    obj = jsonpatch.JsonPatch(patch).apply(copy.deepcopy(obj))
                except Exception as exc:  # noqa: BLE001 - any malformed patch is a call failure
                    raise _CallFailure(f"JSON patch could not be applied: {exc}") from None
            return obj
        except _Denied as denied:
            raise denied.error from None
        except _CallFailure as exc:
            if fail_closed:
                msg = f'Internal error occurred: failed calling webhook "{name}": {exc}'
                raise errors.internal(msg) from None
            return obj

    def _target(self, hook: dict[str, Any]) -> tuple[str, int, str, str, str]:
        """(connect address, port, TLS server name, request path, display URL)."""
        cc = hook.get("clientConfig") or {}
        if cc.get("url"):
            parts = urlsplit(cc["url"])
            if parts.scheme != "https":
                raise _CallFailure(f"webhook URL must use https: {cc['url']}")
            host, port = parts.hostname or "", parts.port or 443
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            return host, port, host, path, cc["url"]
        svc = cc.get("service") or {}
        ns, svc_name = svc.get("namespace", ""), svc.get("name", "")
        port = int(svc.get("port") or 443)
        path = svc.get("path") or "/"
        display = f"https://{svc_name}.{ns}.svc:{port}{path}"
        with self._lock:
            mapped = self._services.get((ns, svc_name))
        if mapped is None:
            raise _CallFailure(f'failed to call webhook: Post "{display}": service "{ns}/{svc_name}" '
                               f"is not mapped (no endpoints available)")
        return "127.0.0.1", mapped, f"{svc_name}.{ns}.svc", path, display

    def _post(self, hook: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        versions = hook.get("admissionReviewVersions") or ["v1"]
        if "v1" not in versions:
            raise _CallFailure(f"webhook does not accept known AdmissionReview versions: {versions}")
        timeout = int(hook.get("timeoutSeconds") or 10)
        address, port, server_name, path, display = self._target(hook)
        url = f"{display}{'&' if '?' in display else '?'}timeout={timeout}s"
        ca_bundle = (hook.get("clientConfig") or {}).get("caBundle")
        try:
            if ca_bundle:
                ctx = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode("ascii"))
            else:
                ctx = ssl.create_default_context()
        except (ValueError, ssl.SSLError, UnicodeDecodeError) as exc:
            raise _CallFailure(f"could not load caBundle: {exc}") from None
        review = {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}
        body = json.dumps(review).encode()
        sep = "&" if "?" in path else "?"
        conn = _SNIConnection(address, port, server_name, ctx, timeout)
        try:
            conn.request("POST", f"{path}{sep}timeout={timeout}s", body=body,
                         headers={"Content-Type": "application/json", "Accept": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
        except (socket.timeout, TimeoutError):
            raise _CallFailure(f'failed to call webhook: Post "{url}": context deadline exceeded') from None
        except (OSError, http.client.HTTPException) as exc:
            raise _CallFailure(f'failed to call webhook: Post "{url}": {exc}') from None
        finally:
            conn.close()
        if status != 200:
            raise _CallFailure("received invalid webhook response: the server responded with status "
                               f"{status}")
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise _CallFailure(f"received invalid webhook response: {exc}") from None
        if not isinstance(answer, dict) or answer.get("apiVersion") != "admission.k8s.io/v1" \
                or answer.get("kind") != "AdmissionReview":
            got = answer if not isinstance(answer, dict) else \
                f"{answer.get('apiVersion')}, Kind={answer.get('kind')}"
            raise _CallFailure("received invalid webhook response: expected webhook response of "
                               f"admission.k8s.io/v1, Kind=AdmissionReview, got {got}")
        response = answer.get("response")
        if not isinstance(response, dict):
            raise _CallFailure("received invalid webhook response: webhook response was absent")
        if response.get("uid") != request["uid"]:
            raise _CallFailure("received invalid webhook response: "
                               f'expected response.uid="{request["uid"]}", '
                               f'got "{response.get("uid", "")}"')
        return response

    @staticmethod
    def _denial(hook_name: str, attrs: Attributes, status: dict[str, Any]) -> errors.ApiError:
        code = status.get("code") or 0
        if not isinstance(code, int) or code < 400:
            code = 403
        denied_by = f'admission webhook "{hook_name}" denied the request'
        if status.get("message"):
            text = f"{denied_by}: {status['message']}"
        elif status.get("reason"):
            text = f"{denied_by}: {status['reason']}"
        else:
            text = f"{denied_by} without explanation"
        message = f'{attrs.rt.qualified_resource} "{attrs.name}" is forbidden: {text}'
        details: dict[str, Any] = {"name": attrs.name, "kind": attrs.rt.plural}
        if attrs.rt.group:
            details = {"name": attrs.name, "group": attrs.rt.group, "kind": attrs.rt.plural}
        reason = status.get("reason") or errors.REASONS.get(code, "Forbidden")
        return errors.ApiError(code, message, reason, details)
