"""`Status` error bodies shaped like kube-apiserver's, raised as `ApiError`."""
from __future__ import annotations

from typing import Any

from .resources import ResourceType

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


def status_body(code: int, message: str, reason: str | None = None,
                details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason or REASONS.get(code, "Unknown"),
                            "code": code}
    if details is not None:
        body["details"] = details
    return body


class ApiError(Exception):
    """An error answer: HTTP status `code` with a Status body."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, message, reason, details)
        self.headers = headers or {}


def _details(rt: ResourceType, name: str, use_kind: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.kind if use_kind else rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified_resource} "{name}" not found', "NotFound", _details(rt, name))


def namespace_not_found(name: str) -> ApiError:
    return ApiError(404, f'namespaces "{name}" not found', "NotFound", {"name": name, "kind": "namespaces"})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, f'{rt.qualified_resource} "{name}" already exists', "AlreadyExists",
                    _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified_resource} "{name}": {why}',
                    "Conflict", _details(rt, name))


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; `causes` is a list of (field, message-without-field) pairs."""
    parts = [f"{f}: {m}" for f, m in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = _details(rt, name, use_kind=True)
    details["causes"] = [{"reason": "FieldValueInvalid" if m.startswith("Invalid value") else
                          "FieldValueRequired" if m.startswith("Required value") else "FieldValueInvalid",
                          "message": m, "field": f} for f, m in causes]
    return ApiError(422, f'{rt.qualified_kind} "{name}" is invalid: {joined}', "Invalid", details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def not_found_path() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", "NotFound", {})


def method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource",
                    "MethodNotAllowed", {})


def unsupported_media(rt: ResourceType | None, content_type: str) -> ApiError:
    accepted = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
    if rt is not None and rt.strategic_merge:
        accepted.append("application/strategic-merge-patch+json")
    return ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                         f"{', '.join(accepted)}", "UnsupportedMediaType", {})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> ApiError:
    return ApiError(500, message, "InternalError", {"causes": [{"message": message}]})
