"""Go duration parsing, as the GitRepo CRD and Go's time.ParseDuration accept them."""

from __future__ import annotations

import pytest

from controller.fleet.durations import parse_go_duration, parse_go_duration_ns


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("0", 0.0, id="fleet-zero"),
        pytest.param("0s", 0.0, id="zero-seconds"),
        pytest.param("15s", 15.0, id="seconds"),
        pytest.param("1h", 3600.0, id="hour"),
        pytest.param("1h0m0s", 3600.0, id="go-string-form"),
        pytest.param("1.5h", 5400.0, id="fraction"),
        pytest.param("2h45m", 9900.0, id="two-groups"),
        pytest.param(".5m", 30.0, id="leading-dot"),
        pytest.param("5.m", 300.0, id="trailing-dot"),
        pytest.param("300ms", 0.3, id="milliseconds"),
        pytest.param("10us", 0.00001, id="micro-ascii"),
        pytest.param("10\u00b5s", 0.00001, id="micro-sign"),
        pytest.param("10\u03bcs", 0.00001, id="greek-mu"),
        pytest.param("7ns", 7e-9, id="nanoseconds"),
        pytest.param("-1m", -60.0, id="negative-as-go"),
        pytest.param("2562047h", 2562047 * 3600.0, id="crd-maximum"),
    ],
)
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "invalid", id="empty"),
        pytest.param("1d", "days", id="days"),
        pytest.param("2w", "weeks", id="weeks"),
        pytest.param("30", "missing unit", id="no-unit"),
        pytest.param("1h30", "missing unit", id="last-group-without-unit"),
        pytest.param("1hour", "unknown unit", id="spelled-unit"),
        pytest.param("h", "invalid", id="unit-only"),
        pytest.param(".h", "invalid", id="dot-only"),
        pytest.param("1 h", "unknown unit", id="space"),
        pytest.param("2562048h", "too long", id="over-maximum"),
        pytest.param("9" * 40 + "h", "too long", id="huge-number"),
        pytest.param("00", "missing unit", id="double-zero"),
    ],
)
def test_what_go_rejects_is_a_value_error_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_go_duration(text)


def test_fractions_are_exact_to_the_nanosecond() -> None:
    assert parse_go_duration_ns("1.000000001s") == 1_000_000_001
