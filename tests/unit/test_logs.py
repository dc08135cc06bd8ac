"""The text log writes one field per key=value, however the value reads."""

from __future__ import annotations

import logging

import pytest

from controller.logs import TextFormatter, fields


@pytest.mark.parametrize(("value", "written"), [
    ("push", "push"),
    (200, "200"),
    ("127.0.0.1:8080", "127.0.0.1:8080"),
    ("bad signature for provider", '"bad signature for provider"'),
    ("a=b", '"a=b"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("line\nbreak", '"line\\nbreak"'),
    ("back\\slash", '"back\\\\slash"'),
    ("", '""'),
    ("\x1b[31mred", '"\\u001b[31mred"'),
    ("x\x9b2J", '"x\\u009b2J"'),
    ("del\x7f", '"del\\u007f"'),
    ("a\u2028b", '"a\\u2028b"'),
    ("evil\u202etxt.exe", '"evil\\u202etxt.exe"'),
    ("zero\u200bwidth\ufeff", '"zero\\u200bwidth\\ufeff"'),
    ("ünïcode", "ünïcode"),
    (["unknown-key"], "unknown-key"),
    (("a", "b c"), '"a,b c"'),
    ([], '""'),
    (True, "true"),
    ({"k": 1}, '"{\\"k\\":1}"'),
])
def test_text_log_values_are_one_field_each(value: object, written: str) -> None:
    record = logging.LogRecord("gitjob_webhook", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(fields(problem=value, status=401))
    line = TextFormatter().format(record)
    assert line.endswith(f" gitjob_webhook: request problem={written} status=401")
