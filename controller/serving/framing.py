"""Where an HTTP/1.1 request ends, read from the bytes received so far: pure, bounded, never raising.

The serving worker reads every request whole before a thread sees it (so a slow client holds no
thread), and asks a :class:`Scanner` after each read whether the request is complete, too large or
malformed. Only framing is judged here (request line and header block, ``Content-Length`` or
chunked ``Transfer-Encoding``); gunicorn parses the complete request again for the application.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_CHUNKS", "MAX_HEADER_BYTES", "Framing", "Scan", "Scanner"]

MAX_HEADER_BYTES: Final = 32 * 1024
"""Request line and headers together; no provider or API server sends more than a few KiB."""

MAX_CHUNKS: Final = 10_000
"""Chunks of one chunked body; a sender of 1-byte chunks only makes the server work."""

_HEADER_END = b"\r\n\r\n"
_CHUNK_LINE_MAX = 1024
_CONTENT_LENGTH = re.compile(rb"^[0-9]{1,19}$")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
# RFC 9110 5.6.2 token, 5.6.4 quoted-string; RFC 9112 7.1.1 chunk-ext (with optional whitespace).
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXTENSION = re.compile(rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|"
                              + _QUOTED + rb"))?)*")
_TRAILER_NAME = re.compile(_TOKEN)
# RFC 9110 6.5.1: fields a trailer must not carry (framing, routing, authentication).
_FORBIDDEN_TRAILERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"trailer",
                                 b"authorization", b"te"})


class Framing(enum.Enum):
    """What the bytes received so far amount to."""

    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    TOO_LARGE = "too-large"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Scan:
    """The verdict on a request's bytes so far."""

    framing: Framing
    end: int = 0
    """For COMPLETE: where the request ends (later bytes belong to the next request)."""
    reason: str = ""
    """For MALFORMED and TOO_LARGE: what is wrong, fit for the client."""
    expects_continue: bool = False
    """The headers are complete and ask for ``100 Continue`` before the body."""


