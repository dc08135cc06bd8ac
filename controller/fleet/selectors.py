"""Kubernetes label selectors (``app=web,tier!=db,env in (a,b),!legacy``): parsed and matched (pure).

The grammar of ``kubectl get -l``: requirements joined by commas, each ``key``, ``!key``,
``key=value`` (or ``==``), ``key!=value``, ``key in (v1,v2)`` or ``key notin (v1,v2)``; all must hold.
As in Kubernetes, ``!=`` and ``notin`` also match an object without the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["Requirement", "matches", "parse_selector"]

_KEY: Final = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE: Final = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"\s*(?P<negated>!?)\s*(?P<key>{_KEY})\s*")
_EQUALS = re.compile(rf"\s*(?P<key>{_KEY})\s*(?P<operator>==|=|!=)\s*(?P<value>{_VALUE})\s*")
_SET = re.compile(rf"\s*(?P<key>{_KEY})\s+(?P<operator>in|notin)\s*\((?P<values>[^()]*)\)\s*")


@dataclass(frozen=True)
class Requirement:
    """One requirement: ``operator`` is ``in``, ``notin``, ``exists`` or ``!exists``."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def holds(self, labels: dict[str, str]) -> bool:
        """Whether an object with these labels meets the requirement."""
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "in" else not inside


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """Parse a selector ("" selects everything); `ValueError` names the requirement it cannot read."""
    requirements = []
    for term in _terms(text):
        if match := _EQUALS.fullmatch(term):
            operator = "notin" if match["operator"] == "!=" else "in"
            requirements.append(Requirement(match["key"], operator, frozenset([match["value"]])))
        elif match := _SET.fullmatch(term):
            values = [value.strip() for value in match["values"].split(",")]
            if not all(re.fullmatch(_VALUE, value) for value in values):
                raise ValueError(f"{term.strip()!r}: a value is not a label value")
            requirements.append(Requirement(match["key"], match["operator"], frozenset(values)))
        elif match := _EXISTS.fullmatch(term):
            requirements.append(Requirement(match["key"], "!exists" if match["negated"] else "exists"))
        else:
            raise ValueError(f"{term.strip()!r} is not a label requirement (key, !key, key=value, "
                             f"key!=value, key in (a,b) or key notin (a,b))")
    return tuple(requirements)


def matches(requirements: tuple[Requirement, ...], labels: Iterable[tuple[str, str]]) -> bool:
    """Whether labels (``(key, value)`` pairs) meet every requirement."""
    if not requirements:
        return True
    by_key = dict(labels)
    return all(requirement.holds(by_key) for requirement in requirements)


def _terms(text: str) -> list[str]:
    """Split on the commas that are not inside ``(...)``."""
    if not text.strip():
        return []
    terms, depth, start = [], 0, 0
    for position, character in enumerate(text):
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
        elif character == "," and depth == 0:
            terms.append(text[start:position])
            start = position + 1
    terms.append(text[start:])
    return terms
