"""The classifier's routes on its typed state: response bodies, the declared body limit, models.

The app runs without its lifespan: the test builds the :class:`ClassifierState` from fakes of
Triton and Postgres (no server), so what is checked is the HTTP layer and the handlers.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import httpx
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute

from services.classifier import api
from services.classifier.api import PREDICTION_COLUMNS, _max_body, classify_body_limit
from services.classifier.app import create_app
from services.classifier.predictor import CategoryPredictor
from services.classifier.settings import ClassifierSettings
from services.classifier.state import ClassifierState
from services.classifier.triggers import Trigger
from services.common.app import ServiceApp
from services.common.buffered_writer import BufferedCopyWriter
from services.common.security.guard import policy_of_route
from services.common.triton import InferOutput, ModelVersionState, TritonClient

CLASSES = ["Audio > Headphones", "Home > Kettles", "Shoes > Running"]
CARD = {"version": 2, "classes": CLASSES, "metrics": {"macro_f1": 0.9}}


class FakeTriton:
    """Two versions of ``classifier``; version 2 answers and has a card."""

    async def repository_index(self, *, timeout_s: float = 2.0) -> list[ModelVersionState]:
        return [
            ModelVersionState("classifier", "2", "READY", ""),
            ModelVersionState("classifier", "1", "UNAVAILABLE", "unloaded"),
            ModelVersionState("other", "1", "READY", ""),
        ]

    async def model_config(self, model: str, *, timeout_s: float = 2.0) -> dict[str, Any]:
        return {"parameters": {"model_card.v2": {"string_value": json.dumps(CARD)}}}

    async def infer(
        self, model: str, inputs: Mapping[str, npt.NDArray[Any]], *, outputs: Sequence[str]
    ) -> InferOutput:
        probabilities = np.array([[0.2, 0.7, 0.1]], dtype=np.float32)
        return InferOutput({"probabilities": probabilities}, model_name=model, model_version="2")


class FakePool:
    """What the handlers ask Postgres, answered from memory."""

    def __init__(self) -> None:
        self.inserted: list[tuple[Any, ...]] = []
        #: Rows of classifier_retraining_runs.
        self.runs: list[dict[str, Any]] = []

    async def execute(self, query: str, *args: Any, **options: Any) -> str:
        self.inserted.append(args)
        return "INSERT 0 1"

    async def fetch(self, query: str, *args: Any, **options: Any) -> list[Any]:
        return self.runs if "classifier_retraining_runs" in query else []

    async def fetchrow(self, query: str, *args: Any, **options: Any) -> dict[str, Any] | None:
        if "classifier_retraining_runs" in query:
            return next((r for r in self.runs if r["run_id"] == args[0]), None)
        return {
            "model_name": "classifier",
            "model_version": "2",
            "category": "Home > Kettles",
            "created_at": datetime.now(UTC),
        }

    async def fetchval(self, query: str, *args: Any, **options: Any) -> bool:
        return True


settings = ClassifierSettings(log_json=False, max_image_bytes=1024, triton_model="classifier")


@pytest.fixture
def pool() -> FakePool:
    return FakePool()


@pytest_asyncio.fixture
async def client(pool: FakePool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    triton = cast(TritonClient, FakeTriton())
    app.service_state = ClassifierState(
        settings=settings,
        pool=cast(asyncpg.Pool, pool),
        triton=triton,
        predictor=CategoryPredictor(triton, model="classifier"),
        predictions=BufferedCopyWriter(
            cast(asyncpg.Pool, pool), table="classifier_predictions", columns=PREDICTION_COLUMNS
        ),
        retraining_trigger=cast(Trigger, None),
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
        yield http_client


async def test_classify_returns_the_classification(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/classify", json={"title": "kettle", "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"prediction_id", "category", "probability", "top_k", "model"}
    assert body["category"] == "Home > Kettles" and body["probability"] == 0.7
    assert [t["category"] for t in body["top_k"]] == ["Home > Kettles", "Audio > Headphones"]
    assert body["model"] == {"name": "classifier", "version": "2"}


def test_classify_declares_its_body_limit() -> None:
    (route,) = [r for r in api.router.routes if isinstance(r, APIRoute) and r.name == "classify"]
    policy = policy_of_route(route, settings)
    assert policy.scope == "read"
    assert policy.max_body_bytes == classify_body_limit(settings) == _max_body(settings)
    assert _max_body(settings) > settings.max_image_bytes * 4 // 3  # a base64 image fits


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    limit = classify_body_limit(settings)
    assert limit < settings.max_body_bytes  # the route's own limit, not the service's default
    padding = "x" * (limit + 1)
    for kwargs in (
        {"json": {"title": padding}},
        {"files": {"image": ("big.png", padding.encode(), "image/png")}},
    ):
        response = await client.post("/v1/classify", **kwargs)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("payload-too-large")
    under = await client.post("/v1/classify", json={"title": "x" * (limit - 20)})
    assert under.status_code == 422  # read whole: the title is over 10,000 characters


async def test_an_image_over_the_limit_is_413_inside_the_body_limit(
    client: httpx.AsyncClient,
) -> None:
    image = base64.b64encode(b"\x89PNG" + b"0" * settings.max_image_bytes).decode()
    response = await client.post("/v1/classify", json={"title": "x", "image": image})
    assert response.status_code == 413
    assert "image" in response.json()["detail"]


async def test_models_lists_the_versions_with_their_cards(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {
        "models": [
            {"name": "classifier", "version": "1", "state": "UNAVAILABLE", "card": None},
            {"name": "classifier", "version": "2", "state": "READY", "card": CARD},
        ]
    }


async def test_feedback_returns_the_label_and_the_model(client: httpx.AsyncClient) -> None:
    prediction_id = str(uuid.uuid4())
    response = await client.post(
        "/v1/feedback", json={"prediction_id": prediction_id, "true_category": "Shoes > Running"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "prediction_id": prediction_id,
        "true_category": "Shoes > Running",
        "correct": False,
        "model": {"name": "classifier", "version": "2"},
    }


def _run_row(**fields: Any) -> dict[str, Any]:
    return {
        "run_id": uuid.uuid4(),
        "model_name": "classifier",
        "status": "succeeded",
        "reason": "alert",
        "trigger": "subprocess",
        "alert": json.dumps({"labels": {"alertname": "ModelfleetClassifierF1Low"}}),
        "job_name": "4242",
        "serving_version": "1",
        "new_version": "2",
        "metrics": {"macro_f1": 0.91},
        "error": None,
        "created_at": datetime(2026, 12, 2, 13, 0, tzinfo=UTC),
        "started_at": datetime(2026, 12, 2, 13, 0, 5, tzinfo=UTC),
        "finished_at": None,
        **fields,
    }


async def test_retraining_lists_and_shows_runs(client: httpx.AsyncClient, pool: FakePool) -> None:
    assert (await client.get("/v1/retraining")).json() == {"active": None, "runs": []}
    row = _run_row()
    pool.runs.append(row)
    expected = {
        **row,
        "run_id": str(row["run_id"]),
        "alert": {"labels": {"alertname": "ModelfleetClassifierF1Low"}},
        "created_at": "2026-12-02T13:00:00+00:00",
        "started_at": "2026-12-02T13:00:05+00:00",
    }
    assert (await client.get("/v1/retraining")).json() == {"active": None, "runs": [expected]}
    one = await client.get(f"/v1/retraining/{row['run_id']}")
    assert one.status_code == 200 and one.json() == expected
    missing = await client.get(f"/v1/retraining/{uuid.uuid4()}")
    assert missing.status_code == 404


async def test_an_alert_that_asks_for_nothing_is_ignored(client: httpx.AsyncClient) -> None:
    notification = {
        "version": "4",
        "status": "resolved",
        "receiver": "classifier",
        "groupKey": "{}",
        "alerts": [
            {
                "status": "resolved",
                "labels": {"alertname": "ModelfleetClassifierF1Low", "model": "classifier"},
                "startsAt": "2026-11-23T19:00:00Z",
            }
        ],
    }
    response = await client.post("/v1/alerts", json=notification)
    assert response.status_code == 200, response.text
    assert "location" not in response.headers
    assert response.json() == {
        "action": "ignored",
        "alerts": {"received": 1, "matched": 0},
        "run": None,
    }
