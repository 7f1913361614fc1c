"""Unit tests of the worker handlers with a fake Triton and a fake pool: model, kind, value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from services.workers.handlers import make_worker
from services.workers.settings import WorkerSettings
from tests.unit.workers.test_worker_parts import EVENT

REQUESTED = EVENT.model_copy(update={"type": "ride.requested", "telemetry": None})


@dataclass
class _Result:
    outputs: dict[str, Any]
    model_version: str


@dataclass
class FakeTriton:
    value: float
    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    async def infer(self, model: str, inputs: dict[str, Any], *, outputs: list[str]) -> _Result:
        assert inputs["features"].shape[0] == 1
        self.calls.append((model, outputs))
        return _Result({outputs[0]: np.array([[self.value]], dtype=np.float32)}, "3")


@dataclass
class FakePool:
    writes: list[tuple[Any, ...]] = field(default_factory=list)

    async def execute(self, _sql: str, *args: Any, **_options: Any) -> str:
        self.writes.append(args)
        return "INSERT 0 1"


@pytest.mark.parametrize(
    ("kind", "model", "output"),
    [("tip", "tip_amount", "tip_amount"), ("cost", "total_amount", "total_amount")],
)
@pytest.mark.parametrize(("predicted", "written"), [(4.25, 4.25), (-1.5, 0.0)])
async def test_amount_workers_write_their_model_amount(
    kind: str, model: str, output: str, predicted: float, written: float
) -> None:
    triton, pool = FakeTriton(predicted), FakePool()
    spec = make_worker(kind, triton=triton, pool=pool, settings=WorkerSettings())
    assert spec.subject == "rides.requested"
    assert await spec.handler(REQUESTED) is True
    assert triton.calls == [(model, [output])]
    ride, written_kind, written_model, version, value, seq, event_id = pool.writes[0]
    assert (ride, written_kind, written_model, version) == (EVENT.ride_id, kind, model, "3")
    assert (value, seq, event_id) == (written, EVENT.seq, EVENT.event_id)


async def test_models_come_from_the_settings() -> None:
    triton, pool = FakeTriton(2.0), FakePool()
    settings = WorkerSettings(tip_model="tip_v2", cost_model="cost_v2")
    for kind in ("tip", "cost"):
        await make_worker(kind, triton=triton, pool=pool, settings=settings).handler(REQUESTED)
    assert [call[0] for call in triton.calls] == ["tip_v2", "cost_v2"]
    assert [write[1] for write in pool.writes] == ["tip", "cost"]


async def test_duration_worker_on_a_requested_ride() -> None:
    triton, pool = FakeTriton(0.2), FakePool()
    spec = make_worker("dynamic-duration", triton=triton, pool=pool, settings=WorkerSettings())
    assert spec.subject == "rides.*"
    await spec.handler(REQUESTED)
    assert pool.writes[0][1:3] == ("duration", "ride_duration")
    assert pool.writes[0][4] == 1.0  # at least MIN_DURATION_MINUTES


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="surge"):
        make_worker("surge", triton=FakeTriton(0.0), pool=FakePool(), settings=WorkerSettings())
