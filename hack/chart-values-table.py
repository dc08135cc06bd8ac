#!/usr/bin/env python3
"""Print the Markdown table of the chart's values, from the `# --` comments of its values.yaml.

Usage: hack/chart-values-table.py [VALUES_YAML]   (default: charts/gitjob-webhook/values.yaml)

A key is documented by the comment block right above it when the block has a line starting with
`# --`: the description is that line's text and the comment lines after it. The table lists the
documented keys in file order with their type and default (as JSON). README.md carries the output
between `<!-- values-table:begin -->` and `<!-- values-table:end -->`; tests/chart checks it is current.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

VALUES = pathlib.Path(__file__).resolve().parent.parent / "charts" / "gitjob-webhook" / "values.yaml"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
COMMENT = re.compile(r"^ *#(?P<text>.*)$")


@dataclass(frozen=True)
class Row:
    """One documented key: its dotted path and its description."""

    path: tuple[str, ...]
    description: str


def documented(text: str) -> Iterator[Row]:
    """The documented keys of a values.yaml text, in file order."""
    stack: list[tuple[int, str]] = []
    comments: list[str] = []
    for line in text.splitlines():
        comment = COMMENT.match(line)
        if comment:
            comments.append(comment.group("text").strip())
            continue
        key = KEY.match(line)
        if key:
            indent = len(key.group("indent"))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key.group("key")))
            starts = [index for index, body in enumerate(comments) if body.startswith("--")]
            if starts:
                words = [comments[starts[0]].removeprefix("--").strip(), *comments[starts[0] + 1:]]
                yield Row(tuple(name for _, name in stack), " ".join(word for word in words if word))
        comments = []


def value_at(values: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in the loaded values."""
    for name in path:
        values = values[name]
    return values


def type_name(value: Any) -> str:
    """The JSON Schema-like type of a default."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def leaves(values: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every path of the values that is not a non-empty map."""
    if isinstance(values, dict) and values:
        for name, value in values.items():
            yield from leaves(value, (*path, str(name)))
    else:
        yield path


def undocumented(text: str) -> list[str]:
    """Dotted paths of the values that neither they nor any key above them document."""
    covered = {row.path for row in documented(text)}
    return [".".join(path) for path in leaves(yaml.safe_load(text))
            if not any(path[:length] in covered for length in range(1, len(path) + 1))]


def table(text: str) -> str:
    """The Markdown table of a values.yaml text."""
    values = yaml.safe_load(text)
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for row in documented(text):
        value = value_at(values, row.path)
        default = json.dumps(value, separators=(",", ":"), sort_keys=True)
        description = row.description.replace("|", "\\|")
        lines.append(f"| `{'.'.join(row.path)}` | {type_name(value)} | `{default}` | {description} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Print the table; exit status 1 naming the values nothing documents."""
    text = pathlib.Path(argv[0] if argv else VALUES).read_text()
    missing = undocumented(text)
    if missing:
        print(f"chart-values-table: no `# --` comment documents {', '.join(missing)}", file=sys.stderr)
        return 1
    sys.stdout.write(table(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
