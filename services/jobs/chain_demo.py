"""`modelfleet demo chain`: the call chain under its latency budget, told ride by ride.

The deployment-architectures document's app needs an answer in 2 s while its chain (location
~0.5 s, then sensor ~2 s, then the prediction) takes ~2.5 s. Against a running stack (the
location and sensor services with those delays), the demo posts rides to ``POST /v1/rides`` and
shows, for each:

1. the first answer and its time: within the budget, with the base duration and the sensor's
   reason when the chain did not fit (or the sensor-aware one when it did);
2. the sensor-aware duration arriving moments later over the ride's SSE stream
   (``GET /v1/rides/{id}/events``, ``event: result`` of kind ``sensor_duration``).

It succeeds when every first answer came within the budget and every ride's sensor-aware
duration arrived within ``timeout_s``.

    result = asyncio.run(run_chain_demo(url, say=print, rides=5))
    result.succeeded
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

BUDGET_S = 2.0
CLIENT_TIMEOUT_S = 30.0
#: (pickup zone, dropoff zone, miles): Midtown, the airports, Brooklyn
TRIPS = ((161, 236, 2.4), (132, 161, 17.5), (138, 230, 9.8), (65, 97, 1.6), (48, 143, 1.9))


@dataclass
class RideStory:
    """One ride: its first answer and when the sensor-aware duration arrived."""

    ride_id: str
    first_s: float
    first: dict[str, Any]
    sensor_s: float | None = None
    sensor_minutes: float | None = None


@dataclass
class ChainDemoResult:
    rides: list[RideStory] = field(default_factory=list)
    problem: str | None = None
    budget_s: float = BUDGET_S

    @property
    def in_budget(self) -> int:
        return sum(1 for r in self.rides if r.first_s <= self.budget_s)

    @property
    def followed(self) -> int:
        return sum(1 for r in self.rides if r.sensor_minutes is not None)

    @property
    def succeeded(self) -> bool:
        n = len(self.rides)
        return self.problem is None and n > 0 and self.in_budget == n and self.followed == n


def _ride(i: int) -> dict[str, Any]:
    pickup, dropoff, miles = TRIPS[i % len(TRIPS)]
    return {
        "pickup_datetime": "2024-03-14T08:30:00",
        "passenger_count": 1,
        "payment_type": 1,
        "user_id": f"demo-chain-{i}",
        "pickup_location_id": pickup,
        "dropoff_location_id": dropoff,
        "trip_distance": miles,
    }


async def _sensor_duration(
    client: httpx.AsyncClient, url: str, ride_id: str, *, timeout_s: float
) -> float | None:
    """The value of the ride's first ``sensor_duration`` result on its SSE stream (None: none
    within ``timeout_s``)."""
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("GET", f"{url}/v1/rides/{ride_id}/events") as stream:
                event = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line.partition(":")[2].strip()
                    elif line.startswith("data:") and event == "result":
                        result = orjson.loads(line.partition(":")[2])
                        if result.get("kind") == "sensor_duration":
                            return float(result["value"])
    except TimeoutError:
        return None
    return None


def _describe(story: RideStory) -> str:
    initial = story.first["initial_duration"]
    sensor = story.first["sensor"]
    model = (initial.get("model") or {}).get("name", "-")
    aware = "sensor-aware" if initial.get("uses_sensor") else f"base (sensor: {sensor['reason']})"
    return (
        f"first answer in {story.first_s:.2f} s: {initial.get('duration_minutes')} min, {aware}, "
        f"model {model}"
    )


async def run_chain_demo(
    url: str,
    *,
    say: Callable[[str], None],
    rides: int = 5,
    interval_s: float = 0.5,
    timeout_s: float = 30.0,
) -> ChainDemoResult:
    """Post ``rides`` rides ``interval_s`` apart; follow each one's SSE stream."""
    result = ChainDemoResult()
    say(
        f"chain demo against {url}: {rides} rides, budget {BUDGET_S:g} s; the chain "
        "location -> sensor -> sensor-aware duration"
    )
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
        try:
            ready = await client.get(f"{url}/readyz")
        except httpx.HTTPError as exc:
            result.problem = f"the backend at {url} does not answer ({exc!r}): start the stack"
            return result
        if ready.status_code != 200:
            result.problem = f"the backend at {url} is not ready ({ready.status_code})"
            return result

        async def one(i: int) -> None:
            began = time.monotonic()
            response = await client.post(f"{url}/v1/rides", json=_ride(i))
            elapsed = time.monotonic() - began
            if response.status_code != 201:
                say(f"ride {i + 1}: answered {response.status_code}: {response.text[:200]}")
                return
            body = response.json()
            story = RideStory(ride_id=body["ride_id"], first_s=elapsed, first=body)
            result.rides.append(story)
            say(f"ride {i + 1}: {_describe(story)}")
            minutes = await _sensor_duration(client, url, story.ride_id, timeout_s=timeout_s)
            if minutes is None:
                say(f"ride {i + 1}: no sensor-aware duration within {timeout_s:g} s")
                return
            story.sensor_s = time.monotonic() - began
            story.sensor_minutes = minutes
            say(
                f"ride {i + 1}: sensor-aware duration {minutes} min over SSE, "
                f"{story.sensor_s:.2f} s after the request"
            )

        tasks = []
        for i in range(rides):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(interval_s)
        await asyncio.gather(*tasks)
    n = len(result.rides)
    say(
        f"first answers within {BUDGET_S:g} s: {result.in_budget}/{n}; "
        f"sensor-aware durations arrived: {result.followed}/{n}"
    )
    return result
