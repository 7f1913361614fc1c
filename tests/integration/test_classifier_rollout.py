"""Retraining the classifier on the real stack: the quality gate, then a new Triton version
loaded through the model-control API while requests keep flowing (zero failures), recorded in
the model registry table.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from models.classifier.data import generate_catalogue
from services.jobs.classifier_retrain import RetrainSettings, run_retrain
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def client(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://{stack_settings.host}:{stack_settings.classifier_port}"
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http_client:
        yield http_client


def _settings(stack_settings: StackSettings, **overrides: object) -> RetrainSettings:
    return RetrainSettings(
        database_url=stack_settings.database_url,
        triton_grpc_url=stack_settings.triton_grpc_url,
        log_json=False,
        **overrides,  # type: ignore[arg-type]
    )


def _versions(repo: Path) -> list[int]:
    return sorted(int(p.name) for p in (repo / "classifier").iterdir() if p.name.isdigit())


async def _registry(stack_settings: StackSettings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        return list(await conn.fetch("select * from classifier_model_versions order by created_at"))
    finally:
        await conn.close()


async def test_a_candidate_below_the_gate_is_rejected_and_writes_no_version(
    stack: Stack, stack_settings: StackSettings
) -> None:
    repo = stack_settings.paths.model_repository
    before = _versions(repo)
    report = await run_retrain(
        settings=_settings(stack_settings, rows=600, min_gain=1.0), repo_dir=repo
    )
    assert report.status == "rejected" and report.version is None
    assert report.outcome.serving_macro_f1 is not None
    assert _versions(repo) == before
    rows = await _registry(stack_settings)
    assert rows[-1]["status"] == "rejected" and rows[-1]["model_version"] is None


async def test_retraining_loads_a_new_version_without_a_failed_request(
    client: httpx.AsyncClient, stack_settings: StackSettings
) -> None:
    repo = stack_settings.paths.model_repository
    old = _versions(repo)[-1]
    products = generate_catalogue(8, seed=555)
    bodies = [
        {
            "title": row["title"],
            "description": row["description"],
            **(
                {"image": base64.b64encode(row["image_bytes"]).decode()}
                if isinstance(row["image_bytes"], bytes)
                else {}
            ),
        }
        for _, row in products.iterrows()
    ]
    # Some feedback, so the candidate also learns from labelled predictions.
    for body in bodies[:4]:
        answer = (await client.post("/v1/classify", json=body)).json()
        await client.post(
            "/v1/feedback",
            json={"prediction_id": answer["prediction_id"], "true_category": answer["category"]},
        )

    statuses: list[int] = []
    versions: list[str] = []
    stop = asyncio.Event()

    async def load(worker: int) -> None:
        i = worker
        while not stop.is_set():
            response = await client.post("/v1/classify", json=bodies[i % len(bodies)])
            statuses.append(response.status_code)
            if response.status_code == 200:
                versions.append(response.json()["model"]["version"])
            i += 1

    workers = [asyncio.create_task(load(w)) for w in range(4)]
    try:
        # the gate is open (its F1 and ECE rules are unit-tested): this is about the switch
        report = await run_retrain(
            settings=_settings(
                stack_settings, rows=1_500, seed=77, min_gain=-1.0, max_ece_increase=1.0
            ),
            repo_dir=repo,
        )
        await asyncio.sleep(0.5)  # and some more requests on the new version
    finally:
        stop.set()
        await asyncio.gather(*workers)

    assert report.status == "serving" and report.version == old + 1
    assert report.outcome.data_window["feedback_rows"] >= 4
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {set(statuses)}"
    assert versions[0] == str(old) and versions[-1] == str(old + 1)
    models = (await client.get("/v1/models")).json()["models"]
    (served,) = [m for m in models if m["version"] == str(old + 1)]
    assert served["state"] == "READY" and served["card"]["data"]["window"]["seed"] == 77
    rows = {r["model_version"]: r["status"] for r in await _registry(stack_settings)}
    assert rows[str(old + 1)] == "serving"
    answer = (await client.post("/v1/classify", json=bodies[0])).json()
    feedback = await client.post(
        "/v1/feedback",
        json={"prediction_id": answer["prediction_id"], "true_category": answer["category"]},
    )
    assert feedback.status_code == 200 and feedback.json()["model"]["version"] == str(old + 1)
    metrics = (await client.get("/metrics")).text
    assert (
        f'modelfleet_classifier_rolling_macro_f1{{model="classifier",version="{old + 1}"}}'
        in metrics
    )
    # the retired version's gauges are gone, so its old F1 cannot keep an alert firing
    assert (
        f'modelfleet_classifier_rolling_macro_f1{{model="classifier",version="{old}"}}'
        not in metrics
    )
