"""Poison events published straight to JetStream: each reaches rides.dead.<worker> (a malformed
one at once, one whose ride does not exist after WORKERS_MAX_DELIVERIES deliveries), the
dead-letter metric counts it, and the worker moves on to the events behind it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import nats
import orjson
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families

from services.common.jetstream import DEAD_LETTER_PREFIX, RIDE_REQUESTED
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

DEAD_WITHIN_S = 45.0


@pytest_asyncio.fixture
async def nc(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[NatsClient]:
    client = await nats.connect(stack_settings.nats_url)
    yield client
    await client.close()


async def dead_letters(stack_settings: StackSettings) -> float:
    """modelfleet_worker_dead_letters_total of the tip worker, all reasons."""
    url = f"http://{stack_settings.host}:{stack_settings.worker_tip_port}/metrics"
    async with httpx.AsyncClient() as client:
        text = (await client.get(url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "modelfleet_worker_dead_letters"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("worker") == "tip"
    )


def orphan_event() -> bytes:
    """A well-formed rides.requested event of a ride that does not exist (no rides row)."""
    return orjson.dumps(
        {
            "type": "ride.requested",
            "event_id": str(uuid.uuid4()),
            "ride_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            "ride": {
                "pickup_datetime": "2024-03-14T08:30:00",
                "pickup_location_id": 161,
                "dropoff_location_id": 236,
                "trip_distance": 2.4,
                "passenger_count": 1,
                "payment_type": 1,
            },
            "initial_duration_minutes": 12.0,
            "seq": 1,
        }
    )


async def test_poison_events_are_dead_lettered_and_the_worker_moves_on(
    nc: NatsClient, backend: httpx.AsyncClient, stack_settings: StackSettings
) -> None:
    dead: list[Msg] = []
    both = asyncio.Event()

    async def collect(msg: Msg) -> None:
        dead.append(msg)
        if len(dead) >= 2:
            both.set()

    sub = await nc.subscribe(f"{DEAD_LETTER_PREFIX}tip", cb=collect)
    before = await dead_letters(stack_settings)
    js = nc.jetstream()
    malformed = b'{"type": "ride.requested", "ride_id": "not-a-uuid"}'
    orphan = orphan_event()
    for data in (malformed, orphan):
        await js.publish(RIDE_REQUESTED, data, headers={"Nats-Msg-Id": str(uuid.uuid4())})
    # A good ride behind the poison: processed while the orphan is still being retried.
    ride = {
        "user_id": "it-dead-letter",
        "pickup_datetime": "2024-03-14T08:30:00",
        "pickup_location_id": 161,
        "dropoff_location_id": 236,
        "trip_distance": 3.1,
    }
    ride_id = (await backend.post("/v1/rides", json=ride)).json()["ride_id"]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(both.wait(), DEAD_WITHIN_S)
    await sub.unsubscribe()

    assert [m.data for m in dead] == [malformed, orphan]
    headers = [m.headers or {} for m in dead]
    assert headers[0]["Modelfleet-Reason"] == "invalid-event"
    assert headers[0]["Modelfleet-Deliveries"] == "1"  # does not parse: at once
    assert headers[1]["Modelfleet-Deliveries"] == str(WorkerSettings().max_deliveries)
    assert headers[1]["Modelfleet-Subject"] == RIDE_REQUESTED
    assert await dead_letters(stack_settings) == before + 2

    # A new connection: the one of the POST may have idled past the server's keep-alive.
    async with httpx.AsyncClient(base_url=backend.base_url, timeout=10.0) as fresh:
        body = (await fresh.get(f"/v1/rides/{ride_id}")).json()
    assert "tip" in {r["kind"] for r in body["results"]}  # did not wait behind the poison
