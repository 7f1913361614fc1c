"""Classifier calibration: ECE, temperature scaling, the temperature in the ONNX graph."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import numpy_helper

from models.classifier.calibration import (
    IsotonicCalibrator,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from models.classifier.data import generate_catalogue
from models.classifier.train import (
    SoftmaxModel,
    TrainedClassifier,
    export_onnx,
    onnx_probabilities,
    train_classifier,
)
from services.domain.catalog.features import N_FEATURES


@pytest.fixture(scope="module")
def trained() -> TrainedClassifier:
    return train_classifier(generate_catalogue(1_200, seed=3), seed=3)


def test_ece_by_hand() -> None:
    # Two rows in bin (0.6, 0.667]: confidence 0.65 each, one right -> |0.5 - 0.65| * 2/4;
    # two rows in bin (0.933, 1]: confidence 1.0, both right -> 0.
    p = np.array([[0.65, 0.35], [0.35, 0.65], [1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 0, 0, 1])
    assert expected_calibration_error(p, y) == pytest.approx(0.15 * 2 / 4)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0
    assert expected_calibration_error(np.empty((0, 3)), np.empty(0)) == 0.0


def _synthetic_logits(
    n: int, k: int, sharpness: float, seed: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Labels drawn from softmax(z); ``sharpness`` x z are the model's (over-confident) logits."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    p = softmax(z)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z * sharpness, y


def test_temperature_undoes_overconfidence() -> None:
    logits, y = _synthetic_logits(6_000, 5, sharpness=3.0, seed=1)
    t = fit_temperature(logits[:3_000], y[:3_000])
    assert t == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(softmax(logits[3_000:]), y[3_000:])
    after = expected_calibration_error(softmax(logits[3_000:], t), y[3_000:])
    assert before > 0.15 and after < 0.05 and after < before / 5
    # The argmax (so F1 and accuracy) is unchanged.
    assert (softmax(logits, t).argmax(1) == logits.argmax(1)).all()


def test_isotonic_calibrates_too() -> None:
    logits, y = _synthetic_logits(6_000, 5, sharpness=3.0, seed=2)
    calibrator = IsotonicCalibrator.fit(softmax(logits[:3_000]), y[:3_000])
    out = calibrator.transform(softmax(logits[3_000:]))
    assert np.allclose(out.sum(axis=1), 1.0)
    assert expected_calibration_error(out, y[3_000:]) < 0.05


def test_onnx_output_is_softmax_of_logits_over_t() -> None:
    rng = np.random.default_rng(0)
    model = SoftmaxModel(
        weights=rng.normal(0, 0.5, size=(N_FEATURES, 4)),
        bias=rng.normal(0, 0.5, size=4),
        temperature=2.5,
    )
    x = rng.normal(0, 1, size=(20, N_FEATURES)).astype(np.float32)
    onnx_bytes = export_onnx(
        model, mean=np.zeros(N_FEATURES, np.float32), scale=np.ones(N_FEATURES, np.float32)
    )
    got = onnx_probabilities(onnx_bytes, x)
    assert np.allclose(got, softmax(model.logits(x), 2.5), atol=1e-5)
    assert not np.allclose(got, softmax(model.logits(x)), atol=1e-3)  # T is really applied
    assert np.allclose(model.predict_proba(x), got, atol=1e-5)


def test_trained_model_serves_calibrated_probabilities(trained: TrainedClassifier) -> None:
    calibration = trained.card["calibration"]
    t = calibration["temperature"]
    assert calibration["method"] == "temperature" and t != pytest.approx(1.0, abs=0.02)
    assert trained.model.temperature == pytest.approx(t, abs=1e-6)
    graph = onnx.load_from_string(trained.onnx_bytes).graph
    assert [n.op_type for n in graph.node] == ["MatMul", "Add", "Div", "Softmax"]
    initial = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    assert float(initial["temperature"]) == pytest.approx(t, abs=1e-6)


def test_card_records_ece_before_and_after(trained: TrainedClassifier) -> None:
    calibration = trained.card["calibration"]
    assert calibration["ece_bins"] == 15
    assert 0.0 <= calibration["ece_after"] < calibration["ece_before"] <= 1.0
    assert trained.card["metrics"]["ece"] == calibration["ece_after"]
    assert trained.card["data"]["rows_calibration"] > 0
    assert (
        trained.card["data"]["rows_train"]
        + trained.card["data"]["rows_calibration"]
        + trained.card["data"]["rows_test"]
        == trained.card["data"]["rows"]
    )
    # The card's "after" is the ECE of the served probabilities on the held-out products.
    assert trained.test_features is not None and trained.test_labels is not None
    served = onnx_probabilities(trained.onnx_bytes, trained.test_features)
    assert expected_calibration_error(served, trained.test_labels) == pytest.approx(
        calibration["ece_after"], abs=1e-3
    )
