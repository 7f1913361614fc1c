"""Model-level rollouts of ride-duration on the real stack: canary split, sticky A/B, shadow,
live pick-up of table changes, outcomes, and no failed request across switches.

A deliberately worse candidate (``models.ride_duration.variants``) is published as version 2 of
ride_duration and loaded into the running Triton beside version 1; the module puts everything
back (stable-only table on version 1, version 2 removed) when it is done.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from models.repository import remove_version
from models.ride_duration.variants import SPEC, publish_candidate
from services.common.app import ServiceApp
from services.common.triton import TritonClient
from services.ride_duration.app import create_app
from services.ride_duration.routing import store
from services.ride_duration.routing.table import RoutingSpec, Variant
from services.ride_duration.settings import RideDurationSettings
from services.ride_duration.state import RideDurationState
from services.stack.settings import StackSettings
from tests.asgi import asgi_client
from tests.integration.conftest import TEST_ROWS, TEST_SEED
from tests.integration.test_ride_duration import RIDE

pytestmark = pytest.mark.integration

MODEL = "ride_duration"
SERVICE = "ride-duration"


def v(name: str, role: str, weight: float, version: int | None) -> dict[str, Any]:
    return {"name": name, "model": MODEL, "model_version": version, "role": role, "weight": weight}


async def put_table(
    http: httpx.AsyncClient, variants: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    current = (await http.get("/v1/admin/routing")).json()
    body = {"expected_version": current["version"], "variants": variants, **extra}
    response = await http.put(
        "/v1/admin/routing", json=body, headers={"x-modelfleet-actor": "test"}
    )
    assert response.status_code == 200, response.text
    table: dict[str, Any] = response.json()
    return table


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_labels, value in samples(text, name)
        if all(sample_labels.get(k) == want for k, want in labels.items())
    )


async def predict_many(
    http: httpx.AsyncClient, bodies: list[dict[str, Any]], *, concurrency: int = 8
) -> list[httpx.Response]:
    queue = list(enumerate(bodies))
    out: list[httpx.Response | None] = [None] * len(bodies)

    async def worker() -> None:
        while queue:
            i, body = queue.pop()
            out[i] = await http.post("/v1/predict", json=body)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [r for r in out if r is not None]


async def load_model(stack_settings: StackSettings) -> None:
    triton = TritonClient(stack_settings.triton_grpc_url, timeout_s=60.0)
    try:
        await triton.load_model(MODEL)
    finally:
        await triton.close()


@pytest_asyncio.fixture(scope="module")
async def candidate(stack: Any, stack_settings: StackSettings) -> AsyncIterator[int]:
    """Version 2 of ride_duration (the worse candidate), loaded beside version 1."""
    repo = stack_settings.paths.model_repository
    result = await asyncio.to_thread(
        publish_candidate, repo, quality="worse", seed=TEST_SEED, rows=TEST_ROWS
    )
    await load_model(stack_settings)
    yield result.version
    await asyncio.to_thread(remove_version, repo, SPEC, result.version)
    await load_model(stack_settings)


@pytest_asyncio.fixture
async def routed(http: httpx.AsyncClient, candidate: int) -> AsyncIterator[int]:
    """Each test starts and ends with all traffic on stable version 1."""
    await put_table(http, [v("stable", "stable", 1.0, 1)])
    yield candidate
    await put_table(http, [v("stable", "stable", 1.0, 1)], comment="test reset")


async def test_versions_predict_differently(http: httpx.AsyncClient, routed: int) -> None:
    await put_table(
        http, [v("stable", "stable", 0.0, 1), v("a", "a", 0.5, 1), v("b", "b", 0.5, routed)]
    )
    answers: dict[str, float] = {}
    for i in range(40):
        body = (await http.post("/v1/predict", json={**RIDE, "user_id": f"u{i}"})).json()
        answers[body["model"]["variant"]] = body["duration_minutes"]
        assert body["model"]["version"] == ("1" if body["model"]["variant"] == "a" else str(routed))
    assert set(answers) == {"a", "b"}
    assert abs(answers["a"] - answers["b"]) > 0.5, answers


async def test_table_rules_conflicts_and_history(http: httpx.AsyncClient, routed: int) -> None:
    current = (await http.get("/v1/admin/routing")).json()
    bad = await http.put(
        "/v1/admin/routing",
        json={
            "expected_version": current["version"],
            "variants": [v("stable", "stable", 0.7, 1), v("canary", "canary", 0.2, 99)],
        },
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in bad.json()["errors"]}
    assert fields == {"variants", "variants.1.model_version"}
    stale = await http.put(
        "/v1/admin/routing",
        json={"expected_version": current["version"] - 1, "variants": [v("s", "stable", 1.0, 1)]},
    )
    assert stale.status_code == 409
    assert stale.json()["current_version"] == current["version"]
    assert (await http.get("/v1/admin/routing")).json()["version"] == current["version"]
    written = await put_table(
        http, [v("stable", "stable", 0.9, 1), v("canary", "canary", 0.1, routed)], comment="c10"
    )
    assert written["version"] == current["version"] + 1
    assert written["updated_by"].startswith("test (")  # the anonymous caller's name + address
    history = (await http.get("/v1/admin/routing/history", params={"limit": 2})).json()["tables"]
    assert [t["version"] for t in history] == [written["version"], current["version"]]
    assert history[0]["comment"] == "c10"


async def test_canary_gets_its_share_of_1000_requests(http: httpx.AsyncClient, routed: int) -> None:
    await put_table(http, [v("stable", "stable", 0.8, 1), v("canary", "canary", 0.2, routed)])
    responses = await predict_many(http, [RIDE] * 1000)
    assert [r.status_code for r in responses] == [200] * 1000
    variants = Counter(r.json()["model"]["variant"] for r in responses)
    sigma = math.sqrt(1000 * 0.2 * 0.8)  # 12.6 requests
    assert abs(variants["canary"] - 200) < 4 * sigma, variants
    versions = {r.json()["model"]["variant"]: r.json()["model"]["version"] for r in responses}
    assert versions == {"stable": "1", "canary": str(routed)}


async def test_ab_is_sticky_and_recorded_in_the_prediction_log(
    http: httpx.AsyncClient, routed: int, stack_settings: StackSettings
) -> None:
    await put_table(
        http, [v("stable", "stable", 0.0, 1), v("a", "a", 0.5, 1), v("b", "b", 0.5, routed)],
        salt=f"exp-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    users = [f"rider-{i}" for i in range(150)]
    seen: dict[str, set[str]] = {u: set() for u in users}
    ids: dict[str, tuple[str, str]] = {}
    for _ in range(3):
        responses = await predict_many(http, [{**RIDE, "user_id": u} for u in users])
        for user, response in zip(users, responses, strict=True):
            body = response.json()
            seen[user].add(body["model"]["variant"])
            ids[body["prediction_id"]] = (user, body["model"]["variant"])
    assert all(len(variants) == 1 for variants in seen.values()), "a user changed variant"
    split = Counter(next(iter(s)) for s in seen.values())
    assert set(split) == {"a", "b"} and abs(split["a"] - 75) < 4 * math.sqrt(150 * 0.25), split
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        deadline = time.monotonic() + 15  # the prediction log is written in the background
        while True:
            rows = await conn.fetch(
                "select prediction_id::text, user_id, variant from ride_duration_predictions "
                "where prediction_id = any($1::uuid[])",
                list(ids),
            )
            if len(rows) == len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    assert {r["prediction_id"]: (r["user_id"], r["variant"]) for r in rows} == ids


async def test_a_table_written_elsewhere_is_served_within_seconds(
    http: httpx.AsyncClient, routed: int, stack_settings: StackSettings
) -> None:
    """Another replica (or the controller) writes the table: this one hears the NOTIFY."""
    before = (await http.get("/metrics")).text
    pool = await asyncpg.create_pool(stack_settings.database_url, min_size=1, max_size=1)
    try:
        current = await store.current_version(pool, service=SERVICE)
        spec = RoutingSpec(
            expected_version=current,
            variants=[Variant.model_validate(v("canary", "stable", 1.0, routed))],
        )
        written_at = time.monotonic()
        await store.write_table(pool, service=SERVICE, spec=spec, updated_by="other-replica")
    finally:
        await pool.close()
    while time.monotonic() - written_at < 5.0:
        body = (await http.post("/v1/predict", json=RIDE)).json()
        if body["model"]["variant"] == "canary":
            break
    picked_up_s = time.monotonic() - written_at
    assert body["model"] == {"name": MODEL, "version": str(routed), "variant": "canary"}
    assert picked_up_s < 3.0, picked_up_s
    after = (await http.get("/metrics")).text
    heard = {  # the NOTIFY, unless the 5 s poll happened to come first
        source: total(after, "modelfleet_routing_reloads_total", service=SERVICE, source=source)
        - total(before, "modelfleet_routing_reloads_total", service=SERVICE, source=source)
        for source in ("notify", "poll")
    }
    assert sum(heard.values()) == 1, heard
    assert total(after, "modelfleet_routing_version", service=SERVICE) == current + 1


async def test_shadow_answers_unchanged_and_comparisons_counted(
    http: httpx.AsyncClient, routed: int
) -> None:
    baseline = [r.json()["duration_minutes"] for r in await predict_many(http, [RIDE] * 5)]
    before = (await http.get("/metrics")).text
    await put_table(http, [v("stable", "stable", 1.0, 1), v("shadow", "shadow", 1.0, routed)])
    responses = await predict_many(http, [RIDE] * 200)
    assert {r.json()["duration_minutes"] for r in responses} == set(baseline[:1])
    assert {r.json()["model"]["variant"] for r in responses} == {"stable"}
    labels = {"service": SERVICE, "variant": "shadow"}
    deadline = time.monotonic() + 10
    compared = 0.0
    while time.monotonic() < deadline:
        after = (await http.get("/metrics")).text
        compared = total(after, "modelfleet_shadow_comparisons_total", **labels) - total(
            before, "modelfleet_shadow_comparisons_total", **labels
        )
        if compared >= 200:
            break
        await asyncio.sleep(0.2)
    dropped = total(after, "modelfleet_shadow_dropped_total") - total(
        before, "modelfleet_shadow_dropped_total"
    )
    assert compared + dropped == 200 and compared > 0
    errors = total(after, "modelfleet_shadow_comparisons_total", **labels, outcome="error")
    assert errors == total(before, "modelfleet_shadow_comparisons_total", **labels, outcome="error")
    assert total(after, "modelfleet_shadow_abs_delta_count", **labels) >= compared
    # the worse model's answers differ from stable's: the deltas are recorded
    assert total(after, "modelfleet_shadow_abs_delta_sum", **labels) > total(
        before, "modelfleet_shadow_abs_delta_sum", **labels
    )


async def test_outcomes_give_per_variant_mae(http: httpx.AsyncClient, routed: int) -> None:
    # Variant names of this test alone: the per-variant window also holds the outcomes other
    # tests of the session posted (the rollout demo's "stable" and "canary").
    await put_table(
        http, [v("mae-stable", "stable", 0.5, 1), v("mae-canary", "canary", 0.5, routed)]
    )
    responses = await predict_many(http, [{**RIDE, "trip_distance": 3.1}] * 60)
    actual = 12.0
    errors: dict[tuple[str, str], list[float]] = {}
    for r in responses:
        body = r.json()
        key = (body["model"]["variant"], body["model"]["version"])
        errors.setdefault(key, []).append(abs(body["duration_minutes"] - actual))
    outcomes = [
        {"prediction_id": r.json()["prediction_id"], "actual_minutes": actual} for r in responses
    ]
    accepted = await http.post("/v1/outcomes", json={"outcomes": outcomes})
    assert accepted.status_code == 200 and accepted.json() == {"accepted": 60}
    deadline = time.monotonic() + 30  # the log is written in the background, gauges every 5 s
    while time.monotonic() < deadline:
        text = (await http.get("/metrics")).text
        got = {
            (labels["variant"], labels["model_version"]): (value, labels)
            for labels, value in samples(text, "modelfleet_variant_outcomes")
        }
        if all(got.get(key, (0, None))[0] >= len(errs) for key, errs in errors.items()):
            break
        await asyncio.sleep(0.3)
    mae = {
        (labels["variant"], labels["model_version"]): value
        for labels, value in samples(text, "modelfleet_variant_outcome_mae")
    }
    # the window holds exactly this test's outcomes for these variant names
    for key, errs in errors.items():
        assert mae[key] == pytest.approx(sum(errs) / len(errs), abs=0.01), (key, mae)


async def test_no_request_fails_across_switches(http: httpx.AsyncClient, routed: int) -> None:
    tables = [
        [v("stable", "stable", 0.95, 1), v("canary", "canary", 0.05, routed)],
        [v("stable", "stable", 0.5, 1), v("canary", "canary", 0.5, routed)],
        [v("stable", "stable", 1.0, 1), v("shadow", "shadow", 1.0, routed)],
        [v("stable", "stable", 0.0, 1), v("a", "a", 0.5, 1), v("b", "b", 0.5, routed)],
        [v("stable", "stable", 1.0, routed)],
        [v("stable", "stable", 1.0, 1)],
    ]
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()

    async def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            body = {**RIDE, "user_id": f"w{worker}-{i % 50}"}
            statuses[(await http.post("/v1/predict", json=body)).status_code] += 1
            i += 1

    workers = [asyncio.create_task(load(w)) for w in range(6)]
    try:
        for table in tables:
            await asyncio.sleep(0.4)
            await put_table(http, table)
        await asyncio.sleep(0.4)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert set(statuses) == {200} and statuses[200] > 100, statuses


async def test_saturated_shadow_queue_drops_with_a_metric_and_answers_stay_ok(
    stack_settings: StackSettings, routed: int
) -> None:
    """An in-process replica on the same Postgres and Triton, with a tiny shadow queue."""
    settings = RideDurationSettings(
        database_url=stack_settings.database_url,
        triton_grpc_url=stack_settings.triton_grpc_url,
        log_json=False,
        prediction_log=False,
        shadow_queue_size=2,
        shadow_concurrency=1,
    )
    app = create_app(settings)
    async with asgi_client(app) as client:
        await put_table(client, [v("stable", "stable", 1.0, 1), v("shadow", "shadow", 1.0, routed)])
        before = (await client.get("/metrics")).text
        responses = await predict_many(client, [RIDE] * 300, concurrency=32)
        after = (await client.get("/metrics")).text
        assert isinstance(app, ServiceApp)
        state = app.service_state
        assert isinstance(state, RideDurationState)
        await state.routing.shadow.drain()
        assert [r.status_code for r in responses] == [200] * 300
        dropped = total(after, "modelfleet_shadow_dropped_total", service=SERVICE) - total(
            before, "modelfleet_shadow_dropped_total", service=SERVICE
        )
        assert dropped > 0
        assert state.routing.shadow.depth == 0
