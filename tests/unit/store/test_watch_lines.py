"""Watch events as the reflector reads them from a stream: one JSON object per line, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.store import reflector


class Stream:
    """What urllib3's streaming response gives the reader: chunks as they arrived."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def stream(self, amount: int, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks


@pytest.mark.parametrize(("chunks", "events"), [
    pytest.param((b'{"a": 1}\n{"b": 2}\n',), [{"a": 1}, {"b": 2}], id="two-in-one-chunk"),
    pytest.param((b'{"a"', b": ", b"1}\n"), [{"a": 1}], id="one-over-three-chunks"),
    pytest.param((b'{"a": 1}\n{"b"', b": 2}"), [{"a": 1}, {"b": 2}], id="last-without-newline"),
    pytest.param((b"\n  \n", b'{"a": 1}\n\n'), [{"a": 1}], id="blank-lines"),
    pytest.param((), [], id="nothing"),
])
def test_events_are_read_line_by_line_whatever_the_chunks(chunks: tuple[bytes, ...],
                                                          events: list[dict[str, Any]]) -> None:
    assert list(reflector._lines(Stream(*chunks))) == events


@pytest.mark.parametrize(("chunks", "problem"), [
    pytest.param((b"[1, 2]\n",), "not a JSON object", id="not-an-object"),
    pytest.param((b"[" * 100_000 + b"\n",), "nests too deep", id="nested-too-deep"),
    pytest.param((b"not json\n",), "Expecting value", id="not-json"),
    pytest.param((b"A" * 600, b"A" * 600), "over", id="a-line-without-end"),
])
def test_what_is_not_an_event_is_a_value_error(monkeypatch: pytest.MonkeyPatch, chunks: tuple[bytes, ...],
                                               problem: str) -> None:
    monkeypatch.setattr(reflector, "MAX_ANSWER_BYTES", 1000)
    with pytest.raises(ValueError, match=problem):
        list(reflector._lines(Stream(*chunks)))
