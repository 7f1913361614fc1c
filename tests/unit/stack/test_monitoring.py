"""The local stack's Prometheus rules and Alertmanager route come from the chart's own files;
only the timing is the laptop's (services/stack/monitoring.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.stack.monitoring import (
    CHART_VALUES,
    RULES_DIR,
    Prometheus,
    alertmanager_config,
    local_rules,
)
from services.stack.testing import settings_for_tests


def test_local_rules_change_only_the_timing() -> None:
    source = yaml.safe_load((RULES_DIR / "modelfleet.rules.yaml").read_text())
    local = local_rules(source, interval_s=5, alert_for="30s")
    assert [g["name"] for g in local["groups"]] == [g["name"] for g in source["groups"]]
    alerts = 0
    for mine, theirs in zip(local["groups"], source["groups"], strict=True):
        assert mine["interval"] == "5s"
        for rule, original in zip(mine["rules"], theirs["rules"], strict=True):
            assert rule["expr"] == original["expr"]
            assert rule.get("labels") == original.get("labels")
            if "alert" in rule and "for" in original:
                alerts += 1
                assert rule["for"] == "30s"
            else:
                assert rule.get("for") == original.get("for")
    assert alerts >= 10  # every alert of the file, the classifier's quality alerts among them


def test_the_route_is_the_charts_alertmanager_config() -> None:
    values = yaml.safe_load(CHART_VALUES.read_text())
    config = alertmanager_config(values, webhook="http://127.0.0.1:9/v1/alerts", group_wait_s=5)
    (route,) = config["route"]["routes"]
    chart = values["monitoring"]["alertmanagerConfig"]
    assert route["matchers"] == [f'alertname=~"{"|".join(chart["alerts"])}"']
    assert "ModelfleetClassifierEstimatedF1Low" in chart["alerts"]
    assert route["repeat_interval"] == chart["repeatInterval"]
    assert route["group_by"] == ["alertname", "model"] and route["group_wait"] == "5s"
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers[route["receiver"]]["webhook_configs"] == [
        {"url": "http://127.0.0.1:9/v1/alerts", "send_resolved": True}
    ]
    assert "webhook_configs" not in receivers[config["route"]["receiver"]]  # the rest: nowhere


def test_prometheus_scrapes_every_target_with_the_local_namespace(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path)
    prometheus = Prometheus(settings, {"classifier": "127.0.0.1:8002", "triton": "h:1/metrics"})
    prometheus.prepare()
    config = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["classifier"]["static_configs"] == [
        {"targets": ["127.0.0.1:8002"], "labels": {"namespace": "local"}}
    ]
    assert jobs["triton"]["metrics_path"] == "/metrics"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"{settings.host}:{settings.alertmanager_port}"
    ]
    written = sorted(p.name for p in (tmp_path / "prometheus" / "rules").iterdir())
    assert written == sorted(p.name for p in RULES_DIR.glob("*.yaml"))
