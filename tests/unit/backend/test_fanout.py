"""Calls within deadlines against real small HTTP servers: each call's own deadline, the deadline
it is given, the reasons (timeout, unavailable, not_configured), the per-call metrics, and the
JSON client's error tree and budget header."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.backend.fanout import Call, Outcome, call_within, not_configured
from services.common.deadline import BUDGET_HEADER, request_deadline
from services.common.errors import DependencyError, DependencyFailed, DependencyTimeout
from services.common.http import MAX_ANSWER_BYTES, JsonClient
from tests.httpstub import Route, http_stub

ROUTES = {
    "/fine": Route(body=b'{"zone": 161}'),
    "/slow": Route(delay_s=3.0),
    "/down": Route(status=503),
    "/gateway-timeout": Route(status=504),
    "/refused": Route(status=400),
    "/list": Route(body=b"[1, 2]"),
    "/text": Route(body=b"not json", content_type="text/plain"),
    "/huge": Route(body=b'{"x": "' + b"a" * MAX_ANSWER_BYTES + b'"}'),
}


def calls_total(downstream: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "modelfleet_fanout_calls_total", {"downstream": downstream, "outcome": outcome}
    )
    return value or 0.0


def http_call(client: JsonClient, url: str, timeout_s: float) -> Call[dict[str, Any]]:
    async def run() -> dict[str, Any]:
        return await client.post_json(url, {"ride": 1}, timeout_s=timeout_s, name="stub")

    return Call("http:stub", "post", run, timeout_s)


async def fan_out(calls: dict[str, Call[dict[str, Any]] | None], budget_s: float) -> dict[str, Any]:
    names = list(calls)

    async def one(name: str) -> Outcome[dict[str, Any]]:
        call = calls[name]
        return not_configured(name) if call is None else await call_within(name, call, budget_s)

    return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))


async def test_each_call_within_its_own_deadline_and_all_within_the_budget() -> None:
    async with http_stub(ROUTES) as stub, JsonClient() as client:
        before = calls_total("location", "timeout")
        started = time.monotonic()
        outcomes = await fan_out(
            {
                "location": http_call(client, f"{stub.url}/slow", 0.2),  # own deadline first
                "sensor": http_call(client, f"{stub.url}/slow", 5.0),  # the deadline cuts it
                "predict": http_call(client, f"{stub.url}/fine", 5.0),
                "absent": None,
            },
            budget_s=0.8,
        )
        elapsed = time.monotonic() - started
    assert outcomes["predict"].value == {"zone": 161} and outcomes["predict"].reason is None
    assert outcomes["location"].value is None and outcomes["location"].reason == "timeout"
    assert outcomes["location"].duration_s < 0.7  # its 0.2 s deadline, not the 0.8 s budget
    assert outcomes["sensor"].reason == "timeout" and outcomes["sensor"].duration_s >= 0.75
    assert outcomes["absent"].value is None and outcomes["absent"].reason == "not_configured"
    assert elapsed < 2.0  # the 3 s answers were never waited for
    assert calls_total("location", "timeout") == before + 1


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/down", "unavailable"),
        ("/refused", "unavailable"),
        ("/list", "unavailable"),
        ("/text", "unavailable"),
        ("/nowhere", "unavailable"),
        ("/gateway-timeout", "timeout"),
    ],
)
async def test_failing_downstreams_degrade_to_a_reason(path: str, reason: str) -> None:
    async with http_stub(ROUTES) as stub, JsonClient() as client:
        before = calls_total("sensor", reason)
        outcomes = await fan_out(
            {"sensor": http_call(client, f"{stub.url}{path}", 1.0)}, budget_s=1.0
        )
    assert outcomes["sensor"].value is None and outcomes["sensor"].reason == reason
    assert calls_total("sensor", reason) == before + 1


async def test_an_unreachable_downstream_is_unavailable_at_once() -> None:
    async with http_stub(ROUTES) as stub:
        url = stub.url  # closed when the block ends: nothing listens there any more
    async with JsonClient() as client:
        outcomes = await fan_out({"location": http_call(client, f"{url}/fine", 2.0)}, budget_s=2.0)
    assert outcomes["location"].reason == "unavailable"
    assert outcomes["location"].duration_s < 1.0


async def test_post_json_translates_answers_into_the_error_tree() -> None:
    async with http_stub(ROUTES) as stub, JsonClient() as client:
        assert await client.post_json(f"{stub.url}/fine", {}, timeout_s=1, name="s") == {
            "zone": 161
        }
        with pytest.raises(DependencyTimeout):
            await client.post_json(f"{stub.url}/slow", {}, timeout_s=0.1, name="s")
        with pytest.raises(DependencyTimeout):
            await client.post_json(f"{stub.url}/gateway-timeout", {}, timeout_s=1, name="s")
        with pytest.raises(DependencyError):
            await client.post_json(f"{stub.url}/down", {}, timeout_s=1, name="s")
        for path in ("/refused", "/list", "/text", "/huge"):
            with pytest.raises(DependencyFailed):
                await client.post_json(f"{stub.url}{path}", {}, timeout_s=1, name="s")
        assert stub.requests[0][1]["content-type"] == "application/json"
        assert stub.requests[0][2] == b"{}"
        assert await client.get_status(f"{stub.url}/down", timeout_s=1, name="s") == 503
    async with JsonClient() as client:
        with pytest.raises(DependencyError):  # nothing listens there any more
            await client.post_json(f"{stub.url}/fine", {}, timeout_s=1, name="s")


async def test_a_bug_in_a_call_is_unavailable_not_an_exception() -> None:
    async def broken() -> dict[str, Any]:
        raise KeyError("duration_minutes")

    outcomes = await fan_out({"x": Call("http:x", "post", broken, 1.0)}, budget_s=1.0)
    assert outcomes["x"].reason == "unavailable"


async def test_the_request_budget_cuts_a_call_and_is_passed_on_in_the_header() -> None:
    async with http_stub(ROUTES) as stub, JsonClient() as client:
        with request_deadline(0.3):
            started = time.monotonic()
            with pytest.raises(DependencyTimeout):
                await client.post_json(f"{stub.url}/slow", {}, timeout_s=5.0, name="s")
            assert time.monotonic() - started < 1.0  # the budget's 0.3 s, not the call's 5 s
        with request_deadline(2.0):
            await client.get_json(f"{stub.url}/fine", timeout_s=5.0, name="s", params={"a": "1"})
        await client.get_json(f"{stub.url}/fine", timeout_s=0.25, name="s")
        with request_deadline(0.0):
            with pytest.raises(DependencyTimeout):  # spent: not even sent
                await client.get_json(f"{stub.url}/fine", timeout_s=5.0, name="s")
    (slow, fine_in_budget, fine_own) = stub.requests
    assert 0 < int(slow[1][BUDGET_HEADER]) <= 300
    assert fine_in_budget[0] == "/fine?a=1"
    assert 1000 < int(fine_in_budget[1][BUDGET_HEADER]) <= 2000
    assert fine_own[1][BUDGET_HEADER] == "250"  # no request budget: the call's own deadline
