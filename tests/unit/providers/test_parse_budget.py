"""The parse budget's estimate, made before parsing: what a body would cost as Python objects."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from controller.providers.base import TooLarge
from controller.providers.payloads import check_parse_budget

MiB = 1024 * 1024
BUDGET = 4 * MiB
FILL = b"A" * (2 * MiB)   # half the budget: only a character width of 2 or more takes it over


@pytest.mark.parametrize(("body", "refused"), [
    pytest.param(b'{"s": "' + FILL + b'"}', False, id="ascii"),
    pytest.param('{"s": "é'.encode() + FILL + b'"}', False, id="latin-1-stays-one-byte-a-character"),
    pytest.param('{"s": "中'.encode() + FILL + b'"}', True, id="one-cjk-character"),
    pytest.param('{"s": "😀'.encode() + FILL + b'"}', True, id="one-emoji"),
    pytest.param(b'{"s": "\\ud83d\\ude00' + FILL + b'"}', True, id="an-escaped-emoji"),
    pytest.param(b'{"s": "\\u4e2d' + FILL + b'"}', True, id="an-escaped-cjk-character"),
    pytest.param(b'{"s": "\\u003c' + FILL + b'"}', False, id="an-escaped-ascii-character"),
    pytest.param(b"payload=%7B%22s%22%3A%22%F0%9F%98%80" + FILL + b"%22%7D", True, id="a-form-encoded-emoji"),
    pytest.param(b'{"a": [' + b'{"b": 1}, ' * (BUDGET // 40) + b"{}]}", True, id="many-small-objects"),
])
def test_the_estimate_counts_characters_at_the_width_python_stores_them(body: bytes, refused: bool) -> None:
    if refused:
        with pytest.raises(TooLarge):
            check_parse_budget(body, BUDGET)
    else:
        check_parse_budget(body, BUDGET)


@pytest.mark.parametrize("body", [
    pytest.param('{"s": "😀'.encode() + FILL + b'"}', id="one-emoji"),
    pytest.param(b'{"a": [' + b'{"b": 1}, ' * (MiB // 10) + b"{}]}", id="small-objects"),
    pytest.param(b'{"s": "' + FILL + b'"}', id="ascii"),
])
def test_what_the_estimate_allows_parses_within_it(body: bytes) -> None:
    """The estimate errs high: a body it lets through parses into no more than it said."""
    budget = 64 * MiB
    check_parse_budget(body, budget)
    tracemalloc.start()
    try:
        json.loads(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = next(limit for limit in range(MiB, budget + 1, MiB) if _fits(body, limit))
    assert peak <= 3 * estimate


def _fits(body: bytes, budget: int) -> bool:
    try:
        check_parse_budget(body, budget)
    except TooLarge:
        return False
    return True
