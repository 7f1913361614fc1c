"""PromQL gates: an instant query against Prometheus' HTTP API, with a deadline, and its verdict.

    client = PrometheusClient("http://127.0.0.1:9090", timeout_s=5)
    result = evaluate_gate(gate, client)   # GateResult(passed=..., value=..., reason=...)

A query error, an unreachable Prometheus or a missed deadline fails the gate: a rollout never
goes on blind.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from services.rollout.spec import Gate


class PrometheusError(RuntimeError):
    """Prometheus could not answer the query (down, deadline, bad PromQL)."""


def parse_values(body: dict[str, Any]) -> list[float]:
    """The values of an /api/v1/query answer (vector or scalar); NaN values are left out.

    Raises PrometheusError for an error answer or a result type a gate cannot judge (matrix).
    """
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body["data"]
    kind = data["resultType"]
    if kind == "vector":
        raw = [sample["value"][1] for sample in data["result"]]
    elif kind == "scalar":
        raw = [data["result"][1]]
    else:
        raise PrometheusError(f"a gate needs an instant vector or a scalar, got a {kind}")
    values = [float(v) for v in raw]
    return [v for v in values if not math.isnan(v)]


class PrometheusClient:
    """Instant queries, each bounded by ``timeout_s`` (client deadline and Prometheus' own)."""

    def __init__(self, url: str, *, timeout_s: float, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._transport = transport

    def query(self, expr: str) -> list[float]:
        """The non-NaN values of ``expr`` now."""
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
                response = client.get(
                    f"{self.url}/api/v1/query",
                    params={"query": expr, "timeout": f"{round(self.timeout_s * 1000)}ms"},
                )
        except httpx.HTTPError as exc:
            raise PrometheusError(f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise PrometheusError(f"HTTP {response.status_code}: not JSON") from exc
        return parse_values(body)


@dataclass(frozen=True, slots=True)
class GateResult:
    """The verdict of one gate: the value judged (None: no data or no answer) and why."""

    name: str
    passed: bool
    value: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(gate: Gate, values: list[float]) -> GateResult:
    """The verdict on a query's values: the worst series against the thresholds."""
    if not values:
        passed = gate.on_no_data == "pass"
        return GateResult(gate.name, passed, None, f"no data (on_no_data: {gate.on_no_data})")
    if gate.max is not None:
        worst = max(values)
        if worst > gate.max:
            return GateResult(gate.name, False, worst, f"{worst:.6g} > max {gate.max:g}")
    if gate.min is not None:
        worst = min(values)
        if worst < gate.min:
            return GateResult(gate.name, False, worst, f"{worst:.6g} < min {gate.min:g}")
        if gate.max is None:
            return GateResult(gate.name, True, worst, f"{worst:.6g} >= min {gate.min:g}")
    value = max(values)
    return GateResult(gate.name, True, value, f"{value:.6g} <= max {gate.max:g}")


def evaluate_gate(gate: Gate, client: PrometheusClient) -> GateResult:
    """Run the gate's query and judge it; a query that fails fails the gate."""
    try:
        values = client.query(gate.query)
    except PrometheusError as exc:
        return GateResult(gate.name, False, None, f"query failed: {exc}")
    return judge(gate, values)
