"""Latency budgets: what each service is held to, how it is exported, and which duration an
event stream counts (ModelfleetLatencyP99OverBudget compares the two)."""

from __future__ import annotations

import math

import pytest
from prometheus_client import REGISTRY
from prometheus_fastapi_instrumentator.metrics import Info
from starlette.requests import Request
from starlette.responses import Response

from services.backend.settings import BackendSettings
from services.chatbot.settings import ChatbotSettings
from services.city.settings import LocationSettings, SensorSettings
from services.common.metrics import export_latency_budget, instrumentator_http_metrics
from services.common.settings import DEFAULT_LATENCY_BUDGET_S, ServiceSettings


def test_a_service_is_held_to_250_ms_unless_its_design_or_its_setting_says_otherwise() -> None:
    assert ServiceSettings().latency_budget() == DEFAULT_LATENCY_BUDGET_S == 0.25
    assert ServiceSettings(latency_budget_s=0.1).latency_budget() == 0.1
    # The backend's POST /v1/rides waits for the chain up to its budget, then writes.
    assert BackendSettings().latency_budget() == pytest.approx(2.0 + 0.2)
    assert BackendSettings(request_budget_s=1.0).latency_budget() == pytest.approx(1.2)
    assert BackendSettings(latency_budget_s=3.0).latency_budget() == 3.0
    # A simulated remote API: its own delay's p99 (lognormal), never under the default.
    assert LocationSettings().latency_budget() == pytest.approx(0.5 * math.exp(2.326 * 0.25))
    assert SensorSettings().latency_budget() == pytest.approx(2.0 * math.exp(2.326 * 0.25))
    assert SensorSettings(latency_s=0).latency_budget() == DEFAULT_LATENCY_BUDGET_S
    # The chatbot: an unstreamed generated answer waits for the LLM, up to its deadline.
    assert ChatbotSettings().latency_budget() == DEFAULT_LATENCY_BUDGET_S
    generating = ChatbotSettings(
        generation="openai", openai_base_url="http://llm/v1", openai_model="m", llm_timeout_s=12
    )
    assert generating.latency_budget() == 12


def _budget() -> float | None:
    return REGISTRY.get_sample_value("modelfleet_latency_budget_seconds")


def test_the_budget_is_exported_at_the_bucket_bound_the_p99_estimate_can_reach() -> None:
    # histogram_quantile interpolates inside a bucket: 2.0 s requests read as ~2.5 s.
    assert export_latency_budget(2.2) == 2.5 and _budget() == 2.5
    assert export_latency_budget(0.25) == 0.25 and _budget() == 0.25
    assert export_latency_budget(0.9) == 1.0 and _budget() == 1.0
    assert export_latency_budget(20.0) == 20.0 and _budget() == 20.0  # above every bucket


def _observe(content_type: str, handler: str) -> float:
    """Feed one request of 5 s (the response started after 0.01 s) to the instrumentation;
    the duration it recorded."""
    labels = {"handler": handler, "method": "GET"}

    def total() -> float:
        return REGISTRY.get_sample_value("http_request_duration_seconds_sum", labels) or 0.0

    before = total()
    request = Request({"type": "http", "method": "GET", "path": handler, "headers": []})
    response = Response(headers={"content-type": content_type}, status_code=200)
    info = Info(
        request=request,
        response=response,
        method="GET",
        modified_handler=handler,
        modified_status="200",
        modified_duration=5.0,
        modified_duration_without_streaming=0.01,
    )
    instrumentator_http_metrics(info)
    return total() - before


def test_an_event_stream_counts_its_time_to_start_not_how_long_the_client_listens() -> None:
    assert _observe("text/event-stream; charset=utf-8", "/test-budget/events") == pytest.approx(
        0.01
    )
    assert _observe("application/json", "/test-budget/json") == pytest.approx(5.0)