class Scanner:
    """Judges one request's bytes as they arrive; each call resumes where the last one stopped.

    Resuming keeps the work linear in the bytes received, whatever the chunk sizes; a request of
    more than :data:`MAX_CHUNKS` chunks is refused (real senders use chunks of kilobytes).
    """

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self._headers: Scan | None = None
        self._body_start = 0
        self._chunked = False
        self._lengths: list[bytes] = []
        self._position = 0
        self._body = 0
        self._chunks = 0
        self._trailers = -1
        """Bytes of trailer lines read so far, once the last chunk has been (-1 before)."""
        self._searched = 0
        """Bytes already searched for the end of the headers."""

    def scan(self, data: bytes | bytearray | memoryview) -> Scan:
        """The verdict on ``data``: the request's bytes received so far (always from its start)."""
        view = memoryview(data)
        if self._headers is None:
            headers = self._scan_headers(view)
            if headers.framing is not Framing.COMPLETE:
                return headers
            self._headers = headers
        if self._chunked:
            result = self._scan_chunks(view)
        else:
            result = _scan_length(self._lengths, len(view), self._body_start, self.max_body)
        if result.framing is Framing.INCOMPLETE and self._headers.expects_continue:
            return Scan(Framing.INCOMPLETE, expects_continue=True)
        return result

    def _scan_headers(self, view: memoryview) -> Scan:
        # Only the bytes new since the last call are searched (and the three before them, where the
        # end could start): headers sent a byte at a time cost their length, not 32 KiB per byte.
        start = max(0, self._searched - len(_HEADER_END) + 1)
        window = bytes(view[start:MAX_HEADER_BYTES + len(_HEADER_END)])
        found = window.find(_HEADER_END)
        if found < 0:
            lf = window.find(b"\n")
            while lf >= 0:
                if start + lf == 0 or view[start + lf - 1] != ord("\r"):
                    # A client ending its lines in a bare LF would otherwise wait out the whole deadline.
                    return Scan(Framing.MALFORMED, reason="a header line ends in a bare LF, not CRLF")
                lf = window.find(b"\n", lf + 1)
            self._searched = start + len(window)
            if len(view) > MAX_HEADER_BYTES:
                return Scan(Framing.TOO_LARGE,
                            reason=f"the request headers are over {MAX_HEADER_BYTES} bytes")
            return Scan(Framing.INCOMPLETE)
        header_end = start + found
        fields = _header_fields(bytes(view[:header_end]))
        if isinstance(fields, str):
            return Scan(Framing.MALFORMED, reason=fields)
        self._body_start = self._position = header_end + len(_HEADER_END)
        encodings = fields.get(b"transfer-encoding", [])
        self._lengths = fields.get(b"content-length", [])
        if encodings:
            if self._lengths:
                # Both framings at once is the classic request-smuggling shape (RFC 9112 6.3).
                return Scan(Framing.MALFORMED, reason="both Content-Length and Transfer-Encoding are sent")
            if b",".join(encodings).replace(b" ", b"").lower() != b"chunked":
                return Scan(Framing.MALFORMED, reason="only the chunked transfer coding is accepted")
            self._chunked = True
        expects = any(value.lower() == b"100-continue" for value in fields.get(b"expect", []))
        return Scan(Framing.COMPLETE, expects_continue=expects)

    def _scan_chunks(self, view: memoryview) -> Scan:
        """Walk the chunks from where the last call stopped: sizes, data, CRLFs, the last chunk."""
        if self._trailers >= 0:
            return self._scan_trailers(view)
        while True:
            position = self._position
            line_end = _find_crlf(view, position, _CHUNK_LINE_MAX)
            if line_end == -1:
                return Scan(Framing.INCOMPLETE)
            if line_end == -2:
                return Scan(Framing.MALFORMED, reason="a chunk-size line is too long")
            size_text, extended, extension = bytes(view[position:line_end]).partition(b";")
            if extended:
                # RFC 9112 7.1.1: whitespace may precede an extension, and only then.
                if not _CHUNK_EXTENSION.fullmatch(b";" + extension):
                    return Scan(Framing.MALFORMED, reason="a chunk extension is malformed")
                size_text = size_text.rstrip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                return Scan(Framing.MALFORMED, reason="a chunk size is not hexadecimal")
            size = int(size_text, 16)
            if size == 0:
                self._position, self._trailers = line_end + 2, 0
                return self._scan_trailers(view)
            if self._body + size > self.max_body:
                return Scan(Framing.TOO_LARGE, reason=f"the body is over the limit of {self.max_body} bytes")
            data_start = line_end + 2
            if len(view) < data_start + size + 2:
                return Scan(Framing.INCOMPLETE)
            if bytes(view[data_start + size:data_start + size + 2]) != b"\r\n":
                return Scan(Framing.MALFORMED, reason="a chunk is not followed by CRLF")
            self._chunks += 1
            if self._chunks > MAX_CHUNKS:
                return Scan(Framing.MALFORMED, reason=f"the body is sent in more than {MAX_CHUNKS} chunks")
            self._body += size
            self._position = data_start + size + 2

    def _scan_trailers(self, view: memoryview) -> Scan:
        """The trailer lines after the last chunk, from where the last call stopped, to the empty line."""
        while True:
            position = self._position
            line_end = _find_crlf(view, position, MAX_HEADER_BYTES)
            if line_end == -1:
                return Scan(Framing.INCOMPLETE)
            if line_end == -2 or self._trailers > MAX_HEADER_BYTES:
                return Scan(Framing.TOO_LARGE, reason=f"the trailers are over {MAX_HEADER_BYTES} bytes")
            if line_end == position:
                return Scan(Framing.COMPLETE, end=position + 2)
            line = bytes(view[position:line_end])
            name, colon, _ = line.partition(b":")
            if not colon or b"\n" in line or not _TRAILER_NAME.fullmatch(name) \
                    or name.lower() in _FORBIDDEN_TRAILERS:
                return Scan(Framing.MALFORMED, reason="a trailer line is malformed")
            self._trailers += line_end - position
            self._position = line_end + 2


def _header_fields(block: bytes) -> dict[bytes, list[bytes]] | str:
    """Header values by lower-cased name, or why the block is not HTTP/1.1 framing."""
    lines = block.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
        return "the request line is not METHOD TARGET HTTP/1.x"
    fields: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            return "a header line is malformed"
        fields.setdefault(name.lower(), []).append(value.strip())
    return fields


def _scan_length(lengths: list[bytes], received: int, body_start: int,
                 max_body: int) -> Scan:
    if not lengths:
        return Scan(Framing.COMPLETE, end=body_start)
    if len(set(lengths)) != 1 or not _CONTENT_LENGTH.match(lengths[0]):
        return Scan(Framing.MALFORMED, reason="Content-Length is not one decimal number")
    length = int(lengths[0])
    if length > max_body:
        return Scan(Framing.TOO_LARGE, reason=f"the body is over the limit of {max_body} bytes")
    if received - body_start >= length:
        return Scan(Framing.COMPLETE, end=body_start + length)
    return Scan(Framing.INCOMPLETE)


def _find_crlf(view: memoryview, start: int, limit: int) -> int:
    """Index of the next CRLF from ``start``; -1 when not received yet, -2 when past ``limit``.

    The bytes looked at are copied in windows growing fourfold from 256: finding a short line costs
    its length, not ``limit`` (thousands of short trailer lines cost 32 KiB each, per byte received).
    """
    size = 256
    while True:
        wanted = min(size, limit + 2)
        window = bytes(view[start:start + wanted])
        found = window.find(b"\r\n")
        if found >= 0:
            return start + found
        if len(window) > limit + 1:
            return -2
        if len(window) < wanted:
            return -1
        size *= 4
