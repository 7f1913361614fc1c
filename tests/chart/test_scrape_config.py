"""tests/chart/scrape_config.py: the scrape jobs it derives from the rendered ServiceMonitors,
and the chart bugs (a ServiceMonitor that would scrape nothing) it refuses.

No stack: the local ports are made up; promtool (Debian's `prometheus`) checks the config.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.stack.testing import settings_for_tests
from tests.chart.conftest import ALL_SCENARIOS, NAMESPACE, Obj, by_kind, render, scenario_values
from tests.chart.scrape_config import (
    ScrapeConfigError,
    matches,
    sanitize,
    scrape_configs,
    stack_ports,
)

CHART_COMPONENTS = (
    "backend", "chatbot", "classifier", "location", "ride-duration", "sensor", "triton",
    "worker-cost", "worker-dynamic-duration", "worker-sensor-duration", "worker-tip",
)  # fmt: skip
STACK = ["postgres", "nats", "triton", "location", "sensor", "ride-duration", "classifier",
         "backend", "chatbot", "worker-tip", "worker-cost", "worker-dynamic-duration",
         "worker-sensor-duration"]  # fmt: skip


@pytest.fixture(scope="module")
def default() -> list[Obj]:
    return render(scenario_values("default"))


@pytest.fixture(scope="module")
def ports() -> dict[tuple[str, str], int]:
    settings = settings_for_tests(Path("/nonexistent-home"))
    return stack_ports(settings, STACK)


def _monitor(objects: list[Obj], component: str) -> Obj:
    return next(
        o
        for o in by_kind(objects, "ServiceMonitor")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    )


def _service(objects: list[Obj], name: str) -> Obj:
    return next(o for o in by_kind(objects, "Service") if o["metadata"]["name"] == name)


def test_one_job_per_service_monitor_aimed_at_the_local_process(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    jobs = {j["job_name"]: j for j in scrape_configs(default, ports, namespace=NAMESPACE)}
    assert set(jobs) == {
        f"serviceMonitor/{NAMESPACE}/mf-modelfleet-{c}/0" for c in CHART_COMPONENTS
    }
    triton = jobs[f"serviceMonitor/{NAMESPACE}/mf-modelfleet-triton/0"]
    assert [s["targets"] for s in triton["static_configs"]] == [
        [f"127.0.0.1:{ports['triton', 'metrics']}"]  # the Service's "metrics" port, not http
    ]
    meta = triton["static_configs"][0]["labels"]
    assert meta["__meta_kubernetes_service_name"] == "mf-modelfleet-triton"
    assert meta["__meta_kubernetes_namespace"] == NAMESPACE
    assert meta["__meta_kubernetes_service_label_app_kubernetes_io_component"] == "triton"
    assert (triton["metrics_path"], triton["scheme"], triton["scrape_interval"]) == (
        "/metrics", "http", "15s"
    )  # fmt: skip
    # job: the Service name, then its jobLabel label (app.kubernetes.io/component) when it has it.
    job_rules = [r for r in triton["relabel_configs"] if r.get("target_label") == "job"]
    assert job_rules == [
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job",
         "replacement": "${1}"},
        {"source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_component"],
         "target_label": "job", "regex": "(.+)", "replacement": "${1}"},
    ]  # fmt: skip
    backend = jobs[f"serviceMonitor/{NAMESPACE}/mf-modelfleet-backend/0"]
    assert backend["static_configs"][0]["targets"] == [f"127.0.0.1:{ports['backend', 'http']}"]


def test_the_interval_is_the_charts_value(ports: dict[tuple[str, str], int]) -> None:
    objects = render({"monitoring": {"serviceMonitor": {"interval": "1s"}}})
    assert {j["scrape_interval"] for j in scrape_configs(objects, ports, namespace=NAMESPACE)} == {
        "1s"
    }


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_every_scenarios_service_monitors_scrape_something_once(
    scenario: str, ports: dict[tuple[str, str], int]
) -> None:
    jobs = scrape_configs(render(scenario_values(scenario)), ports, namespace=NAMESPACE)
    assert all(job["static_configs"] for job in jobs)


def test_promtool_accepts_the_config(
    default: list[Obj], ports: dict[tuple[str, str], int], tmp_path: Path
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: apt-get install -y prometheus (scripts/ensure-tools)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump({"scrape_configs": scrape_configs(default, ports, namespace=NAMESPACE)})
    )
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_port_name_the_service_lacks_fails(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    objects = copy.deepcopy(default)
    _monitor(objects, "triton")["spec"]["endpoints"][0]["port"] = "prometheus"
    with pytest.raises(ScrapeConfigError, match="mf-modelfleet-triton has no port named"):
        scrape_configs(objects, ports, namespace=NAMESPACE)


def test_a_selector_matching_no_service_fails(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    objects = copy.deepcopy(default)
    labels = _monitor(objects, "backend")["spec"]["selector"]["matchLabels"]
    labels["app.kubernetes.io/instance"] = "other-release"
    with pytest.raises(ScrapeConfigError, match="mf-modelfleet-backend selects no rendered"):
        scrape_configs(objects, ports, namespace=NAMESPACE)


def test_a_namespace_selector_elsewhere_fails(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    objects = copy.deepcopy(default)
    _monitor(objects, "classifier")["spec"]["namespaceSelector"] = {"matchNames": ["monitoring"]}
    with pytest.raises(ScrapeConfigError, match="classifier selects no rendered Service"):
        scrape_configs(objects, ports, namespace=NAMESPACE)
    _monitor(objects, "classifier")["spec"]["namespaceSelector"] = {"any": True}
    assert scrape_configs(objects, ports, namespace=NAMESPACE)


def test_a_target_port_no_container_declares_fails(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    objects = copy.deepcopy(default)
    _service(objects, "mf-modelfleet-triton")["spec"]["ports"][2]["targetPort"] = "prom"
    with pytest.raises(ScrapeConfigError, match="targetPort 'prom' is no container port"):
        scrape_configs(objects, ports, namespace=NAMESPACE)


def test_a_service_selecting_no_pods_fails(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    objects = copy.deepcopy(default)
    _service(objects, "mf-modelfleet-worker-tip")["spec"]["selector"]["app.kubernetes.io/name"] = (
        "other"
    )
    with pytest.raises(ScrapeConfigError, match="worker-tip selects no rendered pods"):
        scrape_configs(objects, ports, namespace=NAMESPACE)


def test_a_component_the_stack_does_not_run_fails(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    without_chatbot = {k: v for k, v in ports.items() if k[0] != "chatbot"}
    with pytest.raises(ScrapeConfigError, match="runs no chatbot with a 'http' port"):
        scrape_configs(default, without_chatbot, namespace=NAMESPACE)


def test_a_second_service_scraping_the_same_pods_fails(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    objects = copy.deepcopy(default)
    twin = copy.deepcopy(_service(objects, "mf-modelfleet-ride-duration"))
    twin["metadata"]["name"] = "mf-modelfleet-ride-duration-twin"
    objects.append(twin)
    with pytest.raises(ScrapeConfigError, match="duplicate series"):
        scrape_configs(objects, ports, namespace=NAMESPACE)


@pytest.mark.parametrize("field", ["tlsConfig", "bearerTokenSecret", "targetPort"])
def test_an_endpoint_field_not_translated_fails(
    default: list[Obj], ports: dict[tuple[str, str], int], field: str
) -> None:
    objects = copy.deepcopy(default)
    _monitor(objects, "backend")["spec"]["endpoints"][0][field] = {"x": 1}
    with pytest.raises(ScrapeConfigError, match=re.escape(f"not translated: {{'{field}'}}")):
        scrape_configs(objects, ports, namespace=NAMESPACE)


def test_relabelings_metric_relabelings_and_job_label_are_kept(
    default: list[Obj], ports: dict[tuple[str, str], int]
) -> None:
    objects = copy.deepcopy(default)
    monitor = _monitor(objects, "backend")
    del monitor["spec"]["jobLabel"]
    monitor["spec"]["targetLabels"] = ["app.kubernetes.io/instance"]
    endpoint = monitor["spec"]["endpoints"][0]
    endpoint.update(
        scheme="https",
        path="/internal/metrics",
        relabelings=[{"sourceLabels": ["__meta_kubernetes_pod_container_name"],
                      "targetLabel": "c", "action": "Replace"}],
        metricRelabelings=[{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
    )  # fmt: skip
    job = next(
        j
        for j in scrape_configs(objects, ports, namespace=NAMESPACE)
        if j["job_name"].endswith("mf-modelfleet-backend/0")
    )
    assert (job["scheme"], job["metrics_path"]) == ("https", "/internal/metrics")
    relabel = job["relabel_configs"]
    assert relabel[-1] == {
        "source_labels": ["__meta_kubernetes_pod_container_name"],
        "target_label": "c",
        "action": "replace",
    }
    assert {"source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"],
            "target_label": "app_kubernetes_io_instance", "regex": "(.+)",
            "replacement": "${1}"} in relabel  # fmt: skip
    # No jobLabel: job is the Service's name only.
    assert [r["source_labels"] for r in relabel if r.get("target_label") == "job"] == [
        ["__meta_kubernetes_service_name"]
    ]
    assert job["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": "go_.*", "action": "drop"}
    ]


def test_label_selectors() -> None:
    labels = {"a": "1", "b": "2"}
    assert matches({"matchLabels": {"a": "1"}}, labels)
    assert not matches({"matchLabels": {"a": "2"}}, labels)
    expressions = [
        ({"key": "a", "operator": "In", "values": ["1", "3"]}, True),
        ({"key": "a", "operator": "NotIn", "values": ["1"]}, False),
        ({"key": "c", "operator": "NotIn", "values": ["1"]}, True),
        ({"key": "b", "operator": "Exists"}, True),
        ({"key": "c", "operator": "Exists"}, False),
        ({"key": "c", "operator": "DoesNotExist"}, True),
    ]
    for expression, expected in expressions:
        assert matches({"matchExpressions": [expression]}, labels) is expected, expression
    with pytest.raises(ScrapeConfigError):
        matches({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["0"]}]}, labels)
    assert sanitize("app.kubernetes.io/component") == "app_kubernetes_io_component"
