"""classifier over HTTP on the real stack: Triton serves the model, Postgres keeps predictions
and feedback, /metrics shows the rolling quality of the served version.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pandas as pd
import pytest
import pytest_asyncio
from PIL import Image

from models.classifier.data import generate_catalogue
from models.classifier.train import onnx_probabilities
from models.repository import BuildResult
from services.classifier.api import PREDICTION_COLUMNS
from services.classifier.app import create_app
from services.classifier.prediction_ids import new_prediction_id
from services.classifier.predictor import CategoryPredictor
from services.classifier.settings import ClassifierSettings
from services.classifier.state import ClassifierState
from services.common.app import ServiceApp
from services.common.buffered_writer import BufferedCopyWriter
from services.common.triton import TritonClient
from services.domain.catalog.features import feature_vector
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import service_settings

pytestmark = pytest.mark.integration

MAX_IMAGE_BYTES = 2 * 1024 * 1024  # CLASSIFIER_MAX_IMAGE_BYTES default


@pytest.fixture(scope="module")
def classifier_dir(stack: Stack, stack_settings: StackSettings, model_build: BuildResult) -> Path:
    model_dir = stack_settings.paths.model_repository / "classifier"
    assert model_dir.is_dir()
    return model_dir


@pytest.fixture(scope="module")
def card(classifier_dir: Path) -> dict[str, Any]:
    version = max(int(p.name) for p in classifier_dir.iterdir() if p.name.isdigit())
    loaded: dict[str, Any] = json.loads(
        (classifier_dir / str(version) / "model_card.json").read_text()
    )
    return loaded


@pytest.fixture(scope="module")
def products() -> pd.DataFrame:
    return generate_catalogue(12, seed=321, label_noise=0.0)


@pytest_asyncio.fixture(scope="module")
async def client(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://{stack_settings.host}:{stack_settings.classifier_port}"
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http_client:
        yield http_client


def _json_body(row: pd.Series, *, top_k: int = 3) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": row["title"],
        "description": row["description"],
        "top_k": top_k,
    }
    if isinstance(row["image_bytes"], bytes):
        body["image"] = base64.b64encode(row["image_bytes"]).decode()
    return body


async def _count(stack_settings: StackSettings, table: str) -> int:
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        return int(await conn.fetchval(f"select count(*) from {table}"))
    finally:
        await conn.close()


def _gauge(metrics: str, name: str, version: str) -> float | None:
    match = re.search(
        rf'^{name}{{model="classifier",version="{version}"}} (\S+)$', metrics, re.MULTILINE
    )
    return float(match.group(1)) if match else None


async def test_classify_matches_in_process_onnx(
    client: httpx.AsyncClient, products: pd.DataFrame, classifier_dir: Path, card: dict[str, Any]
) -> None:
    onnx_bytes = (classifier_dir / str(card["version"]) / "model.onnx").read_bytes()
    for _, row in products.iterrows():
        response = await client.post("/v1/classify", json=_json_body(row, top_k=5))
        assert response.status_code == 200, response.text
        body = response.json()
        x = feature_vector(
            title=row["title"].strip(),
            description=row["description"].strip(),
            image=row["image_bytes"] if isinstance(row["image_bytes"], bytes) else None,
        ).reshape(1, -1)
        want = onnx_probabilities(onnx_bytes, x)[0]
        order = np.argsort(-want, kind="stable")[:5]
        assert [t["category"] for t in body["top_k"]] == [card["classes"][i] for i in order]
        got = np.array([t["probability"] for t in body["top_k"]])
        assert np.allclose(got, want[order], atol=1e-5)
        assert body["category"] == body["top_k"][0]["category"]
        assert body["model"] == {"name": "classifier", "version": str(card["version"])}


async def test_multipart_upload_equals_json(
    client: httpx.AsyncClient, products: pd.DataFrame
) -> None:
    row = products[products["image_bytes"].notna()].iloc[0]
    by_json = (await client.post("/v1/classify", json=_json_body(row))).json()
    response = await client.post(
        "/v1/classify",
        data={"title": row["title"], "description": row["description"], "top_k": "3"},
        files={"image": ("p.jpg", row["image_bytes"], "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["top_k"] == by_json["top_k"]
    image_only = await client.post(
        "/v1/classify", files={"image": ("p.jpg", row["image_bytes"], "image/jpeg")}
    )
    assert image_only.status_code == 200 and len(image_only.json()["top_k"]) == 3


async def test_feedback_is_stored_and_moves_the_gauges(
    client: httpx.AsyncClient,
    products: pd.DataFrame,
    card: dict[str, Any],
    stack_settings: StackSettings,
) -> None:
    version = str(card["version"])
    before = (await client.get("/metrics")).text
    labels_before = _gauge(before, "modelfleet_classifier_rolling_window_labels", version) or 0.0
    accuracy_before = _gauge(before, "modelfleet_classifier_rolling_accuracy", version) or 0.0
    correct = 0
    sent = 0
    for i, (_, row) in enumerate(products.head(6).iterrows()):
        answer = (await client.post("/v1/classify", json=_json_body(row))).json()
        # every other label deliberately differs from the prediction
        truth = answer["category"] if i % 2 == 0 else answer["top_k"][1]["category"]
        correct += truth == answer["category"]
        sent += 1
        response = await client.post(
            "/v1/feedback",
            json={"prediction_id": answer["prediction_id"], "true_category": truth},
        )
        assert response.status_code == 200, response.text
        assert response.json()["correct"] == (truth == answer["category"])
    after = (await client.get("/metrics")).text
    labels_after = _gauge(after, "modelfleet_classifier_rolling_window_labels", version)
    accuracy_after = _gauge(after, "modelfleet_classifier_rolling_accuracy", version)
    f1_after = _gauge(after, "modelfleet_classifier_rolling_macro_f1", version)
    assert labels_after == labels_before + sent
    assert accuracy_after is not None and f1_after is not None and 0.0 < f1_after <= 1.0
    expected = (accuracy_before * labels_before + correct) / labels_after
    assert accuracy_after == pytest.approx(expected, abs=1e-9)
    assert "modelfleet_classifier_feedback_lag_seconds_count" in after
    assert "modelfleet_classifier_confidence_bucket" in after
    assert 'modelfleet_classifier_predictions_total{category="' in after
    assert await _count(stack_settings, "classifier_feedback") >= sent


async def test_repeated_feedback_replaces_the_label(
    client: httpx.AsyncClient, products: pd.DataFrame
) -> None:
    answer = (await client.post("/v1/classify", json=_json_body(products.iloc[0]))).json()
    for truth in (answer["top_k"][1]["category"], answer["category"]):
        response = await client.post(
            "/v1/feedback", json={"prediction_id": answer["prediction_id"], "true_category": truth}
        )
        assert response.status_code == 200
    assert response.json()["correct"] is True


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("https://")
    return body


def _png_of_size(n_bytes: int) -> bytes:
    noise = np.random.default_rng(0).integers(0, 255, size=(1100, 1100, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise, "RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    assert len(data) > n_bytes
    return data


async def test_bad_inputs_are_problems_and_write_nothing(
    client: httpx.AsyncClient, stack_settings: StackSettings, products: pd.DataFrame
) -> None:
    predictions = await _count(stack_settings, "classifier_predictions")
    feedback = await _count(stack_settings, "classifier_feedback")
    not_image = base64.b64encode(b"%PDF-1.4 this is not an image").decode()
    big = _png_of_size(MAX_IMAGE_BYTES)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"json": {"title": "  ", "description": ""}}, 422),
        ({"json": {}}, 422),
        ({"json": {"title": "x", "top_k": 0}}, 422),
        ({"json": {"title": "x", "colour": "red"}}, 422),
        ({"json": {"title": "x", "image": "@@@not base64@@@"}}, 422),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ({"json": {"title": "shoe", "image": not_image}}, 415),
        ({"files": {"image": ("x.pdf", b"%PDF-1.4 nope", "application/pdf")}}, 415),
        ({"content": b"title=shoe", "headers": {"content-type": "text/plain"}}, 415),
        ({"json": {"title": "shoe", "image": base64.b64encode(big).decode()}}, 413),
        ({"files": {"image": ("big.png", big, "image/png")}}, 413),
    ]
    for kwargs, status in cases:
        _assert_problem(await client.post("/v1/classify", **kwargs), status)
    answer = (await client.post("/v1/classify", json=_json_body(products.iloc[1]))).json()
    predictions += 1
    unknown = "00000000-0000-4000-8000-000000000000"
    body = _assert_problem(
        await client.post(
            "/v1/feedback", json={"prediction_id": unknown, "true_category": answer["category"]}
        ),
        404,
    )
    assert unknown in body["detail"]
    _assert_problem(
        await client.post(
            "/v1/feedback",
            json={"prediction_id": answer["prediction_id"], "true_category": "Garden > Gnomes"},
        ),
        422,
    )
    _assert_problem(
        await client.post("/v1/feedback", json={"prediction_id": "nope", "true_category": "x"}),
        422,
    )
    assert await _count(stack_settings, "classifier_predictions") == predictions
    assert await _count(stack_settings, "classifier_feedback") == feedback


async def test_models_lists_the_version_with_its_card(
    client: httpx.AsyncClient, card: dict[str, Any]
) -> None:
    response = await client.get("/v1/models")
    assert response.status_code == 200
    (served,) = [m for m in response.json()["models"] if m["version"] == str(card["version"])]
    assert served["state"] == "READY" and served["card"]["classes"] == card["classes"]
    assert served["card"]["metrics"]["macro_f1"] == card["metrics"]["macro_f1"]
    assert (await client.get("/readyz")).status_code == 200


class RecordingTrigger:
    """A retraining trigger that starts nothing and remembers the runs it was asked to start."""

    name = "test-recording"

    def __init__(self) -> None:
        self.started: list[str] = []

    async def start(self, run_id: str) -> str:
        self.started.append(str(run_id))
        return f"test-job-{len(self.started)}"

    async def failure(self, job_name: str) -> str | None:
        return None

    async def close(self) -> None:
        return None


async def test_a_notification_with_the_same_alert_twice_starts_one_run(
    stack_settings: StackSettings, db: asyncpg.Pool
) -> None:
    # the classifier in process on the stack's Postgres, under a model name of this test alone
    # (the run lock is per model), with a trigger that starts no job
    model = f"classifier-dup-{uuid.uuid4().hex[:8]}"
    settings = service_settings(ClassifierSettings, stack_settings, triton_model=model)
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    triton = TritonClient(stack_settings.triton_grpc_url, timeout_s=5.0)
    trigger = RecordingTrigger()
    app.service_state = ClassifierState(
        settings=settings,
        pool=db,
        triton=triton,
        predictor=CategoryPredictor(triton, model=model),
        predictions=BufferedCopyWriter(
            db, table="classifier_predictions", columns=PREDICTION_COLUMNS
        ),
        retraining_trigger=trigger,
    )
    alert = {
        "status": "firing",
        "labels": {"alertname": "ModelfleetClassifierF1Low", "model": model},
        "startsAt": "2026-11-23T19:00:00Z",
        "fingerprint": "0123456789abcdef",
    }
    notification = {"version": "4", "status": "firing", "groupKey": "{}", "alerts": [alert] * 2}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
            first = await http_client.post("/v1/alerts", json=notification)
            again = await http_client.post("/v1/alerts", json=notification)
        assert first.status_code == 202, first.text
        assert first.json()["action"] == "started"
        assert first.json()["alerts"] == {"received": 2, "matched": 2}
        assert again.status_code == 202, again.text
        assert again.json()["action"] == "already_running"
        assert again.json()["run"]["run_id"] == first.json()["run"]["run_id"]
        rows = await db.fetch(
            "select run_id from classifier_retraining_runs where model_name = $1", model
        )
        run_id = first.json()["run"]["run_id"]
        assert [str(r["run_id"]) for r in rows] == trigger.started == [run_id]
    finally:
        await db.execute("delete from classifier_retraining_runs where model_name = $1", model)
        await triton.close()


async def test_feedback_before_its_row_is_written_waits_for_it(
    stack_settings: StackSettings, db: asyncpg.Pool, products: pd.DataFrame
) -> None:
    # the classifier in process on the stack's Triton and Postgres, its rows written behind the
    # answers only every 1.5 s: the feedback arrives before its row and must wait, not 404
    settings = service_settings(
        ClassifierSettings,
        stack_settings,
        prediction_flush_interval_s=1.5,
        feedback_wait_s=3.0,
    )
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    triton = TritonClient(stack_settings.triton_grpc_url, timeout_s=5.0)
    predictions = BufferedCopyWriter(
        db, table="classifier_predictions", columns=PREDICTION_COLUMNS, flush_interval_s=1.5
    )
    predictions.start()
    app.service_state = ClassifierState(
        settings=settings,
        pool=db,
        triton=triton,
        predictor=CategoryPredictor(triton, model=settings.triton_model),
        predictions=predictions,
        retraining_trigger=RecordingTrigger(),
    )
    waits = "modelfleet_classifier_feedback_waits_total"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
            found_before = _counter(await http_client.get("/metrics"), waits, "found")
            answer = await http_client.post("/v1/classify", json=_json_body(products.iloc[2]))
            assert answer.status_code == 200, answer.text
            prediction_id = answer.json()["prediction_id"]
            assert uuid.UUID(prediction_id).version == 7
            assert predictions.pending >= 1  # not written yet
            began = time.monotonic()
            feedback = await http_client.post(
                "/v1/feedback",
                json={"prediction_id": prediction_id, "true_category": answer.json()["category"]},
            )
            waited = time.monotonic() - began
            assert feedback.status_code == 200, feedback.text
            assert feedback.json()["correct"] is True
            assert _counter(await http_client.get("/metrics"), waits, "found") == found_before + 1
            # a recent id that is never written: a 404 once the wait is over, not before
            never = str(new_prediction_id())
            began = time.monotonic()
            missing = await http_client.post(
                "/v1/feedback", json={"prediction_id": never, "true_category": "x"}
            )
            assert missing.status_code == 404, missing.text
            assert time.monotonic() - began >= 2.5
            # an id this service never makes (not a UUIDv7): a 404 at once
            began = time.monotonic()
            foreign = await http_client.post(
                "/v1/feedback", json={"prediction_id": str(uuid.uuid4()), "true_category": "x"}
            )
            assert foreign.status_code == 404
            assert time.monotonic() - began < 1.0
        assert 0.0 <= waited < 3.0
    finally:
        await predictions.close()
        await triton.close()


def _counter(response: httpx.Response, name: str, outcome: str) -> float:
    match = re.search(rf'^{name}{{outcome="{outcome}"}} (\S+)$', response.text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
