"""k8s/ values of the add-ons (kube-prometheus-stack, prometheus-adapter) agree with the chart:
the labels it selects by, the dashboards' datasource uid, the custom metrics the HPAs use."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, ROOT, SCENARIOS, by_kind, render, scenario_values
from tests.chart.test_monitoring import DASHBOARDS, TRITON_METRICS

K8S = ROOT / "k8s"


def _load(name: str) -> Any:
    return yaml.safe_load((K8S / name).read_text())


def _adapter_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _load("prometheus-adapter-values.yaml")["rules"]["custom"]
    return rules


def test_kube_prometheus_stack_selects_what_the_chart_labels() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["monitoring"]
    stack = _load("kube-prometheus-stack-values.yaml")
    spec = stack["prometheus"]["prometheusSpec"]
    release = values["release"]
    assert spec["serviceMonitorSelector"]["matchLabels"] == {"release": release}
    assert spec["ruleSelector"]["matchLabels"] == {"release": release}
    sidecar = stack["grafana"]["sidecar"]
    assert sidecar["dashboards"]["label"] == values["dashboards"]["label"]
    assert sidecar["dashboards"]["labelValue"] == values["dashboards"]["labelValue"]
    for path in DASHBOARDS:
        assert (
            json.loads(path.read_text())["panels"][0]["datasource"]["uid"]
            == (sidecar["datasources"]["uid"])
        )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_custom_hpa_metric_has_an_adapter_rule(scenario: str) -> None:
    served = {rule["name"]["as"] for rule in _adapter_rules()}
    for hpa in by_kind(render(scenario_values(scenario)), "HorizontalPodAutoscaler"):
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in served


def test_eks_scales_triton_on_queue_time() -> None:
    hpas = by_kind(render(scenario_values("eks")), "HorizontalPodAutoscaler")
    triton = next(h for h in hpas if h["metadata"]["name"].endswith("-triton"))
    names = [m.get("pods", {}).get("metric", {}).get("name") for m in triton["spec"]["metrics"]]
    assert "triton_queue_seconds_per_request" in names


def test_adapter_queries_are_valid_promql_over_exported_metrics(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: apt-get install -y prometheus (scripts/ensure-tools)")
    rules = []
    for i, rule in enumerate(_adapter_rules()):
        series = re.match(r"([a-z_:]+)\{", rule["seriesQuery"])
        assert series and (series.group(1) in TRITON_METRICS or series.group(1).startswith("http_"))
        expr = rule["metricsQuery"].replace("<<.LabelMatchers>>", 'namespace="x"')
        rules.append({"record": f"adapter:check_{i}", "expr": expr.replace("<<.GroupBy>>", "pod")})
    file = tmp_path / "adapter.rules.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
