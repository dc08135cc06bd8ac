"""Raw JSON requests to the API server through the official client's configuration and connection pool.

The typed APIs deserialise into models and change shape between client releases; the service
only needs a handful of paths, so it sends plain JSON and reads plain JSON, while the
``kubernetes`` client still provides kubeconfig/in-cluster loading, TLS, tokens and pooling.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.fleet.gitrepos import API_VERSION, PLURAL
from controller.logs import safe

JsonObject = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A request failed: ``status`` is the HTTP code (0 when the server could not be reached)."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}" if status else reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying: unreachable, throttled (429) or a server-side error (5xx)."""
        return self.status == 0 or self.status == 429 or self.status >= 500


GITREPOS = f"/apis/{API_VERSION}/{PLURAL}"


def gitrepo_path(namespace: str, name: str, subresource: str = "") -> str:
    """One GitRepo, or its subresource (``status``)."""
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
    return f"{path}/{subresource}" if subresource else path


def secrets_path(namespace: str) -> str:
    """The Secrets of a namespace."""
    return f"/api/v1/namespaces/{namespace}/secrets"


def events_path(namespace: str, name: str = "") -> str:
    """Core v1 Events of a namespace, or one of them."""
    return f"/api/v1/namespaces/{namespace}/events" + (f"/{name}" if name else "")


def lease_path(namespace: str, name: str = "") -> str:
    """coordination.k8s.io Leases of a namespace, or one of them."""
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases" + (f"/{name}" if name else "")


class KubeApi:
    """JSON in, JSON out, over one ``kubernetes.client.ApiClient``."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def close(self) -> None:
        """Close the idle pooled connections (a later request opens new ones)."""
        self.api_client.close()  # type: ignore[no-untyped-call]

    def request(self, method: str, path: str, *, query: Sequence[tuple[str, Any]] = (),
                body: Any = None, content_type: str = "application/json",
                timeout: float = 10.0) -> JsonObject:
        """Send one request and return the decoded JSON answer; raise ApiError on any failure."""
        response = self._send(method, path, query, body, content_type, (min(5.0, timeout), timeout))
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiError(0, f"reading the answer failed: {error}") from None
        if not 200 <= response.status < 300:
            raise _error(response.status, data, response.headers)
        try:
            decoded = json.loads(data) if data else {}
        except (ValueError, RecursionError):
            raise ApiError(response.status, "the answer is not JSON") from None
        if not isinstance(decoded, dict):
            raise ApiError(response.status, "the answer is not a JSON object")
        return decoded

    def stream(self, path: str, query: Sequence[tuple[str, Any]], read_timeout: float) -> Any:
        """Open a streaming GET (a watch); returns the urllib3 response, to be read and released."""
        response = self._send("GET", path, query, None, "application/json", (10.0, read_timeout))
        if not 200 <= response.status < 300:
            data = response.read()
            raise _error(response.status, data, response.headers)
        return response.response

    def _send(self, method: str, path: str, query: Sequence[tuple[str, Any]], body: Any,
              content_type: str, timeout: tuple[float, float]) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        started = time.monotonic()
        try:
            method, url, headers, body, post = self.api_client.param_serialize(
                method=method, resource_path=path, query_params=list(query), header_params=headers,
                body=body, auth_settings=["BearerToken"])
            return self.api_client.call_api(method, url, header_params=headers, body=body, post_params=post,
                                            _request_timeout=timeout)
        except ApiException as error:
            raise ApiError(error.status or 0, str(error.reason or error)) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if _caused_by(error, urllib3.exceptions.ReadTimeoutError):
                # Measured: a TLS handshake that never completes times out after the connect timeout.
                waited = time.monotonic() - started
                raise ApiError(0, f"the API server did not answer within {waited:.0f}s") from None
            raise ApiError(0, f"the API server cannot be reached: {_root_cause(error)}") from None


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind) or isinstance(getattr(seen, "reason", None), kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _root_cause(error: BaseException) -> str:
    """The socket error under urllib3's wrappers (``[Errno 111] Connection refused``), else the error."""
    seen: BaseException | None = getattr(error, "reason", None) or error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return f"{seen.strerror}" + (f" ({seen.errno})" if seen.errno else "")
        seen = seen.__cause__ or seen.__context__
    return f"{type(error).__name__}: {error}"


def _error(status: int, data: bytes | None, headers: Any) -> ApiError:
    reason = ""
    try:
        body = json.loads(data or b"{}")
        # The server's words reach a terminal and logs: printable, one line, cut short.
        reason = safe(str(body.get("message") or body.get("reason") or ""), 300) or ""
    except (ValueError, AttributeError, RecursionError):
        pass
    retry_after = None
    try:
        retry_after = float(headers.get("Retry-After")) if headers.get("Retry-After") else None
    except (TypeError, ValueError):
        retry_after = None
    return ApiError(status, reason or "request failed", retry_after)
