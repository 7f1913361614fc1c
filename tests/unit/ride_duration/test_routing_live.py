"""LiveRouting without Postgres: snapshot swap, routed calls, stable fallback, shadow queue.

The variant call is a small function standing in for Triton (what it answers depends on the
model version it is asked for), so the routing logic is tested alone; the real stack runs it in
tests/integration/test_routing.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from services.common.errors import TritonUnavailable
from services.ride_duration.routing.live import LiveRouting
from services.ride_duration.routing.metrics import (
    SHADOW_COMPARISONS,
    SHADOW_DROPPED,
    VARIANT_ERRORS,
)
from services.ride_duration.routing.settings import ModelServiceSettings
from services.ride_duration.routing.table import Route, RoutingTable, Variant

MODEL = "m"


class VersionedModel:
    """Answers 10 x the version asked for (default version: 1); counts calls per version."""

    def __init__(self, *, missing: frozenset[str] = frozenset(), delay_s: float = 0.0) -> None:
        self.calls: Counter[str] = Counter()
        self.missing = missing
        self.delay_s = delay_s

    async def __call__(self, route: Route, items: Sequence[Any]) -> tuple[list[float], str]:
        self.calls[route.version] += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if route.version in self.missing:
            raise TritonUnavailable(f"version {route.version} is not loaded")
        version = route.version or "1"
        return [10.0 * int(version) + float(item) for item in items], version


def table(version: int, *variants: tuple[str, str, float, int]) -> RoutingTable:
    return RoutingTable(
        service="unit",
        version=version,
        variants=[
            Variant(name=name, model=MODEL, model_version=v, role=role, weight=w)  # type: ignore[arg-type]
            for name, role, w, v in variants
        ],
    )


def routing(model: VersionedModel, **settings: Any) -> LiveRouting:
    return LiveRouting(
        None, ModelServiceSettings(service_name="unit", **settings), default_model=MODEL, call=model
    )


async def test_default_table_then_swap_routes_the_next_request() -> None:
    live = routing(model := VersionedModel())
    await live.start()
    try:
        first = await live.serve([0], key=None, request=None)
        assert (first.route.name, first.version, first.values) == ("stable", "1", [10.0])
        live.swap(table(1, ("stable", "stable", 0.0, 1), ("canary", "canary", 1.0, 2)), source="t")
        second = await live.serve([1], key="u", request=None)
        assert (second.route.name, second.version, second.values) == ("canary", "2", [21.0])
        assert live.snapshot.version == 1
        assert model.calls == {"": 1, "2": 1}
    finally:
        await live.close()


async def test_a_missing_candidate_version_is_answered_by_stable_and_counted() -> None:
    live = routing(VersionedModel(missing=frozenset({"3"})))
    live.swap(table(1, ("stable", "stable", 0.0, 1), ("canary", "canary", 1.0, 3)), source="t")
    before = VARIANT_ERRORS.labels(
        "unit", "canary", "canary", "3", "TritonUnavailable"
    )._value.get()
    answer = await live.serve([0], key=None, request=None)
    assert (answer.route.name, answer.version) == ("stable", "1")
    after = VARIANT_ERRORS.labels("unit", "canary", "canary", "3", "TritonUnavailable")._value.get()
    assert after == before + 1


async def test_stable_failing_is_the_callers_error() -> None:
    live = routing(VersionedModel(missing=frozenset({"1"})))
    live.swap(table(1, ("stable", "stable", 1.0, 1)), source="t")
    with pytest.raises(TritonUnavailable):
        await live.serve([0], key=None, request=None)


async def test_serve_each_keeps_order_and_makes_one_call_per_variant() -> None:
    live = routing(model := VersionedModel())
    live.swap(
        table(1, ("stable", "stable", 0.0, 1), ("a", "a", 0.5, 1), ("b", "b", 0.5, 2)), source="t"
    )
    users = [f"user-{i}" for i in range(40)]
    pairs = await live.serve_each(list(range(40)), users)
    chosen = [live.snapshot.choose(u).name for u in users]
    assert [answered.route.name for _, answered in pairs] == chosen
    assert [value for value, _ in pairs] == [
        (10.0 if name == "a" else 20.0) + i for i, name in enumerate(chosen)
    ]
    assert sum(model.calls.values()) == 2


async def test_shadow_gets_a_copy_and_a_full_queue_drops_without_slowing_answers() -> None:
    model = VersionedModel(delay_s=0.05)
    live = routing(model, shadow_queue_size=2, shadow_concurrency=1)
    await live.start()
    live.swap(table(1, ("stable", "stable", 1.0, 1), ("shadow", "shadow", 1.0, 2)), source="t")
    dropped = SHADOW_DROPPED.labels("unit")._value.get()
    disagree = SHADOW_COMPARISONS.labels("unit", "shadow", "disagree")._value.get()
    try:
        answers = await asyncio.gather(
            *(live.serve([i], key=None, request=None) for i in range(10))
        )
        assert {a.route.name for a in answers} == {"stable"}
        await live.shadow.drain()
        assert SHADOW_DROPPED.labels("unit")._value.get() > dropped
        # 10 vs 20 + i: every compared row disagrees beyond max(1.0, 10%)
        compared = SHADOW_COMPARISONS.labels("unit", "shadow", "disagree")._value.get() - disagree
        assert 1 <= compared <= 3  # one running + two queued at most
    finally:
        await live.close()
