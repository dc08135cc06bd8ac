"""The monitoring overlay: it only adds objects; promtool checks the rules and runs their unit
tests; every metric the alerts and the dashboard query is one the running service serves."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy.conftest import find, kustomize
from support import service
from support.paths import MANIFESTS

OVERLAY = MANIFESTS / "overlays" / "monitoring"
ADDED = {"PodMonitor", "PrometheusRule"}
ALERTS_TEST = pathlib.Path(__file__).parent / "alerts-test.yaml"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself, not the service."""

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool not installed (make test-deps)")


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = kustomize(OVERLAY)
    return objects


@pytest.fixture(scope="module")
def rule_groups(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = find(rendered, "PrometheusRule", "gitjob-webhook")["spec"]
    return spec


@pytest.fixture(scope="module")
def dashboard(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = find(rendered, "ConfigMap", "gitjob-webhook-dashboard")
    parsed: dict[str, Any] = json.loads(config_map["data"]["gitjob-webhook.json"])
    return parsed


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def test_the_overlay_adds_monitoring_and_changes_no_base_object(rendered: list[dict[str, Any]]) -> None:
    base = kustomize(MANIFESTS / "base")
    ours = [o for o in rendered if o["kind"] in ADDED or _key(o) == ("ConfigMap", "gitjob-webhook-dashboard")]
    assert sorted(map(_key, ours)) == [("ConfigMap", "gitjob-webhook-dashboard"),
                                       ("PodMonitor", "gitjob-webhook-admission"),
                                       ("PodMonitor", "gitjob-webhook-receiver"),
                                       ("PrometheusRule", "gitjob-webhook")]
    assert sorted((o for o in rendered if o not in ours), key=_key) == sorted(base, key=_key)


@pytest.mark.parametrize(("component", "port", "scheme"), [
    pytest.param("receiver", "http", None, id="receiver: plain HTTP on 8080"),
    pytest.param("admission", "https", "https", id="admission: TLS on 8443"),
])
def test_a_podmonitor_per_component_scrapes_its_pods(rendered: list[dict[str, Any]], component: str,
                                                     port: str, scheme: str | None) -> None:
    monitor = find(rendered, "PodMonitor", f"gitjob-webhook-{component}")
    pods = find(rendered, "Deployment", f"gitjob-webhook-{component}")["spec"]["template"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert monitor["metadata"]["namespace"] == "cattle-fleet-system"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pods["metadata"]["labels"].items()
    assert port in [p["name"] for p in pods["spec"]["containers"][0]["ports"]]
    assert (endpoint["port"], endpoint["path"], endpoint.get("scheme")) == (port, "/metrics", scheme)
    assert endpoint["relabelings"][0]["targetLabel"] == "component"


def test_the_dashboard_is_a_configmap_grafana_loads(rendered: list[dict[str, Any]],
                                                    dashboard: dict[str, Any]) -> None:
    config_map = find(rendered, "ConfigMap", "gitjob-webhook-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Deliveries by provider and outcome", "Delivery latency", "GitRepo status patches by result",
            "Admission decisions", "Admission latency", "Cached objects", "Time since the last full list",
            "Missed pushes", "GitRepos by state"} <= titles


def test_every_alert_says_what_why_and_what_to_do(rule_groups: dict[str, Any]) -> None:
    alerts = [rule for group in rule_groups["groups"] for rule in group["rules"]]
    assert len(alerts) == 7
    for alert in alerts:
        assert set(alert["annotations"]) == {"summary", "description", "runbook"}, alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical")


@needs_promtool
def test_promtool_accepts_the_rules(rule_groups: dict[str, Any], tmp_path: pathlib.Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups))
    checked = subprocess.run([str(promtool), "check", "rules", str(rules)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


@needs_promtool
def test_each_alert_fires_on_its_series_and_resolves(rule_groups: dict[str, Any],
                                                     tmp_path: pathlib.Path) -> None:
    for group in rule_groups["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]["runbook"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups))
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    tested = subprocess.run([str(promtool), "test", "rules", ALERTS_TEST.name], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


# Metric names in PromQL: what is left once strings, label matchers, label lists, ranges, numbers,
# Grafana variables and function calls are taken out.
_REMOVED = [r'"(?:[^"\\]|\\.)*"', r"\{[^{}]*\}",
            r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)",
            r"\[[^\]]*\]", r"\$\w+", r"\b\d+(?:\.\d+)?(?:e\d+)?\b"]
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


def metric_names(expression: str) -> set[str]:
    for pattern in _REMOVED:
        expression = re.sub(pattern, " ", expression)
    words = re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expression)
    return {word[0] for word in words
            if word[0] not in _KEYWORDS and not expression[word.end():].lstrip().startswith("(")}


@pytest.mark.parametrize(("expression", "names"), [
    pytest.param('sum by (le) (rate(a_bucket{x="b(c)"}[5m])) > 0.5', {"a_bucket"}, id="aggregation"),
    pytest.param("time() - b_seconds{namespace=\"$namespace\"} < 14 * 86400", {"b_seconds"}, id="arithmetic"),
    pytest.param("(sum(increase(c_total[15m])) or vector(0)) == 0 and on () sum(d) > 0", {"c_total", "d"},
                 id="set operators"),
])
def test_metric_names_are_read_out_of_promql(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def _expressions(rule_groups: dict[str, Any], dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for group in rule_groups["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition")
        if query:
            yield f"variable {variable['name']}", re.sub(r"label_values\((\w+),.*\)", r"\1", query)


def _served(url: str, verify: str | bool = True) -> set[str]:
    """Every sample name the /metrics text declares (its HELP and TYPE lines, even before a sample)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",), "summary": ("_sum", "_count", "_created", "")}
    text = requests.get(f"{url}/metrics", verify=verify, timeout=5).text
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in suffixes.get(family.type, ("",))}


def test_every_metric_the_alerts_and_the_dashboard_use_is_served(
        rule_groups: dict[str, Any], dashboard: dict[str, Any],
        start_receiver: Callable[..., service.Service],
        start_admission: Callable[..., service.Service]) -> None:
    receiver, admission = start_receiver(), start_admission()
    served = _served(receiver.receiver) | _served(admission.admission, admission.ca_file) | PROMETHEUS_OWN
    used = {(where, name) for where, expression in _expressions(rule_groups, dashboard)
            for name in metric_names(expression)}
    assert len({name for _, name in used}) >= 12
    assert sorted((where, name) for where, name in used if name not in served) == []
