"""Range queries against Prometheus' HTTP API: one client per process, a deadline on every call.

Every failure is translated here into the error tree (:mod:`services.common.errors`):
unreachable or not ready -> :class:`PrometheusUnavailable` (503), no answer within
``timeout_s`` (ours or Prometheus' own ``timeout`` parameter) -> ``DependencyTimeout`` (504),
a query Prometheus refuses (bad PromQL, too many points) -> ``DependencyFailed`` (502, its
message in the detail). Each call is timed in ``modelfleet_dependency_request_duration_seconds``
(dependency ``prometheus``).

    client = PrometheusClient("http://127.0.0.1:9090", timeout_s=5)
    series = await client.query_range("up", start=t0, end=t1, step_s=15)
    await client.close()
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from services.common.errors import DependencyError, DependencyFailed, DependencyTimeout
from services.common.metrics import observe_dependency


class PrometheusUnavailable(DependencyError):
    type_slug = "prometheus-unavailable"
    title = "Prometheus unavailable"
    dependency = "prometheus"


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a range query: its labels and its (unix seconds, value) points; a value
    that is not a finite number (NaN, +Inf) is None."""

    labels: dict[str, str]
    points: list[tuple[float, float | None]]


def _number(raw: str) -> float | None:
    value = float(raw)
    return value if math.isfinite(value) else None


def parse_matrix(body: Any) -> list[Series]:
    """The series of an ``/api/v1/query_range`` answer (DependencyFailed for anything else)."""
    if not isinstance(body, dict):
        raise DependencyFailed("Prometheus answered something that is not a query result")
    if body.get("status") != "success":
        kind, error = body.get("errorType", "error"), body.get("error", "")
        if kind == "timeout":
            raise DependencyTimeout(f"Prometheus: {kind}: {error}")
        raise DependencyFailed(f"Prometheus refused the query: {kind}: {error}")
    data = body.get("data") or {}
    if data.get("resultType") != "matrix":
        raise DependencyFailed(f"a range query gave a {data.get('resultType')}, not a matrix")
    return [
        Series(
            labels={str(k): str(v) for k, v in item.get("metric", {}).items()},
            points=[(float(t), _number(v)) for t, v in item.get("values", [])],
        )
        for item in data.get("result", [])
    ]


class PrometheusClient:
    """Range queries and a readiness probe, each bounded by ``timeout_s``."""

    def __init__(
        self, url: str, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)

    async def close(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, operation: str, params: dict[str, str]) -> httpx.Response:
        try:
            with observe_dependency("prometheus", operation):
                return await self._client.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise DependencyTimeout(
                f"Prometheus ({self.url}) did not answer within {self.timeout_s} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(
                f"Prometheus ({self.url}) cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc

    async def query_range(
        self, expr: str, *, start: float, end: float, step_s: float
    ) -> list[Series]:
        """``expr`` evaluated every ``step_s`` seconds from ``start`` to ``end``."""
        response = await self._get(
            "/api/v1/query_range",
            "query_range",
            {
                "query": expr,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": f"{step_s:g}",
                "timeout": f"{round(self.timeout_s * 1000)}ms",
            },
        )
        if response.status_code == 503:
            raise PrometheusUnavailable(f"Prometheus ({self.url}) is not ready")
        try:
            body = response.json()
        except ValueError as exc:
            raise DependencyFailed(
                f"Prometheus answered HTTP {response.status_code} without JSON"
            ) from exc
        return parse_matrix(body)

    async def check_ready(self) -> None:
        """Raise PrometheusUnavailable unless ``GET /-/ready`` answers 200."""
        response = await self._get("/-/ready", "ready", {})
        if response.status_code != 200:
            raise PrometheusUnavailable(
                f"Prometheus ({self.url}) is not ready: HTTP {response.status_code}"
            )
