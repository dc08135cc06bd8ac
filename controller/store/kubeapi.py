"""Raw JSON requests to the API server through the official client's configuration and connection pool.

The typed APIs deserialise into models and change shape between client releases; the service
only needs a handful of paths, so it sends plain JSON and reads plain JSON, while the
``kubernetes`` client still provides kubeconfig/in-cluster loading, TLS, tokens and pooling.
"""

from __future__ import annotations

import html
import json
import re
import ssl
import time
from contextlib import nullcontext
from http import HTTPStatus
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.deadlines import Expired, within
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


MAX_ANSWER_BYTES = 256 * 1024 * 1024
"""The largest answer read (decoded): a list page of 500 GitRepos of the 1.5 MB etcd allows is far
beyond any real one; an answer that never ends, or a compressed bomb, stops here."""

_TAGS = re.compile(r"<[^>]*(?:>|$)")   # a tag the 4 KiB cut left open goes too
_SECONDS = re.compile(r"[0-9]{1,6}")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class KubeApi:
    """JSON in, JSON out, over one ``kubernetes.client.ApiClient``.

    ``one_shot`` (a command line): each request on the main thread also has a deadline for the
    whole exchange, so that a server trickling bytes cannot hold the command for ever.
    """

    def __init__(self, api_client: client.ApiClient, one_shot: bool = False) -> None:
        self.api_client = api_client
        self.one_shot = one_shot

    def close(self) -> None:
        """Close the idle pooled connections (a later request opens new ones)."""
        self.api_client.close()  # type: ignore[no-untyped-call]

    def request(self, method: str, path: str, *, query: Sequence[tuple[str, Any]] = (),
                body: Any = None, content_type: str = "application/json",
                timeout: float = 10.0) -> JsonObject:
        """Send one request and return the decoded JSON answer; raise ApiError on any failure."""
        try:
            with within(timeout) if self.one_shot else nullcontext():
                response = self._send(method, path, query, body, content_type, (min(5.0, timeout), timeout))
                data = _read(response)
        except Expired:
            raise ApiError(0, f"the API server did not answer within {timeout:g}s") from None
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
            raise _error(response.status, _read(response), response.headers)
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
            if _found(error, urllib3.exceptions.ReadTimeoutError):
                # Measured: a TLS handshake that never completes times out after the connect timeout.
                waited = time.monotonic() - started
                raise ApiError(0, f"the API server did not answer within {waited:.0f}s") from None
            raise ApiError(0, _unreachable(error)) from None


def _read(response: Any) -> bytes:
    """The whole answer, decoded, up to MAX_ANSWER_BYTES."""
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in response.response.stream(1 << 16):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                response.response.close()
                raise ApiError(response.status, f"the answer is over {MAX_ANSWER_BYTES >> 20} MiB")
            parts.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ApiError(0, f"reading the answer failed: {error}") from None
    return b"".join(parts)


E = TypeVar("E", bound=BaseException)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then what it wraps: urllib3's ``reason``, a ProtocolError's cause (its second
    argument), ``__cause__``/``__context__``; each once."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue   # an ssl error's reason, for one, is a string
        seen.add(id(current))
        yield current
        pending += [getattr(current, "reason", None), *current.args[1:2],
                    current.__cause__ or current.__context__]


def _found(error: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` in the error's chain."""
    return next((link for link in _chain(error) if isinstance(link, kind)), None)


def _unreachable(error: BaseException) -> str:
    """What kept the request from an answer, in the words an operator acts on."""
    unverified = _found(error, ssl.SSLCertVerificationError)
    if unverified is not None:
        return (f"the API server's certificate does not verify ({unverified.verify_message or unverified}): "
                "check the kubeconfig's certificate-authority and server name")
    refused = _found(error, urllib3.exceptions.ResponseError)
    if refused is not None:
        if "redirect" in str(refused):
            return ("the API server answered with a redirect, which is not followed: check the kubeconfig's "
                    "server")
        return f"the API server kept answering with errors ({safe(str(refused), 100)})"
    broken = _found(error, urllib3.exceptions.ProtocolError)
    if broken is not None:
        return f"the connection to the API server broke: {_root_cause(broken)}"
    return f"the API server cannot be reached: {_root_cause(error)}"


def _root_cause(error: BaseException) -> str:
    """The socket error under urllib3's wrappers (``Connection refused (111)``), else the error."""
    found = next((link for link in _chain(error) if isinstance(link, OSError) and link.strerror), None)
    if found is not None:
        errno = f" ({found.errno})" if found.errno and not isinstance(found, ssl.SSLError) else ""
        return f"{found.strerror}{errno}"
    return safe(f"{type(error).__name__}: {error}", 200) or type(error).__name__


def _error(status: int, data: bytes | None, headers: Any) -> ApiError:
    # The server's words reach a terminal and logs: printable, one line, cut short.
    try:
        body = json.loads(data or b"{}")
        reason = safe(str(body.get("message") or body.get("reason") or ""), 300) or ""
    except (ValueError, AttributeError, RecursionError):
        # Not a Kubernetes Status: a proxy's or load balancer's page in front of the API server; its
        # title ("502 Bad Gateway"), else its words.
        page = (data or b"")[:4096].decode("utf-8", "replace")
        title = _TITLE.search(page)
        words = " ".join(html.unescape(_TAGS.sub(" ", title.group(1) if title else page)).split())
        reason = safe(words.removeprefix(f"{status} "), 120) or ""
    if not reason and status in _PHRASES:
        reason = _PHRASES[status]
    # Whole seconds, as the API server sends them; anything else ("nan", "-1", "1e-4", a date) is
    # ignored and the caller's own backoff applies.
    wait = str(headers.get("Retry-After") or "").strip()
    retry_after = float(wait) if _SECONDS.fullmatch(wait) else None
    return ApiError(status, reason or "request failed", retry_after)
