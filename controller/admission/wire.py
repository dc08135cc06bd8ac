"""AdmissionReview on the wire (``admission.k8s.io/v1``; ``v1beta1`` has the same fields), as TypedDicts.

What the API server POSTs and what the webhook answers; :mod:`controller.admission.reviews` parses
the one and builds the other. Nothing here has behaviour.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionReviewRequest",
    "AdmissionReviewResponse",
    "GroupVersionKind",
    "GroupVersionResource",
    "Operation",
    "PatchOperation",
    "ResponseStatus",
    "UserInfo",
]

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
"""The operation being admitted."""


class GroupVersionKind(TypedDict):
    """``request.kind`` / ``request.requestKind`` on the wire."""

    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict):
    """``request.resource`` / ``request.requestResource`` on the wire."""

    group: str
    version: str
    resource: str


class UserInfo(TypedDict, total=False):
    """``request.userInfo``: the authenticated caller."""

    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class AdmissionRequest(TypedDict):
    """``AdmissionReview.request`` as the API server sends it."""

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    subResource: NotRequired[str]
    requestKind: NotRequired[GroupVersionKind]
    requestResource: NotRequired[GroupVersionResource]
    requestSubResource: NotRequired[str]
    name: NotRequired[str]
    namespace: NotRequired[str]
    operation: Operation
    userInfo: UserInfo
    object: NotRequired[dict[str, Any] | None]
    oldObject: NotRequired[dict[str, Any] | None]
    dryRun: NotRequired[bool]
    options: NotRequired[dict[str, Any] | None]


class AdmissionReviewRequest(TypedDict):
    """The body the API server POSTs to the webhook."""

    apiVersion: str
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class ResponseStatus(TypedDict):
    """``response.status``: a metav1.Status, only sent (and only read) when denied."""

    code: int
    message: str
    reason: NotRequired[str]
    status: Literal["Failure"]


class AdmissionResponse(TypedDict):
    """``AdmissionReview.response``."""

    uid: str
    allowed: bool
    status: NotRequired[ResponseStatus]
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]
    auditAnnotations: dict[str, str]


class AdmissionReviewResponse(TypedDict):
    """The body the webhook answers with (HTTP 200)."""

    apiVersion: str
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


class PatchOperation(TypedDict):
    """One RFC 6902 operation, as produced by ``jsonpatch.make_patch``."""

    op: str
    path: str
    value: NotRequired[Any]
    # "from" is a keyword, so moves and copies cannot be spelled here; we never emit them.
