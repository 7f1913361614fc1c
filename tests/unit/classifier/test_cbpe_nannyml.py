"""Estimated quality (CBPE): the service's estimate equals NannyML's on the same predictions.

A classifier is trained with the project's own code (``models.classifier``: temperature-calibrated
softmax, exported to ONNX) and its ONNX graph, what Triton serves, scores three chunks of 500
products: fresh catalogue products, products of a different class mix (6 of the 22 categories
only) and the drifted feed (``generate_catalogue(drift=True)``). Each chunk goes one prediction at
a time through the service's window (``Estimates.record``, after 200 earlier predictions it
pushes out), and the same chunk is one chunk for ``nannyml.CBPE`` (0.13.1, multiclass, ``f1`` and
``accuracy``), fitted on 1,000 labelled reference predictions with calibration disabled
(``calibrator=NoopCalibrator()``: the service trusts the model's calibration; NannyML's default
re-calibrates with isotonic regression, docs/decisions.md 49). Macro-F1 and accuracy must agree
within 0.01 (measured: 4e-9).

NannyML is installed without its dependencies (requirements-nodeps.txt); its usage telemetry is
off (``NML_DISABLE_USAGE_LOGGING``, read at every call) and a sent event fails the test.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from models.classifier.data import generate_catalogue
from models.classifier.train import catalogue_features, onnx_probabilities, train_classifier
from services.classifier.estimated_quality import Estimates

FloatArray = npt.NDArray[np.float64]

#: The issue's bar is 0.01; the two agree to ~1e-8 (NannyML renormalises float32 rows), and at
#: 0.01 dropping one class from the average passes on two of the three chunks: 1e-4 catches it.
TOLERANCE = 1e-4
CHUNK = 500
EARLIER = 200
MODEL, VERSION = "cbpe-nannyml", "1"

# NannyML warns when data splits into fewer than 6 chunks; the comparison wants exactly one.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The resulting number of chunks is too low:UserWarning"
)


@dataclass(frozen=True)
class Served:
    """The model's classes and its served (calibrated) probabilities on each set of products."""

    classes: list[str]
    reference: FloatArray
    reference_labels: list[str]
    earlier: FloatArray
    chunks: dict[str, FloatArray]


@pytest.fixture(scope="module")
def served() -> Served:
    trained = train_classifier(generate_catalogue(1_200, seed=3), seed=3)
    classes = [str(c) for c in trained.card["classes"]]

    def probabilities(catalogue: pd.DataFrame) -> FloatArray:
        scores = onnx_probabilities(trained.onnx_bytes, catalogue_features(catalogue))
        return np.asarray(scores, dtype=np.float64)

    reference = generate_catalogue(1_000, seed=11)
    pool = generate_catalogue(2_200, seed=14)
    mix = pool[pool["category_path"].isin(classes[:6])].head(CHUNK)
    assert len(mix) == CHUNK
    return Served(
        classes=classes,
        reference=probabilities(reference),
        reference_labels=[str(c) for c in reference["category_path"]],
        earlier=probabilities(generate_catalogue(EARLIER, seed=10)),
        chunks={
            "catalogue": probabilities(generate_catalogue(CHUNK, seed=12)),
            "class mix": probabilities(mix),
            "drifted feed": probabilities(generate_catalogue(CHUNK, seed=13, drift=True)),
        },
    )


@pytest.fixture(scope="module")
def cbpe(served: Served) -> Iterator[Any]:
    """``nannyml.CBPE`` fitted on the reference, calibration disabled, imported and run with
    telemetry off; an event sent anyway (``segment.analytics.track``) fails the test."""
    sent: list[Any] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NML_DISABLE_USAGE_LOGGING", "1")  # before the import, and at every call
        confidence_based = importlib.import_module(
            "nannyml.performance_estimation.confidence_based"
        )
        calibration = importlib.import_module("nannyml.calibration")
        patch.setattr("segment.analytics.track", lambda *args, **kwargs: sent.append(args))
        estimator = confidence_based.CBPE(
            problem_type="classification_multiclass",
            y_pred_proba={c: f"p{i:02d}" for i, c in enumerate(served.classes)},
            y_pred="y_pred",
            y_true="y_true",
            metrics=["f1", "accuracy"],
            chunk_size=CHUNK,
            calibrator=calibration.NoopCalibrator(),
        )
        estimator.fit(_frame(served.classes, served.reference, served.reference_labels))
        yield estimator
    assert not sent, f"NannyML sent usage events: {sent}"


def _frame(classes: list[str], probabilities: FloatArray, labels: list[str] | None) -> pd.DataFrame:
    frame = pd.DataFrame(probabilities, columns=[f"p{i:02d}" for i in range(len(classes))])
    frame["y_pred"] = [classes[i] for i in probabilities.argmax(axis=1)]
    if labels is not None:
        frame["y_true"] = labels
    return frame


def nannyml_estimate(cbpe: Any, served: Served, chunk: FloatArray) -> tuple[float, float]:
    """NannyML's CBPE macro-F1 and accuracy of ``chunk``, as one chunk."""
    result = cbpe.estimate(_frame(served.classes, chunk, None))
    rows = result.filter(period="analysis").to_df(multilevel=False)
    assert len(rows) == 1 and rows["chunk_end_index"].iloc[0] == CHUNK - 1
    return float(rows["f1_value"].iloc[0]), float(rows["accuracy_value"].iloc[0])


def service_estimate(served: Served, chunk: FloatArray) -> tuple[float, float]:
    """The service's window after the earlier predictions and then the chunk, one by one."""
    estimates = Estimates()
    try:
        for i, row in enumerate(served.earlier):
            estimates.record(MODEL, VERSION, ("earlier", i), row, window=CHUNK)
        for i, row in enumerate(chunk):
            estimates.record(MODEL, VERSION, ("chunk", i), row, window=CHUNK)
        window = estimates.window(MODEL, VERSION)
        assert window is not None
        estimate = window.estimate()
    finally:
        estimates.forget(MODEL, VERSION)
    assert estimate.predictions == CHUNK
    return estimate.macro_f1, estimate.accuracy


@pytest.mark.parametrize("chunk", ["catalogue", "class mix", "drifted feed"])
def test_the_service_estimate_is_nannymls(served: Served, cbpe: Any, chunk: str) -> None:
    ours = service_estimate(served, served.chunks[chunk])
    theirs = nannyml_estimate(cbpe, served, served.chunks[chunk])
    assert ours[0] == pytest.approx(theirs[0], abs=TOLERANCE)
    assert ours[1] == pytest.approx(theirs[1], abs=TOLERANCE)
