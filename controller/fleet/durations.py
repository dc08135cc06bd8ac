"""Go duration strings (``1h0m0s``, ``1.5h``, ``2h45m``) as Fleet's GitRepo fields use them.

Parsed exactly like Go's ``time.ParseDuration``, plus Fleet's rule that the bare string
``"0"`` means zero, so this service agrees with the GitRepo CRD about which values exist. The one
parser of the service: ``settings`` (``--webhook-polling-interval``), admission and reconcile all
use it, with one set of limits, so a value one of them accepts the others can handle.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import Final

__all__ = ["MAX_DURATION_NS", "MAX_TEXT_LENGTH", "parse_go_duration", "parse_go_duration_ns"]

MAX_DURATION_NS: Final = 2**63 - 1
"""Go's largest ``time.Duration`` (about 2562047h47m): anything longer overflows."""

MAX_TEXT_LENGTH: Final = 64
"""Longer strings are refused before any parsing: no real interval needs more than a few characters."""

_UNIT_NS: Final = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, as Go accepts
    "\u03bcs": 1_000,  # Greek small letter mu, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_GROUP = re.compile(r"(?P<whole>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?P<unit>[^0-9.]*)")


@functools.lru_cache(maxsize=256)
def parse_go_duration_ns(text: str) -> int:
    """Parse a Go duration into whole nanoseconds (Go truncates finer fractions too).

    Raises `ValueError` with a message fit for an operator for anything Go rejects,
    e.g. ``"1d"`` (Go has no day unit) or ``"30"`` (no unit).
    """
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string, not {type(text).__name__}")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"a duration of {len(text)} characters is too long (at most {MAX_TEXT_LENGTH})")
    body = text
    negative = False
    if body[:1] in ("-", "+"):
        negative = body[0] == "-"
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = Fraction(0)
    position = 0
    while position < len(body):
        match = _GROUP.match(body, position)
        assert match is not None  # every part of the pattern may be empty, so it always matches
        whole, frac, unit = match.group("whole"), match.group("frac") or "", match.group("unit")
        if not whole and not frac:
            raise ValueError(f"invalid duration {text!r}")
        if not unit:
            raise ValueError(f"missing unit in duration {text!r}; use ns, us, ms, s, m or h")
        if unit not in _UNIT_NS:
            if unit in ("d", "w", "y"):
                raise ValueError(
                    f"duration {text!r}: days, weeks and years are not Go units; use hours, e.g. 24h"
                )
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}; use ns, us, ms, s, m or h")
        if len(whole) > 20:  # more digits than any int64 has; also keeps int() cheap
            raise ValueError(f"duration {text!r} is too long; the maximum is 2562047h")
        frac = frac[:30]  # digits past nanosecond precision cannot matter, as in Go
        number = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += number * _UNIT_NS[unit]
        if total > MAX_DURATION_NS:
            raise ValueError(f"duration {text!r} is too long; the maximum is 2562047h")
        position = match.end()
    nanoseconds = int(total)
    return -nanoseconds if negative else nanoseconds


def parse_go_duration(text: str) -> float:
    """Parse a Go duration (or Fleet's ``"0"``) into seconds; `ValueError` if Go would reject it."""
    return parse_go_duration_ns(text) / 1_000_000_000
