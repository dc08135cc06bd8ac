"""The chart's documentation stays true: every value described, the README's table current, the Rancher
form (questions.yaml) naming real values with their defaults."""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

import pytest
import yaml

from chart.helm import CHART, ROOT
from support import scripts
from controller.providers import SECRET_KEYS

BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"
QUESTION_TYPES = {"string": str, "boolean": bool, "int": int, "enum": str}


def _table_script() -> ModuleType:
    return scripts.load("chart-values-table")


def _values_text() -> str:
    return (CHART / "values.yaml").read_text()


def _value(path: str) -> Any:
    value: Any = yaml.safe_load(_values_text())
    for name in path.split("."):
        value = value[name]
    return value


def _schema(path: str) -> dict[str, Any]:
    node: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    for name in path.split("."):
        node = node["properties"][name]
    return node


def test_every_value_is_described_by_a_comment() -> None:
    assert _table_script().undocumented(_values_text()) == []


def test_the_readme_values_table_is_what_the_script_prints() -> None:
    readme = (ROOT / "README.md").read_text()
    regenerate = ("regenerate it with `python hack/chart-values-table.py` and paste its output between "
                  f"{BEGIN} and {END} in README.md")
    assert BEGIN in readme and END in readme, f"README.md has no values table: {regenerate}"
    between = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert between.strip() == _table_script().table(_values_text()).strip(), \
        f"README.md's values table is out of date: {regenerate}"


def test_every_value_the_templates_read_exists() -> None:
    """A template reading a value values.yaml does not define would silently render nothing."""
    values = yaml.safe_load(_values_text())
    for template in sorted((CHART / "templates").iterdir()):
        text = template.read_text()
        for start in range(len(text)):
            if not text.startswith(".Values.", start):
                continue
            path = ""
            for char in text[start + len(".Values."):]:
                if not (char.isalnum() or char in "._"):
                    break
                path += char
            node = values
            for name in path.rstrip(".").split("."):
                assert isinstance(node, dict) and name in node, f"{template.name}: .Values.{path}"
                node = node[name]


def _questions() -> list[dict[str, Any]]:
    return list(yaml.safe_load((CHART / "questions.yaml").read_text())["questions"])


@pytest.mark.parametrize("question", [pytest.param(q, id=q["variable"]) for q in _questions()])
def test_each_rancher_question_is_a_value_with_its_default(question: dict[str, Any]) -> None:
    default = _value(question["variable"])
    assert question["default"] == default
    assert isinstance(default, QUESTION_TYPES[question["type"]])
    if question["type"] == "enum":
        assert set(question["options"]) <= set(_schema(question["variable"])["enum"])
        assert default in question["options"]
    if "show_if" in question:
        variable, expected = question["show_if"].split("=")
        assert expected in _schema(variable)["enum"]


def _service_patch(text: str) -> Any:
    """The JSON of the `kubectl patch service gitjob` command in ``text``."""
    (patch,) = re.findall(r"patch service gitjob --type merge -p \\?\s*'(\{.*\})'", text)
    return json.loads(patch.replace("{{ $namespace }}", "cattle-fleet-system"))


def test_the_notes_give_the_service_back_as_the_readme_does() -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert _service_patch(notes) == _service_patch((ROOT / "README.md").read_text())


def test_the_notes_name_every_secret_key() -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert not [key for key in SECRET_KEYS if not re.search(rf"\b{re.escape(key)}\b", notes)]
