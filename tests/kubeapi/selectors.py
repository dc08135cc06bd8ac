"""Label selectors (query string and `LabelSelector` objects) and the field selectors kubectl uses."""
from __future__ import annotations

import re
from typing import Any, Callable

from .errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_REQ = re.compile(
    r"""^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*
        (?:(?P<op>==|=|!=)\s*(?P<val>[-A-Za-z0-9_.]*)
          |\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\)
        )?\s*$""", re.X)


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside `( … )`."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_label_selector(text: str | None) -> Predicate:
    """`a=b,c!=d,e in (f,g),h notin (i),j,!k` -> predicate over labels dicts."""
    if not text or not text.strip():
        return lambda labels: True
    checks: list[Predicate] = []
    for part in _split_requirements(text):
        m = _REQ.match(part)
        if not m:
            raise bad_request(f"unable to parse requirement: {part!r}")
        key, neg = m["key"], bool(m["neg"])
        if neg and (m["op"] or m["setop"]):
            raise bad_request(f"unable to parse requirement: {part!r}")
        if m["op"] in ("=", "=="):
            checks.append(lambda L, k=key, v=m["val"]: L.get(k) == v)
        elif m["op"] == "!=":
            checks.append(lambda L, k=key, v=m["val"]: L.get(k) != v)
        elif m["setop"]:
            values = {s.strip() for s in m["set"].split(",") if s.strip()}
            if m["setop"] == "in":
                checks.append(lambda L, k=key, vs=values: k in L and L[k] in vs)
            else:
                checks.append(lambda L, k=key, vs=values: L.get(k) not in vs)
        elif neg:
            checks.append(lambda L, k=key: k not in L)
        else:
            checks.append(lambda L, k=key: k in L)
    return lambda labels: all(c(labels) for c in checks)


_FIELDS = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")}


def parse_field_selector(text: str | None, extra: dict[str, Callable[[dict[str, Any]], str]] | None = None
                         ) -> Predicate:
    """`metadata.name=x,metadata.namespace!=y` -> predicate over whole objects."""
    if not text or not text.strip():
        return lambda obj: True
    checks: list[Predicate] = []
    for part in text.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        fieldname, op, value = m.groups()
        getter: Callable[[dict[str, Any]], str]
        if fieldname in _FIELDS:
            a, b = _FIELDS[fieldname]
            getter = lambda o, a=a, b=b: str((o.get(a) or {}).get(b) or "")  # noqa: E731
        elif extra and fieldname in extra:
            getter = extra[fieldname]
        else:
            raise bad_request(f'"{fieldname}" is not a known field selector: only "metadata.name", '
                              f'"metadata.namespace"')
        if op == "!=":
            checks.append(lambda o, g=getter, v=value: g(o) != v)
        else:
            checks.append(lambda o, g=getter, v=value: g(o) == v)
    return lambda obj: all(c(obj) for c in checks)


def match_label_selector(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A `metav1.LabelSelector` (matchLabels + matchExpressions). None or {} matches everything."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and not (key in labels and labels[key] in values):
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
