"""Estimated quality (CBPE): running sums equal a recomputation, the labelled share, the gauges.

A reference implementation recomputes the expected confusion matrix of a window from scratch;
the service's window, which only adds and subtracts, must agree with it after every prediction,
evictions included. On calibrated predictions (labels drawn from the probabilities) the estimate
is close to the realised F1 and accuracy. The routes record every stored prediction and label.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import asyncpg
import httpx
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sklearn.metrics import accuracy_score, f1_score

from services.classifier import estimated_quality
from services.classifier.api import PREDICTION_COLUMNS
from services.classifier.app import create_app
from services.classifier.estimated_quality import Estimates, VersionWindow
from services.classifier.predictor import CategoryPredictor
from services.classifier.state import ClassifierState
from services.classifier.triggers import Trigger
from services.common.app import ServiceApp
from services.common.buffered_writer import BufferedCopyWriter
from services.common.triton import TritonClient
from tests.unit.classifier.test_api import CLASSES, FakePool, FakeTriton, settings

FloatArray = npt.NDArray[np.float64]


def reference(probabilities: Sequence[FloatArray]) -> tuple[float, float]:
    """CBPE macro-F1 and accuracy of a window, recomputed from every row."""
    p = np.array(probabilities)
    predicted = p.argmax(axis=1)
    onehot = np.eye(p.shape[1])[predicted]
    tp = (onehot * p).sum(axis=0)
    fp = (onehot * (1 - p)).sum(axis=0)
    fn = ((1 - onehot) * p).sum(axis=0)
    f1 = 2 * tp / (2 * tp + fp + fn)
    return float(f1.mean()), float(tp.sum() / len(p))


def _probabilities(n: int, k: int, seed: int, sharpness: float = 2.0) -> FloatArray:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, sharpness, size=(n, k))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def test_running_sums_equal_a_recomputation_of_the_window() -> None:
    p = _probabilities(700, 6, seed=1)
    window = VersionWindow(classes=6, size=50)
    for i, row in enumerate(p):
        window.add(i, row)
        if i % 37 == 0 or i >= 690:
            f1, accuracy = reference(list(p[max(0, i - 49) : i + 1]))
            assert window.macro_f1() == pytest.approx(f1, abs=1e-9)
            assert window.accuracy() == pytest.approx(accuracy, abs=1e-9)
            assert len(window) == min(i + 1, 50)


def test_by_hand() -> None:
    window = VersionWindow(classes=2, size=10)
    window.add("a", [0.8, 0.2])  # predicted 0: TP0 .8, FP0 .2, FN1 .2
    window.add("b", [0.4, 0.6])  # predicted 1: TP1 .6, FP1 .4, FN0 .4
    assert window.accuracy() == pytest.approx(0.7)
    f1_0 = 1.6 / (1.6 + 0.2 + 0.4)
    f1_1 = 1.2 / (1.2 + 0.4 + 0.2)
    assert window.macro_f1() == pytest.approx((f1_0 + f1_1) / 2)
    assert VersionWindow(classes=2, size=1).macro_f1() == 0.0
    with pytest.raises(ValueError, match="3 probabilities"):
        window.add("c", [0.2, 0.3, 0.5])


def test_labelled_share_counts_each_label_once_and_leaves_with_the_prediction() -> None:
    window = VersionWindow(classes=2, size=3)
    for key in "abc":
        window.add(key, [0.9, 0.1])
    assert window.mark_labelled("a") and not window.mark_labelled("a")
    assert not window.mark_labelled("zzz")
    assert window.mark_labelled("c")
    assert window.labelled_share() == pytest.approx(2 / 3)
    window.add("d", [0.9, 0.1])  # "a" leaves the window, its label with it
    assert window.labelled_share() == pytest.approx(1 / 3) and len(window) == 3
    window.add("d", [0.1, 0.9])  # the same prediction twice counts once
    assert len(window) == 3 and window.accuracy() == pytest.approx(0.9)


def test_estimate_matches_the_realised_quality_of_calibrated_predictions() -> None:
    p = _probabilities(5_000, 8, seed=2, sharpness=1.5)
    rng = np.random.default_rng(3)
    truth = np.array([rng.choice(8, p=row) for row in p])
    window = VersionWindow(classes=8, size=5_000)
    for i, row in enumerate(p):
        window.add(i, row)
    predicted = p.argmax(axis=1)
    assert window.accuracy() == pytest.approx(accuracy_score(truth, predicted), abs=0.02)
    assert window.macro_f1() == pytest.approx(f1_score(truth, predicted, average="macro"), abs=0.02)


def _sample(name: str, version: str = "7") -> float | None:
    return REGISTRY.get_sample_value(name, {"model": "m", "version": version})


def test_a_new_version_replaces_the_window_and_its_gauges() -> None:
    estimates = Estimates()
    estimates.record("m", "7", "a", [0.25, 0.75], window=10, ece=0.031)
    assert _sample("modelfleet_classifier_estimated_accuracy") == pytest.approx(0.75)
    assert _sample("modelfleet_classifier_estimate_window_predictions") == 1
    assert _sample("modelfleet_classifier_model_ece") == pytest.approx(0.031)
    estimates.labelled("m", "7", "a")
    assert _sample("modelfleet_classifier_estimate_window_labelled_ratio") == 1.0
    estimates.record("m", "8", "b", [0.6, 0.4], window=10)
    assert estimates.window("m", "7") is None
    assert _sample("modelfleet_classifier_estimated_accuracy") is None
    assert _sample("modelfleet_classifier_model_ece") is None
    assert _sample("modelfleet_classifier_estimated_accuracy", "8") == pytest.approx(0.6)
    estimates.forget("m", "8")


CALIBRATED_CARD = {"version": 2, "classes": CLASSES, "calibration": {"ece_after": 0.0213}}


class CalibratedTriton(FakeTriton):
    async def model_config(self, model: str, *, timeout_s: float = 2.0) -> dict[str, Any]:
        return {"parameters": {"model_card.v2": {"string_value": json.dumps(CALIBRATED_CARD)}}}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    triton = cast(TritonClient, CalibratedTriton())
    app.service_state = ClassifierState(
        settings=settings,
        pool=cast(asyncpg.Pool, FakePool()),
        triton=triton,
        predictor=CategoryPredictor(triton, model="classifier"),
        predictions=BufferedCopyWriter(
            cast(asyncpg.Pool, FakePool()),
            table="classifier_predictions",
            columns=PREDICTION_COLUMNS,
        ),
        retraining_trigger=cast(Trigger, None),
    )
    estimated_quality.ESTIMATES.forget("classifier", "2")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
        yield http_client
    estimated_quality.ESTIMATES.forget("classifier", "2")


async def test_routes_record_predictions_and_labels(client: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(4):
        response = await client.post("/v1/classify", json={"title": "kettle", "top_k": 1})
        assert response.status_code == 200, response.text
        ids.append(response.json()["prediction_id"])
    labels = {"model": "classifier", "version": "2"}

    def value(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    # The fake answers [0.2, 0.7, 0.1] every time: every cell is known by hand.
    assert value("modelfleet_classifier_estimate_window_predictions") == 4
    assert value("modelfleet_classifier_estimated_accuracy") == pytest.approx(0.7, abs=1e-6)
    f1_kettles = 2 * 2.8 / (2 * 2.8 + 1.2 + 0.0)
    f1_others = [0.0, 0.0]  # never predicted: TP 0
    assert value("modelfleet_classifier_estimated_macro_f1") == pytest.approx(
        (f1_kettles + sum(f1_others)) / 3, abs=1e-6
    )
    assert value("modelfleet_classifier_model_ece") == pytest.approx(0.0213)
    assert value("modelfleet_classifier_estimate_window_labelled_ratio") == 0.0
    response = await client.post(
        "/v1/feedback", json={"prediction_id": ids[1], "true_category": "Home > Kettles"}
    )
    assert response.status_code == 200, response.text
    await client.post(
        "/v1/feedback", json={"prediction_id": ids[1], "true_category": "Shoes > Running"}
    )
    await client.post(
        "/v1/feedback", json={"prediction_id": str(uuid.uuid4()), "true_category": CLASSES[0]}
    )
    assert value("modelfleet_classifier_estimate_window_labelled_ratio") == pytest.approx(0.25)


def test_a_window_of_another_class_count_is_replaced_not_an_error() -> None:
    # a rebuilt model repository serves "version 1" again, with other classes
    estimates = Estimates()
    estimates.record("m-rebuilt", "1", "a", np.full(22, 1 / 22), window=10)
    estimates.record("m-rebuilt", "1", "b", np.array([0.7, 0.2, 0.1]), window=10)
    window = estimates.window("m-rebuilt", "1")
    assert window is not None and window.classes == 3 and len(window) == 1
    estimates.forget("m-rebuilt", "1")
