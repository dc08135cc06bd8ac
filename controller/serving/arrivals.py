"""A request on its way in, before any thread sees it: a listener's limits, the state of a connection
whose request is still arriving, what kind of request it is, and the answers the worker gives itself.

Used by `controller.serving.worker`; nothing here blocks.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from gunicorn.http.errors import (ConfigurationProblem, ExpectationFailed, ForbiddenProxyRequest,
                                  InvalidResponseHeader, InvalidResponseHeaderName, LimitRequestHeaders,
                                  LimitRequestLine, ParseException, UnsupportedTransferCoding)
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn

from controller.serving.errors import render
from controller.serving.framing import Scanner

__all__ = ["Arrival", "BufferedUnreader", "RequestLimits", "is_client_error", "parse_error_status",
           "plain_answer", "probe_kind"]

_CHUNK_TO_PARSER = 256 * 1024
_PARSE_ERRORS = ((LimitRequestLine, 414, "uri-too-long"), (LimitRequestHeaders, 431, "headers-too-large"),
                 (UnsupportedTransferCoding, 501, "not-implemented"),
                 (ExpectationFailed, 417, "expectation-failed"), (ForbiddenProxyRequest, 403, "forbidden"))
"""gunicorn's parser errors that are not a plain 400, with the status gunicorn gives them."""
_PROBE_PATHS = {b"/healthz": "probe", b"/readyz": "probe", b"/metrics": "scrape"}


@dataclass(frozen=True)
class RequestLimits:
    """What one listener accepts: the largest body, the deadline to receive a request, the bytes held."""

    max_body: int
    timeout: float
    buffer_budget: int
    """Bytes held at once for requests arriving or waiting for a thread, across the worker's connections
    (requests of up to 1 MiB may hold 16 MiB more: a few slow large uploads cannot lock them out)."""
    max_in_flight: int = 64
    """Requests (probes aside) queued for a thread or being served at once; one more gets 503."""


class BufferedUnreader(SocketUnreader):  # type: ignore[misc]
    """Serves gunicorn's parser the request the worker already read; the socket only after that."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._view: memoryview | None = None
        self._offset = 0

    def feed(self, view: memoryview) -> None:
        """The bytes of the next request, complete."""
        self._view, self._offset = view, 0

    def chunk(self, size_hint: int | None = None) -> bytes:
        view = self._view
        if view is None:
            return bytes(super().chunk(size_hint))
        # Bounded pieces: gunicorn's unreader copies what it is given, so one piece never holds a body.
        size = min(max(size_hint or 0, 8192), _CHUNK_TO_PARSER)
        piece = bytes(view[self._offset:self._offset + size])
        self._offset += len(piece)
        if self._offset >= len(view):
            self._view = None   # releases the request's buffer
        return piece


@dataclass
class Arrival:
    """A connection whose request is still arriving."""

    conn: TConn
    deadline: float
    scanner: Scanner
    handshaking: bool
    buffer: bytearray = field(default_factory=bytearray)
    continued: bool = False
    writing: bool = False
    draining: int = 0
    """After an early answer: bytes still to read and drop, so the client gets to read the answer."""
    ended: bool = False
    """The client closed its side after sending something (a whole request is still answered)."""
    progress: float = field(default_factory=time.monotonic)
    """When the client last sent something (its connection was accepted, at first)."""


def probe_kind(request: bytearray) -> str:
    """``probe`` for ``GET /healthz`` or ``/readyz``, ``scrape`` for ``GET /metrics`` (any query), else
    "": what a kubelet or Prometheus asks, served by the probe threads."""
    line = bytes(request[:256]).split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3 or line[0] != b"GET":
        return ""
    return _PROBE_PATHS.get(line[1].split(b"?", 1)[0], "")


def is_client_error(exc: BaseException) -> bool:
    """A request gunicorn's parser refused for what the client sent (not a header the app made)."""
    return isinstance(exc, ParseException) and not isinstance(
        exc, (InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem))


def parse_error_status(exc: BaseException) -> tuple[int, str]:
    """The status and error code for a client error gunicorn's parser raised."""
    return next(((status, code) for kind, status, code in _PARSE_ERRORS if isinstance(exc, kind)),
                (400, "malformed"))


def plain_answer(status: int, code: str, message: str) -> bytes:
    """A whole HTTP response, JSON like the apps' own, after which the connection closes."""
    body = render(status, code, message)
    retry = "Retry-After: 1\r\n" if status == 503 else ""
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{retry}\r\n").encode() + body
