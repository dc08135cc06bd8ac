"""AdmissionReview parsing into a `Review`.

Two error kinds, kept apart on purpose: a review the API server should never have sent
(malformed JSON, wrong kind, no uid...) raises `BadReview` and becomes HTTP 400; an object
that breaks a rule is an ordinary `Decision` (`controller.admission.decisions`) with
``allowed=False`` and travels back in a normal HTTP 200 AdmissionReview. Nothing here does I/O
or imports flask or kubernetes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, cast

from controller.admission.wire import Operation
from controller.providers.base import TooLarge
from controller.providers.payloads import check_parse_budget
from controller.serving.errors import MalformedRequest

__all__ = [
    "API_VERSIONS",
    "MAX_REVIEW_BYTES",
    "OPERATIONS",
    "BadReview",
    "Kind",
    "Resource",
    "Review",
    "User",
    "parse_review",
]

API_VERSIONS: Final = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
"""AdmissionReview versions we understand; the response echoes whichever was sent."""

OPERATIONS: Final = ("CREATE", "UPDATE", "DELETE", "CONNECT")
"""Every operation an AdmissionReview may carry."""

MAX_REVIEW_BYTES: Final = 3 * 1024 * 1024
"""Largest review body parsed: the API server's own request-body limit is 3 MiB."""
MAX_UID_LENGTH: Final = 128
"""Longest ``request.uid`` answered (the API server sends a 36-character UUID; the answer repeats it)."""
PARSE_BUDGET: Final = 16 * 1024 * 1024
"""Bytes of Python objects a review may parse into, estimated before parsing: a real object and its
old version, even 1.5 MiB each of short strings, stay well inside; eight reviews of tiny JSON values
in flight at once would otherwise outgrow the pod's memory limit."""


# --- errors ---------------------------------------------------------------------------


