"""The worker's request framing: when a request's bytes are complete, and what that costs."""

from __future__ import annotations

import pytest

from controller.serving import framing
from controller.serving.framing import Framing, Scanner

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(("request_bytes", "verdict"), [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", Framing.COMPLETE),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", Framing.COMPLETE),
    (b"GET / HTTP/1.1\nHost: x\r\n", Framing.MALFORMED),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 40_000 + b"\r\n\r\n", Framing.TOO_LARGE),
    (b"GET / HTTP/1.1\r\nX: y\r\r\n\r\n", Framing.COMPLETE),
    (HEAD + b"3\r\nabc\r\n0\r\n\r\n", Framing.COMPLETE),
    (HEAD + b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n", Framing.COMPLETE),
    (HEAD + b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n", Framing.INCOMPLETE),
    (HEAD + b"0\r\nbad line\r\n\r\n", Framing.MALFORMED),
    (HEAD + b"0\r\nContent-Length: 5\r\n\r\n", Framing.MALFORMED),
    (HEAD + b"0\r\n" + b"a:\r\n" * 17000 + b"\r\n", Framing.TOO_LARGE),   # 34,000 bytes of trailers
])
def test_a_request_is_judged_whole_or_byte_by_byte_alike(request_bytes: bytes, verdict: Framing) -> None:
    assert Scanner(1024).scan(request_bytes).framing is verdict
    scanner, received = Scanner(1024), bytearray()
    for byte in request_bytes:
        received.append(byte)
        scan = scanner.scan(received)
        if scan.framing is not Framing.INCOMPLETE:
            break
    assert scan.framing is verdict
    if verdict is Framing.COMPLETE:
        assert scan.end == len(request_bytes)


def test_trailers_arriving_byte_by_byte_are_each_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each scan went back to the first trailer line: 16,000 short lines, a byte at a time, held the
    worker's main loop for seconds."""
    calls = 0
    find = framing._find_crlf

    def counted(view: memoryview, start: int, limit: int) -> int:
        nonlocal calls
        calls += 1
        return find(view, start, limit)

    monkeypatch.setattr(framing, "_find_crlf", counted)
    request_bytes = HEAD + b"0\r\n" + b"a:\r\n" * 2000 + b"\r\n"
    scanner, received = Scanner(1024), bytearray()
    for byte in request_bytes:
        received.append(byte)
        scanner.scan(received)
    assert calls <= 2 * len(request_bytes)


@pytest.mark.parametrize(("data", "start", "limit", "found"), [
    (b"ab\r\n", 0, 100, 2),
    (b"x" * 255 + b"\r\n", 0, 1000, 255),          # the CRLF across the first window's end
    (b"x" * 1023 + b"\r\n", 0, 2000, 1023),
    (b"x" * 5000, 0, 4000, -2),                     # past the limit
    (b"x" * 3000, 0, 4000, -1),                     # not received yet
    (b"x" * 100 + b"\r\n", 0, 100, 100),            # exactly at the limit
    (b"ab\r\ncd\r\n", 4, 100, 6),
])
def test_a_line_end_is_found_within_its_limit(data: bytes, start: int, limit: int, found: int) -> None:
    assert framing._find_crlf(memoryview(data), start, limit) == found
