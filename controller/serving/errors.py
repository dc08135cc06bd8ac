"""The HTTP errors of both listeners: one class per way a request fails, each with its status.

Raised anywhere below the HTTP layer (the receiver's pipeline, the admission review parser) and
rendered in one place, :func:`render`, as ``{"error": code, "message": ...}``. Messages say what
was wrong and never carry a secret or a request body. Errors werkzeug raises itself (404, 405 from
the router) are rendered by the same function.
"""

from __future__ import annotations

import json
from typing import Final

INTERNAL_ERROR_MESSAGE: Final = "internal error; see the service log"
"""What a 500 says: a bug, never an input problem; the log has the trace."""


class ServiceError(Exception):
    """Base of every error answered over HTTP; ``status`` is the response code."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class UnknownSender(ServiceError):
    """No provider recognises the delivery's headers."""

    status = 400
    code = "unknown-sender"


class MalformedRequest(ServiceError):
    """The body cannot be read as what the route expects (a provider payload, an AdmissionReview)."""

    status = 400
    code = "malformed"


class NotAuthenticated(ServiceError):
    """A secret applies to the delivery and the delivery does not verify against it."""

    status = 401
    code = "unauthorized"


class BodyStalled(ServiceError):
    """The client did not send its request within the read deadline."""

    status = 408
    code = "request-timeout"


class BodyTooLarge(ServiceError):
    """The body is over the configured limit, or too complex to parse before authentication."""

    status = 413
    code = "payload-too-large"


class UnsupportedContent(ServiceError):
    """The body's content type is not one the sender uses."""

    status = 415
    code = "unsupported-media-type"


class Throttled(ServiceError):
    """The source keeps sending what fails; ``Retry-After`` says when to come back."""

    status = 429
    code = "rate-limited"


class Unavailable(ServiceError):
    """The answer depends on Kubernetes, which could not be read or written in time: retry later."""

    status = 503
    code = "unavailable"


def render(status: int, code: str, message: str) -> bytes:
    """The JSON error body every listener answers with (as Flask writes the apps' own: compact, and a
    newline at the end for a terminal)."""
    return json.dumps({"error": code, "message": message}, separators=(",", ":")).encode() + b"\n"
