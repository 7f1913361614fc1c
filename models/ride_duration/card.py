"""The model card of a taxi model (ride_duration, tip_amount, total_amount): one layout for all.

Every model trained on trips has the same card: what it is (name, task, algorithm,
hyperparameters), the ``data`` block of :meth:`TripData.card`, its features and tensors, its
metrics (each model's own), the ONNX digest, timings and the library versions. The repository
adds version, dates and code hash when it writes the card.
"""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import skl2onnx
import sklearn

from services.domain.taxi.features import (
    FEATURE_NAMES,
    N_FEATURES,
    N_SENSOR_FEATURES,
    SENSOR_FEATURE,
)

ALGORITHM: Final = "sklearn HistGradientBoostingRegressor"


@dataclass(frozen=True)
class TripData:
    """What a taxi model is trained on: where the trips came from, cleaned, split by time."""

    source: str
    seed: int
    trips: pd.DataFrame
    clean: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    test_fraction: float

    def card(self) -> dict[str, Any]:
        """The ``data`` block of a taxi model's card (every model trained on trips shares it)."""
        return {
            "source": self.source,
            "seed": self.seed,
            "rows_raw": int(len(self.trips)),
            "rows_clean": int(len(self.clean)),
            "rows_train": int(len(self.train)),
            "rows_test": int(len(self.test)),
            "split": f"time-based: last {self.test_fraction:.0%} of trips by pickup time",
            "test_from": str(self.test["tpep_pickup_datetime"].iloc[0]),
        }


def framework_versions() -> dict[str, str]:
    """Versions of the libraries that made the model."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }


def taxi_model_card(
    *,
    name: str,
    task: str,
    input_name: str,
    output_name: str,
    hyperparameters: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, Any],
    onnx_bytes: bytes,
    started: float,
    fit_seconds: float,
    features_at_request: str | None = None,
    sensor: bool = False,
) -> dict[str, Any]:
    """The card of a taxi model: input ``input_name`` float32 [-1, N_FEATURES], output
    ``output_name`` float32 [-1, 1]; ``started`` is the ``time.perf_counter()`` of the start of
    training (the card's ``training_seconds`` run to now)."""
    return {
        "name": name,
        "task": task,
        "algorithm": ALGORITHM,
        "hyperparameters": hyperparameters,
        "data": data,
        "features": [*FEATURE_NAMES, *((SENSOR_FEATURE,) if sensor else ())],
        **({"features_at_request": features_at_request} if features_at_request else {}),
        "inputs": {
            input_name: {
                "dtype": "float32",
                "shape": [-1, N_SENSOR_FEATURES if sensor else N_FEATURES],
            }
        },
        "outputs": {output_name: {"dtype": "float32", "shape": [-1, 1]}},
        "metrics": metrics,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "training_seconds": round(time.perf_counter() - started, 2),
        "fit_seconds": round(fit_seconds, 2),
        "frameworks": framework_versions(),
    }
