"""Reading a delivery body: Content-Type handling, JSON decoding and defensive field access.

Payloads are never trusted to have the documented shape. Every read goes through the
accessors below, which treat a missing or null field as empty and raise `MalformedDelivery`
naming the JSON path when a field has the wrong type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Final
from urllib.parse import parse_qsl

from controller.providers.base import Headers, MalformedDelivery, TooLarge, UnsupportedContentType

__all__ = [
    "MAX_REF_CHANGES",
    "JsonObject",
    "TRUSTED_PARSE_BUDGET",
    "UNTRUSTED_PARSE_BUDGET",
    "check_parse_budget",
    "bool_at",
    "decode_body",
    "first_header",
    "header",
    "list_at",
    "new_commit",
    "object_at",
    "objects_in",
    "present",
    "str_at",
    "unique_urls",
]

JsonObject = Mapping[str, object]
"""A decoded JSON object."""

UNTRUSTED_PARSE_BUDGET: Final = 16 * 1024 * 1024
"""Bytes of objects a body may parse into unless the global Secret verified it: unauthenticated, or
verified by a GitRepo's own Secret (a real push of 2,048 commits needs about 12 MiB)."""
TRUSTED_PARSE_BUDGET: Final = 64 * 1024 * 1024
"""The same for a delivery the global Secret verified (the budgets are estimated before parsing)."""

MAX_REF_CHANGES: Final = 1000
"""Ref changes read from one delivery; a real push moves a handful, a mirror sync perhaps hundreds."""

# What parsing JSON costs in Python objects, roughly, per token: a dict (its `{`), a list (`[`), and
# each member or element (`:` and `,`). Counted on the raw bytes, which costs a few ms per 20 MiB.
_COST_OF = ((b"{", 240), (b"[", 64), (b":", 64), (b",", 64), (b"%7B", 240), (b"%5B", 64),
            (b"%3A", 64), (b"%2C", 64))

# Python keeps a string at 1, 2 or 4 bytes a character, the widest of its characters deciding: one
# emoji makes the decoded text of a whole body, and the strings parsed from it, four times its length.
# Raw UTF-8 lead bytes, their form-encoded spelling and JSON escapes tell which width a body can reach
# (each pattern starts with a literal, so that a search of 20 MiB takes milliseconds).
_BELOW_WIDE = bytes(range(0xC4))       # a lead byte from 0xC4 on starts a character from U+0100 on
_BELOW_ASTRAL = bytes(range(0xF0))     # from 0xF0 on, one beyond U+FFFF
_ASTRAL_SPELLINGS = (re.compile(rb"%[fF][0-4]"), re.compile(rb"\\u[dD][89abAB]"))
_WIDE_SPELLINGS = (re.compile(rb"%(?:[cC][4-9a-fA-F]|[dDeE][0-9a-fA-F])"),
                   re.compile(rb"\\u(?:[1-9a-fA-F][0-9a-fA-F]|0[1-9a-fA-F])"))

_JSON_TYPES = frozenset({"", "application/json"})
_HEX = frozenset("0123456789abcdefABCDEF")
_FORM_TYPE = "application/x-www-form-urlencoded"
# GitHub's form deliveries carry a single field; a cap keeps parse_qsl's work bounded.
_MAX_FORM_FIELDS = 16


def header(headers: Headers, name: str) -> str:
    """The value of a lower-cased header name, or "" when absent."""
    return headers.get(name, "")


def first_header(headers: Headers, names: tuple[str, ...]) -> str:
    """The value of the first of ``names`` that is sent, or ""."""
    return next((headers[name] for name in names if headers.get(name)), "")


def present(headers: Headers, name: str) -> bool:
    """True when the header is sent with a non-blank value (an empty value does not count)."""
    return bool(header(headers, name).strip())


def check_parse_budget(body: bytes, budget: int) -> None:
    """Refuse, before parsing, a body whose parse would hold more than ``budget`` bytes of objects.

    The estimate counts the body itself (its strings, at the width Python will store them) and each
    JSON structure and member, also in their form-encoded spelling; it errs on the high side. Raises
    `TooLarge`.
    """
    estimate = len(body) * _character_width(body)
    for token, cost in _COST_OF:
        estimate += body.count(token) * cost
        if estimate > budget:
            raise TooLarge(f"parsing this body would take more than {budget // (1024 * 1024)} MiB, the "
                           "limit for a delivery the global webhook Secret has not verified")


