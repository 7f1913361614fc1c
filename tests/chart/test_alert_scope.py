"""The chart's PrometheusRule alerts on its own release only: the rules of monitoring/rules/ match
every namespace (the local stack's Prometheus has no namespace label), and the chart rewrites
their scope matchers to the release's namespace and its own pods and Services. promtool runs the
rendered rules against series of this release, of another namespace and of another release in
the same namespace; then the Postgres StatefulSet's headless Service."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import ROOT, Obj, by_kind, component, render

RELEASE, NAMESPACE, FULLNAME = "prod", "shop", "prod-modelfleet"
RULE_FILES = sorted((ROOT / "monitoring" / "rules").glob("*.yaml"))


def scoped(text: str, *, namespace: str = "modelfleet", fullname: str = "mf-modelfleet") -> str:
    """A rule file as the chart ships it (templates/monitoring.yaml's rewrites)."""
    return (
        text.replace('namespace=~".*"', f'namespace="{namespace}"')
        .replace('pod=~".*"', f'pod=~"{fullname}-.+"')
        .replace('service=~".*"', f'service=~"{fullname}-.+"')
        .replace('owner_name=~".*modelfleet-.+"', f'owner_name=~"{fullname}-.+"')
    )


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool missing: apt-get install -y prometheus (scripts/ensure-tools does)")
    return found


def _rendered_rules(tmp_path: Path) -> Path:
    (rule,) = by_kind(render({}, release=RELEASE, namespace=NAMESPACE), "PrometheusRule")
    path = tmp_path / "rendered.rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


# (namespace, pod or service prefix): this release, another namespace, another release here.
PLACES = [(NAMESPACE, FULLNAME), ("other", FULLNAME), (NAMESPACE, "staging-modelfleet")]


def _case(expr: str, series: list[dict[str, str]], fires: list[dict[str, str]]) -> Any:
    """A promtool test of one alert's expression: it yields exactly the ``fires`` series."""
    labels = [", ".join(f'{k}="{v}"' for k, v in sorted(f.items())) for f in fires]
    return {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": f"({expr}) * 0 + 1",
                "eval_time": "20m",
                "exp_samples": [{"labels": f"{{{body}}}", "value": 1} for body in labels],
            }
        ],
    }


def _cases(alerts: dict[str, str]) -> list[Any]:
    ready = [
        _series(
            "kube_pod_container_status_ready",
            {"namespace": ns, "pod": f"{prefix}-triton-7f9c-x1", "container": "triton"},
            "0x30",
        )
        for ns, prefix in PLACES
    ]
    triton_down = [
        _series("up", {"namespace": ns, "pod": f"{prefix}-triton-7f9c-x1", "job": "triton"}, "0x30")
        for ns, prefix in PLACES
    ]
    errors = []
    for ns, prefix in PLACES:
        for status, rate in (("200", "54"), ("500", "6")):
            labels = {"namespace": ns, "pod": f"{prefix}-backend-1", "service": f"{prefix}-backend",
                      "job": "backend", "status": status}  # fmt: skip
            errors.append(_series("http_requests_total", labels, f"0+{rate}x30"))
    own = {"namespace": NAMESPACE, "pod": f"{FULLNAME}-triton-7f9c-x1"}
    backend = {"namespace": NAMESPACE, "service": f"{FULLNAME}-backend", "job": "backend"}
    return [
        _case(alerts["ModelfleetTritonModelNotReady"], ready, [{**own, "container": "triton"}]),
        _case(alerts["ModelfleetTritonDown"], triton_down, [{**own, "job": "triton"}]),
        _case(alerts["ModelfleetHighErrorRatio"], errors, [backend]),
    ]


def test_rendered_rules_alert_on_the_releases_own_pods_only(tmp_path: Path) -> None:
    rules = _rendered_rules(tmp_path)
    spec = yaml.safe_load(rules.read_text())
    alerts = {r["alert"]: r["expr"] for g in spec["groups"] for r in g["rules"] if "alert" in r}
    check = subprocess.run(
        [_promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tests = tmp_path / "scope.test.yaml"
    tests.write_text(
        yaml.safe_dump(
            {"rule_files": [rules.name], "evaluation_interval": "30s", "tests": _cases(alerts)}
        )
    )
    result = subprocess.run(
        [_promtool(), "test", "rules", tests.name],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_selector_of_the_rules_is_scoped() -> None:
    """No selector of the shipped rules escapes the release's namespace."""
    (rule,) = by_kind(render({}, release=RELEASE, namespace=NAMESPACE), "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    selectors = [s for e in exprs for s in _selectors(e)]
    assert len(selectors) >= 20
    for selector in selectors:
        assert f'namespace="{NAMESPACE}"' in selector, selector
    source = scoped(RULE_FILES[0].read_text(), namespace=NAMESPACE, fullname=FULLNAME)
    assert rule["spec"]["groups"] == yaml.safe_load(source)["groups"]


def _selectors(expr: str) -> list[str]:
    """The `{...}` label selectors of an expression (braces of range vectors excluded)."""
    return [m for m in _braces(expr) if "=" in m]


def _braces(expr: str) -> list[str]:
    found, depth, start = [], 0, 0
    for i, char in enumerate(expr):
        if char == "{":
            depth, start = depth + 1, i
        elif char == "}" and depth:
            depth -= 1
            found.append(expr[start : i + 1])
    return found


@pytest.mark.parametrize("name", ["postgresql", "nats"])
def test_each_statefulset_is_governed_by_a_headless_service(name: str) -> None:
    objects: list[Obj] = render({})
    (statefulset,) = [s for s in by_kind(objects, "StatefulSet") if component(s) == name]
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    governing = services[statefulset["spec"]["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None"
    assert governing["spec"]["publishNotReadyAddresses"] is True
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in governing["spec"]["selector"].items())
    # The clients keep the ClusterIP Service (DATABASE_URL, NATS_URL).
    assert services[f"mf-modelfleet-{name}"]["spec"].get("clusterIP") != "None"
