"""How an API server's (or a proxy's) error answer is named and how long it asks to wait."""

from __future__ import annotations

import pytest

from controller.store.kubeapi import _error

PROXY_PAGE = (b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>"
              b"<center>nginx</center></body></html>")


@pytest.mark.parametrize(("status", "body", "reason"), [
    (500, b'{"kind": "Status", "message": "etcdserver: request timed out"}', "etcdserver: request timed out"),
    (403, b'{"kind": "Status", "reason": "Forbidden"}', "Forbidden"),
    (502, PROXY_PAGE, "Bad Gateway"),
    (503, b"no healthy upstream", "no healthy upstream"),
    (504, b"<html><body><p>upstream\n\n timed   out</p></body></html>", "upstream timed out"),
    (500, b"", "Internal Server Error"),
    (599, b"", "request failed"),
    (500, b"\x1b[31mred\x1b[0m", "?[31mred?[0m"),
    (502, b"<title>" + b"x" * 500 + b"</title>", "x" * 120 + "\u2026"),
    (502, b"<p>Bad &amp; worse &lt;here&gt;</p>", "Bad & worse <here>"),
    (502, b"<p>" + b" " * 4090 + b"<title>late</title>", "Bad Gateway"),
])
def test_an_error_answer_is_named_by_what_it_says(status: int, body: bytes, reason: str) -> None:
    assert _error(status, body, {}).reason == reason


@pytest.mark.parametrize(("header", "seconds"), [
    ("3", 3.0), (" 10 ", 10.0), ("0", 0.0),
    ("", None), ("nan", None), ("-1", None), ("1e-4", None), ("0.0001", None), ("inf", None),
    ("Wed, 21 Oct 2026 07:28:00 GMT", None), ("\u00b2", None), ("9" * 50, None),
])
def test_only_whole_seconds_are_a_retry_after(header: str, seconds: float | None) -> None:
    assert _error(503, b"", {"Retry-After": header}).retry_after == seconds
