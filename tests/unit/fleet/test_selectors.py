"""Label selectors as ``kubectl get -l`` reads them."""

from __future__ import annotations

import pytest

from controller.fleet.selectors import matches, parse_selector

LABELS = (("app", "web"), ("tier", "front"), ("team.example.com/owner", "ops"))


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("", True, id="empty selects everything"),
        pytest.param("app=web", True, id="equals"),
        pytest.param("app==web", True, id="double equals"),
        pytest.param("app=api", False, id="equals another value"),
        pytest.param("app!=api", True, id="not equals"),
        pytest.param("env!=prod", True, id="not equals matches a missing key"),
        pytest.param("app", True, id="exists"),
        pytest.param("!app", False, id="does not exist"),
        pytest.param("!env", True, id="missing key: does not exist holds"),
        pytest.param("tier in (back, front)", True, id="in"),
        pytest.param("tier notin (back,front)", False, id="notin"),
        pytest.param("env notin (prod)", True, id="notin matches a missing key"),
        pytest.param("team.example.com/owner=ops", True, id="prefixed key"),
        pytest.param("app=web,tier in (front),!env", True, id="every requirement must hold"),
        pytest.param("app=web,tier=back", False, id="one failing requirement fails all"),
    ],
)
def test_a_selector_matches_as_kubernetes_does(selector: str, expected: bool) -> None:
    assert matches(parse_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", [
    pytest.param("app=", id="an empty value is a value"),
])
def test_an_empty_value_matches_only_an_empty_label(selector: str) -> None:
    assert matches(parse_selector(selector), (("app", ""),))
    assert not matches(parse_selector(selector), LABELS)


@pytest.mark.parametrize("selector", [
    pytest.param("app=web=x", id="two equals"),
    pytest.param("app in web", id="in without parentheses"),
    pytest.param("-app", id="not a key"),
    pytest.param("app in (we b)", id="a value with a space"),
    pytest.param("app=web,,tier=front", id="an empty requirement"),
])
def test_a_malformed_selector_names_the_requirement(selector: str) -> None:
    with pytest.raises(ValueError, match="not a label"):
        parse_selector(selector)
