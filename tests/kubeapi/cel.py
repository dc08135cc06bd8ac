"""A tiny evaluator for the CEL subset used in webhook `matchConditions`.

Supported: string/int/bool/null literals, lists `[a, b]`, field selection `a.b.c` and `a['b']` over the
variables `object`, `oldObject` and `request`, `has(a.b.c)`, `==`, `!=`, `in` (list membership, or key
membership for a map), `!`, `&&`, `||` and parentheses. Selecting a missing field, or a field of null,
is an error (as in CEL), so `object.metadata.name` on a DELETE (object is null) errors unless guarded by
`has(...)` or `request.operation`. `&&`/`||` short-circuit and absorb errors like CEL's commutative
logic when the other side decides the result. Anything else raises `CelError`.
"""
from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<num>\d+)
    |(?P<op>==|!=|&&|\|\||[!()\[\],.])|(?P<id>[A-Za-z_][A-Za-z0-9_]*))""", re.X)


class CelError(Exception):
    pass


class _Err:
    """An evaluation error carried as a value, so `||`/`&&` can absorb it."""

    def __init__(self, message: str) -> None:
        self.message = message


def _tokenize(text: str) -> list[tuple[str, Any]]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CelError(f"syntax error at {text[pos:]!r}")
        pos = m.end()
        if m["str"] is not None:
            out.append(("lit", bytes(m["str"][1:-1], "utf-8").decode("unicode_escape")))
        elif m["num"] is not None:
            out.append(("lit", int(m["num"])))
        elif m["op"] is not None:
            out.append(("op", m["op"]))
        else:
            ident = m["id"]
            if ident in ("true", "false"):
                out.append(("lit", ident == "true"))
            elif ident == "null":
                out.append(("lit", None))
            elif ident == "in":
                out.append(("op", "in"))
            else:
                out.append(("id", ident))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], env: dict[str, Any]) -> None:
        self.toks, self.i, self.env = tokens, 0, env

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None or (value is not None and tok != ("op", value)):
            raise CelError(f"expected {value or 'token'}, got {tok}")
        self.i += 1
        return tok

    def expr(self) -> Any:
        left = self.conj()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.conj()
            if left is True or right is True:
                left = True
            elif isinstance(left, _Err):
                pass
            elif isinstance(right, _Err):
                left = right
            else:
                left = self._bool(left) or self._bool(right)
        return left

    def conj(self) -> Any:
        left = self.unary()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.unary()
            if left is False or right is False:
                left = False
            elif isinstance(left, _Err):
                pass
            elif isinstance(right, _Err):
                left = right
            else:
                left = self._bool(left) and self._bool(right)
        return left

    @staticmethod
    def _bool(v: Any) -> bool:
        if not isinstance(v, bool):
            raise CelError(f"no such overload: expected bool, got {type(v).__name__}")
        return v

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            v = self.unary()
            return v if isinstance(v, _Err) else not self._bool(v)
        return self.relation()

    def relation(self) -> Any:
        left = self.postfix()
        tok = self.peek()
        if tok in (("op", "=="), ("op", "!="), ("op", "in")):
            self.take()
            right = self.postfix()
            for v in (left, right):
                if isinstance(v, _Err):
                    return v
            if tok == ("op", "in"):
                if not isinstance(right, (list, dict)):
                    return _Err("no such overload for 'in'")
                return left in right
            return (left == right) if tok[1] == "==" else (left != right)
        return left

    def postfix(self) -> Any:
        value = self.primary()
        while self.peek() in (("op", "."), ("op", "[")):
            op = self.take()[1]
            if op == ".":
                kind, name = self.take()
                if kind != "id":
                    raise CelError("expected field name after '.'")
            else:
                kind, name = self.take()
                self.take("]")
            value = self._select(value, name)
        return value

    @staticmethod
    def _select(value: Any, name: Any) -> Any:
        if isinstance(value, _Err):
            return value
        if isinstance(value, dict):
            return value[name] if name in value else _Err(f"no such key: {name}")
        if isinstance(value, list) and isinstance(name, int):
            return value[name] if 0 <= name < len(value) else _Err("index out of range")
        return _Err(f"no such key: {name} (on {type(value).__name__})")

    def primary(self) -> Any:
        kind, val = self.take()
        if kind == "lit":
            return val
        if (kind, val) == ("op", "("):
            v = self.expr()
            self.take(")")
            return v
        if (kind, val) == ("op", "["):
            items = []
            while self.peek() != ("op", "]"):
                items.append(self.expr())
                if self.peek() == ("op", ","):
                    self.take()
            self.take("]")
            for v in items:
                if isinstance(v, _Err):
                    return v
            return items
        if kind == "id" and val == "has":
            self.take("(")
            return self._has()
        if kind == "id":
            if val not in self.env:
                raise CelError(f"undeclared reference to '{val}'")
            return self.env[val]
        raise CelError(f"unexpected {val!r}")

    def _has(self) -> Any:
        kind, root = self.take()
        if kind != "id" or root not in self.env:
            raise CelError("has() needs a field selection")
        value: Any = self.env[root]
        path = []
        while self.peek() == ("op", "."):
            self.take()
            path.append(self.take()[1])
        self.take(")")
        if not path:
            raise CelError("invalid argument to has() macro")
        for name in path[:-1]:
            value = self._select(value, name)
        if isinstance(value, _Err):
            return value
        if not isinstance(value, dict):
            return _Err(f"has() on {type(value).__name__}")
        return path[-1] in value


def evaluate(expression: str, env: dict[str, Any]) -> bool:
    """Evaluate a matchCondition to a bool; raise CelError on a syntax or evaluation error."""
    parser = _Parser(_tokenize(expression), env)
    result = parser.expr()
    if parser.peek() is not None:
        raise CelError(f"unexpected trailing input {parser.peek()}")
    if isinstance(result, _Err):
        raise CelError(result.message)
    if not isinstance(result, bool):
        raise CelError("matchCondition must evaluate to bool")
    return result
