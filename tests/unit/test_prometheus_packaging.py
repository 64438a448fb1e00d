"""The Prometheus alerts and Grafana dashboard under packaging/: promtool accepts the rules and
passes their unit tests, every alert tells the operator what to do, and alerts and dashboard use
only metrics that docs/metrics.md declares."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "packaging" / "prometheus" / "alerts.yml"
RULE_TESTS = sorted((ROOT / "packaging" / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = ROOT / "packaging" / "grafana" / "dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# Values for Grafana's variables, so that promtool can parse the dashboard's queries.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$job": "minion-daemon",
    "$instance": ".*",
}


def _promtool(*arguments: str | Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        # Never a skip: CI installs it, and a skipped check would let broken rules ship.
        pytest.fail("promtool is missing: run `bash tests/run`, which installs Debian's prometheus")
    result = subprocess.run(
        [promtool, *map(str, arguments)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    command = " ".join(["promtool", *map(str, arguments)])
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    # A collapsed row holds its panels inside it.
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _panel_queries() -> list[str]:
    return [
        target["expr"]
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def _variable_selectors() -> list[str]:
    """The series selectors of the query variables' ``label_values(SELECTOR, LABEL)``."""
    selectors = []
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", text)
            assert match, f"variable {variable['name']}: unexpected query {text!r}"
            selectors.append(match[1])
    return selectors


def _with_values(query: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    return query


def _documented_metrics() -> dict[str, str]:
    """Metric name -> type, from the first two columns of the tables in docs/metrics.md."""
    rows = re.finditer(r"^\|\s*`(minion_\w+)`\s*\|\s*(\w+)\s*\|", METRICS_DOC.read_text(), re.M)
    return {row[1]: row[2] for row in rows}


def _undocumented(queries: list[str]) -> set[str]:
    documented = _documented_metrics()
    unknown = set()
    for name in {name for query in queries for name in re.findall(r"\bminion_\w+", query)}:
        base = name.removesuffix(next((s for s in HISTOGRAM_SERIES if name.endswith(s)), ""))
        if name not in documented and documented.get(base) != "histogram":
            unknown.add(name)
    return unknown


def test_promtool_accepts_the_rules() -> None:
    _promtool("check", "rules", ALERTS)


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "packaging/prometheus/tests holds no promtool test file"
    _promtool("test", "rules", *RULE_TESTS)


def test_every_alert_tells_severity_and_what_to_do() -> None:
    alerts = _alerts()
    assert alerts
    for rule in alerts:
        name = rule["alert"]
        assert name.startswith("Minion"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{name} has no {key}"
        assert "\n" not in annotations["runbook"].strip(), f"{name}: the runbook is one line"


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired = {
        check["alertname"]
        for path in RULE_TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert {rule["alert"] for rule in _alerts()} <= fired


def test_dashboard_is_an_indented_grafana_dashboard() -> None:
    text = DASHBOARD.read_text()
    dashboard = json.loads(text)
    assert text == json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"
    assert dashboard["uid"] == "minion-daemon"
    assert dashboard["title"] == "minion-daemon"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert [panel for panel in _panels(dashboard["panels"]) if panel.get("targets")]


def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    # promtool has no query linter, but it parses every expression of a rule file.
    queries = _panel_queries() + _variable_selectors()
    rules = [
        {"record": f"dashboard:query_{number}", "expr": _with_values(query)}
        for number, query in enumerate(queries)
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", path)


def test_documented_metrics_are_found() -> None:
    # Guards the parsing below: an empty table would make every name look undocumented.
    documented = _documented_metrics()
    assert documented["minion_jobs_processed_total"] == "counter"
    assert documented["minion_job_duration_seconds"] == "histogram"


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda: [rule["expr"] for rule in _alerts()], id="alerts"),
        pytest.param(lambda: _panel_queries() + _variable_selectors(), id="dashboard"),
    ],
)
def test_only_documented_metrics_are_used(source: Any) -> None:
    assert _undocumented(source()) == set(), "not in docs/metrics.md"
