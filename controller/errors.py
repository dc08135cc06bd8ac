"""The service's error hierarchy: each class carries the HTTP status it is answered with.

Raised anywhere below the HTTP layer and turned into a JSON body in one place
(:func:`controller.web.install_error_handlers`). Messages say what was wrong and never carry a
secret or a request body.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error answered over HTTP; ``status`` is the response code."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    """The request is malformed or comes from no sender we know."""

    status = 400
    code = "bad-request"


class Unauthorized(ServiceError):
    """A secret applies to the delivery and the delivery does not verify against it."""

    status = 401
    code = "unauthorized"


class MethodNotAllowed(ServiceError):
    """Wrong HTTP method for the route; ``Allow`` names the right ones."""

    status = 405
    code = "method-not-allowed"


class RequestTimeout(ServiceError):
    """The client stopped sending its body."""

    status = 408
    code = "request-timeout"


class PayloadTooLarge(ServiceError):
    """The body is over the configured limit."""

    status = 413
    code = "payload-too-large"


class UnsupportedMediaType(ServiceError):
    """The body's content type is not one we parse."""

    status = 415
    code = "unsupported-media-type"


class TooManyRequests(ServiceError):
    """The source is over its rate limit; ``Retry-After`` says when to come back."""

    status = 429
    code = "rate-limited"


class Unavailable(ServiceError):
    """Kubernetes could not be written within the deadline; the delivery should be redelivered."""

    status = 503
    code = "unavailable"