def _character_width(body: bytes) -> int:
    """The bytes a character of the decoded body may take in Python: 1, 2 or 4."""
    leads = body.translate(None, _BELOW_WIDE)
    if leads.translate(None, _BELOW_ASTRAL) or any(p.search(body) for p in _ASTRAL_SPELLINGS):
        return 4
    return 2 if leads or any(p.search(body) for p in _WIDE_SPELLINGS) else 1


def decode_body(headers: Headers, body: bytes, *, form_allowed: bool) -> JsonObject:
    """Decode the body to a JSON object according to its Content-Type.

    `application/json` (any parameters) and a missing Content-Type are JSON; a form body
    (`payload=<json>`) is accepted only for providers that send one (`form_allowed`).
    """
    media_type = header(headers, "content-type").split(";", 1)[0].strip().lower()
    if media_type in _JSON_TYPES:
        raw: bytes | str = body
    elif media_type == _FORM_TYPE and form_allowed:
        raw = _form_payload(body)
    else:
        raise UnsupportedContentType(f"unsupported Content-Type {media_type[:64]!r}")
    return _json_object(raw)


def _form_payload(body: bytes) -> str:
    try:
        fields = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError as error:
        raise MalformedDelivery("form body is not valid application/x-www-form-urlencoded") from error
    payloads = [value for name, value in fields if name == "payload"]
    if len(payloads) != 1:
        raise MalformedDelivery("form body must carry exactly one 'payload' field")
    return payloads[0]


def _json_object(raw: bytes | str) -> JsonObject:
    if not raw:
        raise MalformedDelivery("empty body")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as error:
        # ValueError covers bad JSON, bad UTF-8 and over-long integers; RecursionError deep nesting.
        raise MalformedDelivery("body is not valid JSON") from error
    if not isinstance(value, dict):
        raise MalformedDelivery("body is not a JSON object")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _wrong_type(path: str, expected: str) -> MalformedDelivery:
    return MalformedDelivery(f"{path} must be {expected}")


def object_at(parent: JsonObject, key: str, path: str = "") -> JsonObject:
    """The object at `parent[key]`; {} when missing or null."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong_type(_join(path, key), "an object")
    return value


def str_at(parent: JsonObject, key: str, path: str = "") -> str:
    """The string at `parent[key]`; "" when missing or null."""
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _wrong_type(_join(path, key), "a string")
    return value


def bool_at(parent: JsonObject, key: str, path: str = "") -> bool:
    """The boolean at `parent[key]`; False when missing or null."""
    value = parent.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong_type(_join(path, key), "a boolean")
    return value


def list_at(parent: JsonObject, key: str, path: str = "") -> Sequence[object]:
    """The array at `parent[key]`; () when missing or null."""
    value = parent.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _wrong_type(_join(path, key), "an array")
    return value


def objects_in(parent: JsonObject, key: str, path: str = "",
               limit: int | None = None) -> Iterator[tuple[str, JsonObject]]:
    """Each element of the array at `parent[key]` with its JSON path; every element must be an object.

    With ``limit``, an array of more elements raises `TooLarge` before any is read.
    """
    array_path = _join(path, key)
    items = list_at(parent, key, path)
    if limit is not None and len(items) > limit:
        raise TooLarge(f"{array_path} has {len(items)} entries; at most {limit} are read")
    for index, item in enumerate(items):
        item_path = f"{array_path}[{index}]"
        if not isinstance(item, dict):
            raise _wrong_type(item_path, "an object")
        yield item_path, item


def new_commit(sha: str, path: str = "") -> str:
    """The commit a ref now points at, lower-cased: "" for the all-zero SHA providers send on deletion.

    Anything but 40 (SHA-1) or 64 (SHA-256) hexadecimal characters raises `MalformedDelivery`: the
    value is written to a GitRepo's status, so nothing else may get there.
    """
    if sha.strip("0") == "":
        return ""
    if len(sha) not in (40, 64) or not _HEX.issuperset(sha):
        raise MalformedDelivery(f"{path or 'the commit'} is not a commit SHA "
                                "(40 or 64 hexadecimal characters)")
    return sha.lower()


def unique_urls(*candidates: str) -> tuple[str, ...]:
    """Non-empty URLs in order, each once."""
    return tuple(dict.fromkeys(url for url in candidates if url))
