"""monitoring/: rules pass promtool (check + unit tests), every alert is tested and has a runbook
section, dashboards use metrics the services export, and the chart ships all of it.

promtool comes from Debian's `prometheus` package (`scripts/ensure-tools`, run by `make test`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import ROOT, Obj, by_kind, render
from tests.chart.test_alert_scope import scoped

MONITORING = ROOT / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yaml"))
TEST_FILES = sorted((MONITORING / "tests").glob("*.yaml"))
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
RUNBOOK = ROOT / "docs" / "runbook-alerts.md"
DATASOURCE_UID = "prometheus"  # kube-prometheus-stack's Grafana datasource uid
# Triton 2.51's metrics (port 8002), as listed in shared/LOCAL-SERVERS.md.
TRITON_METRICS = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_pending_request_count",
}  # fmt: skip


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool missing: apt-get install -y prometheus (scripts/ensure-tools does)")
    return found


def _alerts() -> list[dict[str, Any]]:
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"] if "alert" in rule
    ]  # fmt: skip


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert TEST_FILES
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, TEST_FILES)],
        capture_output=True, text=True, timeout=120, cwd=MONITORING / "tests",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names == {
        "ModelfleetHighErrorRatio", "ModelfleetLatencyP99OverBudget", "ModelfleetTritonDown",
        "ModelfleetTritonModelNotReady", "ModelfleetPodCrashLooping",
        "ModelfleetConsumerLagGrowing", "ModelfleetDeadLetters", "ModelfleetClassifierF1Low",
        "ModelfleetClassifierEstimatedF1Low", "ModelfleetClassifierConceptDrift",
        "ModelfleetCronJobFailed", "ModelfleetOutboxBacklog", "ModelfleetChatbotLlmTtftHigh",
    }  # fmt: skip
    assert names <= fires, names - fires
    assert names <= quiet, names - quiet


def test_every_alert_has_a_runbook_section_and_severity() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")
    }  # fmt: skip
    for alert in _alerts():
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/runbook-alerts.md", url
        assert anchor == alert["alert"].lower() and anchor in headings, url
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def _declared_metrics() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services").rglob("metrics.py"):
        names.update(
            re.findall(r'(?:Counter|Histogram|Gauge|Summary)\(\s*"([a-z_:]+)"', path.read_text())
        )
    return names


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that draws, those inside collapsed rows too (rows draw nothing)."""
    return [
        inner
        for p in dashboard["panels"]
        for inner in (p.get("panels", []) if p["type"] == "row" else [p])
    ]


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_datasources_are_fixed_and_metrics_exist(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"].startswith("modelfleet-") and dashboard["title"]
    for panel in _panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
    known = _declared_metrics() | TRITON_METRICS
    assert {"http_requests_total", "http_request_duration_seconds"} <= known
    exprs = _dashboard_exprs(dashboard)
    assert exprs
    for expr in exprs:
        for metric in re.findall(r"\b((?:http|modelfleet|nv)_[a-z_]+)\b", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert metric in known or base in known, f"{path.name}: {metric} is not exported"


def test_chart_ships_every_dashboard_and_rule_file() -> None:
    objects: list[Obj] = render({})
    dashboards = [
        c for c in by_kind(objects, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert sorted(k for c in dashboards for k in c["data"]) == sorted(p.name for p in DASHBOARDS)
    for config_map in dashboards:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        for name, text in config_map["data"].items():
            assert json.loads(text) == json.loads((MONITORING / "dashboards" / name).read_text())
    rules = by_kind(objects, "PrometheusRule")
    shipped = [g for r in rules for g in r["spec"]["groups"]]
    source = [g for p in RULE_FILES for g in yaml.safe_load(scoped(p.read_text()))["groups"]]
    assert shipped == source


def test_runbook_base_url_is_applied() -> None:
    objects = render({"monitoring": {"prometheusRule": {"runbookBaseUrl": "https://x.test/d/"}}})
    urls = [
        rule["annotations"]["runbook_url"] for r in by_kind(objects, "PrometheusRule")
        for g in r["spec"]["groups"] for rule in g["rules"] if "alert" in rule
    ]  # fmt: skip
    assert urls and all(u.startswith("https://x.test/d/runbook-alerts.md#") for u in urls)


def test_dashboards_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_dashboards", MONITORING / "generate_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.render()
    assert sorted(written) == [p.name for p in DASHBOARDS]
    for name, text in written.items():
        assert (MONITORING / "dashboards" / name).read_text() == text, (
            f"{name} differs: run python monitoring/generate_dashboards.py"
        )
        assert json.loads(text)["description"].startswith("Generated by")