class BadReview(MalformedRequest):
    """The AdmissionReview itself is malformed: the HTTP layer answers 400 ``{"error": "bad-review"}``.

    Not to be used for a bad *object*; that is a denial (`Decision` with ``allowed=False``).
    """

    code = "bad-review"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A group/version/kind triple (group ``""`` is the core API group)."""

    group: str
    version: str
    kind: str


@dataclass(frozen=True)
class Resource:
    """A group/version/resource triple (group ``""`` is the core API group)."""

    group: str
    version: str
    resource: str


@dataclass(frozen=True)
class User:
    """Who made the request, from ``request.userInfo``."""

    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Review:
    """A validated, read-only view of one AdmissionReview request.

    ``object`` and ``old_object`` are the parsed JSON objects; treat them as read-only
    (they are typed as Mappings) and deep-copy before building a changed version.
    """

    api_version: str
    uid: str
    operation: Operation
    kind: Kind
    resource: Resource
    sub_resource: str = ""
    request_kind: Kind | None = None
    request_resource: Resource | None = None
    request_sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    user: User = field(default_factory=User)
    object: Mapping[str, Any] | None = None
    old_object: Mapping[str, Any] | None = None
    dry_run: bool = False
    options: Mapping[str, Any] | None = None

    @property
    def object_name(self) -> str:
        """``request.name``, else ``metadata.name`` of the object (``name`` is empty on some CREATEs)."""
        if self.name:
            return self.name
        for candidate in (self.object, self.old_object):
            metadata = candidate.get("metadata") if candidate is not None else None
            if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
                return cast(str, metadata["name"])
        return ""


# --- parsing --------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python accepts them by default and would later
    # write them back into a patch the API server cannot read.
    raise ValueError(f"{name} is not valid JSON")


def _optional_str(request: Mapping[str, Any], key: str) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadReview(f"request.{key} must be a string")
    return value


def _optional_object(request: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = request.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadReview(f"request.{key} must be an object or null")
    return cast(dict[str, Any], value)


def _triple(
    request: Mapping[str, Any], key: str, last: str, *, required: bool
) -> tuple[str, str, str] | None:
    value = request.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise BadReview(f"request.{key} must be an object with group, version and {last}")
    group = value.get("group", "")  # the core group is "", and some senders omit it
    version = value.get("version")
    name = value.get(last)
    if not isinstance(group, str) or not isinstance(version, str) or not isinstance(name, str):
        raise BadReview(f"request.{key} must have string group, version and {last}")
    if not version or not name:
        raise BadReview(f"request.{key}.version and request.{key}.{last} must not be empty")
    return group, version, name


def _kind(request: Mapping[str, Any], key: str, *, required: bool) -> Kind | None:
    triple = _triple(request, key, "kind", required=required)
    return None if triple is None else Kind(*triple)


def _resource(request: Mapping[str, Any], key: str, *, required: bool) -> Resource | None:
    triple = _triple(request, key, "resource", required=required)
    return None if triple is None else Resource(*triple)


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadReview(f"{where} must be a list of strings")
    return tuple(value)


def _user(request: Mapping[str, Any]) -> User:
    info = request.get("userInfo")
    if info is None:
        return User()
    if not isinstance(info, dict):
        raise BadReview("request.userInfo must be an object")
    username = _optional_str(info, "username")
    uid = _optional_str(info, "uid")
    groups = _string_list(info.get("groups"), "request.userInfo.groups")
    raw_extra = info.get("extra")
    if raw_extra is not None and not isinstance(raw_extra, dict):
        raise BadReview("request.userInfo.extra must be an object")
    extra = {
        key: _string_list(value, "request.userInfo.extra values") for key, value in (raw_extra or {}).items()
    }
    return User(username=username, uid=uid, groups=groups, extra=MappingProxyType(extra))


def parse_review(body: bytes, max_bytes: int = MAX_REVIEW_BYTES) -> Review:
    """Parse and check an AdmissionReview body; raise `BadReview` (and nothing else) if it is malformed."""
    request, api_version = _request_of(_document(body, max_bytes))
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid must be a non-empty string")
    if len(uid) > MAX_UID_LENGTH:
        # The answer repeats it: a client must not make a small review into a large answer.
        raise BadReview(f"request.uid is over {MAX_UID_LENGTH} characters (the API server's are 36)")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise BadReview(f"request.operation must be one of {', '.join(OPERATIONS)}")
    kind = cast(Kind, _kind(request, "kind", required=True))
    resource = cast(Resource, _resource(request, "resource", required=True))
    obj = _optional_object(request, "object")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise BadReview(f"request.object is required for {operation}")
    return Review(
        api_version=api_version,
        uid=uid,
        operation=cast(Operation, operation),
        kind=kind,
        resource=resource,
        sub_resource=_optional_str(request, "subResource"),
        request_kind=_kind(request, "requestKind", required=False) or kind,
        request_resource=_resource(request, "requestResource", required=False) or resource,
        request_sub_resource=_optional_str(request, "requestSubResource"),
        name=_optional_str(request, "name"),
        namespace=_optional_str(request, "namespace"),
        user=_user(request),
        object=obj,
        old_object=_optional_object(request, "oldObject"),
        dry_run=_dry_run(request),
        options=_optional_object(request, "options"),
    )


def _document(body: bytes, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, refused before decoding when it is too large."""
    if len(body) > max_bytes:
        raise BadReview(f"body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        check_parse_budget(body, PARSE_BUDGET)
    except TooLarge:
        raise BadReview(f"parsing this review would take more than {PARSE_BUDGET // 2**20} MiB; a GitRepo "
                        "or webhook Secret is never that many JSON values") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadReview("body is not UTF-8") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        # ValueError covers JSONDecodeError and over-long integers; RecursionError
        # a maliciously deep nesting.
        raise BadReview(f"body is not JSON: {str(error)[:80]}") from None
    if not isinstance(document, dict):
        raise BadReview("body is not a JSON object")
    return document


def _request_of(document: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """``request`` of an AdmissionReview of a version we understand, and that version."""
    api_version = document.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise BadReview(f"apiVersion must be one of {', '.join(API_VERSIONS)}")
    if document.get("kind") != "AdmissionReview":
        raise BadReview("kind must be AdmissionReview")
    request = document.get("request")
    if not isinstance(request, dict):
        raise BadReview("request must be an object")
    return request, cast(str, api_version)


def _dry_run(request: Mapping[str, Any]) -> bool:
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        return False
    if not isinstance(dry_run, bool):
        raise BadReview("request.dryRun must be a boolean")
    return dry_run
