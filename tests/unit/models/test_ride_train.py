"""Unit tests of ride-duration training, the baseline and the ONNX export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from models.ride_duration.data import clean_trips, generate_trips
from models.ride_duration.train import (
    INPUT_NAME,
    OUTPUT_NAME,
    TrainedModel,
    onnx_session,
    split_by_time,
    train,
    train_model,
    trip_features,
)
from services.domain.taxi.features import FEATURE_NAMES, N_FEATURES


@pytest.fixture(scope="module")
def trips() -> pd.DataFrame:
    return generate_trips(20_000, seed=3)


@pytest.fixture(scope="module")
def trained(trips: pd.DataFrame) -> TrainedModel:
    return train_model(trips, seed=3)


def test_time_split_holds_out_the_latest_trips(trips: pd.DataFrame) -> None:
    clean = clean_trips(trips)
    train_df, test_df = split_by_time(clean)
    assert len(train_df) + len(test_df) == len(clean)
    assert len(test_df) == pytest.approx(0.2 * len(clean), abs=1)
    assert train_df["tpep_pickup_datetime"].max() <= test_df["tpep_pickup_datetime"].min()


def test_model_beats_the_distance_baseline(trained: TrainedModel) -> None:
    metrics = trained.card["metrics"]
    assert metrics["rmse"] < metrics["baseline_rmse"]
    assert metrics["mae"] < metrics["baseline_mae"]
    assert metrics["rmse_improvement_vs_baseline"] >= 0.25
    assert metrics["rmse_improvement_vs_baseline"] == pytest.approx(
        1 - metrics["rmse"] / metrics["baseline_rmse"], abs=1e-3
    )


def test_card_is_json_and_complete(trained: TrainedModel) -> None:
    card = json.loads(json.dumps(trained.card))
    assert card["name"] == "ride_duration"
    assert card["features"] == list(FEATURE_NAMES)
    assert card["data"]["source"] == "synthetic-tlc" and card["data"]["seed"] == 3
    assert card["data"]["rows_train"] > 4 * card["data"]["rows_test"] * 0.99
    assert len(card["onnx_sha256"]) == 64
    assert {"scikit-learn", "onnxruntime", "numpy", "skl2onnx"} <= set(card["frameworks"])


def test_onnx_signature_and_parity(trained: TrainedModel, trips: pd.DataFrame) -> None:
    proto = onnx.load_from_string(trained.onnx_bytes)
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims[1] == N_FEATURES
    x = trip_features(clean_trips(trips))
    (got,) = onnx_session(trained.onnx_bytes).run([OUTPUT_NAME], {INPUT_NAME: x})
    assert got.shape == (len(x), 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], trained.model.predict(x), atol=1e-3)
    (one,) = onnx_session(trained.onnx_bytes).run([OUTPUT_NAME], {INPUT_NAME: x[:1]})
    assert one[0, 0] == pytest.approx(got[0, 0], abs=1e-4)


def test_train_writes_the_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    card = train(generate_trips(4_000, seed=5), seed=5, onnx_path=path)
    assert path.stat().st_size > 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card["onnx_sha256"]


def test_card_keeps_its_layout(trained: TrainedModel) -> None:
    card = trained.card
    assert list(card) == [
        "name",
        "task",
        "algorithm",
        "hyperparameters",
        "data",
        "features",
        "inputs",
        "outputs",
        "metrics",
        "onnx_sha256",
        "training_seconds",
        "fit_seconds",
        "frameworks",
    ]
    assert card["task"] == "regression: NYC yellow-taxi trip duration in minutes"
    assert card["algorithm"] == "sklearn HistGradientBoostingRegressor"
    assert card["inputs"] == {INPUT_NAME: {"dtype": "float32", "shape": [-1, N_FEATURES]}}
    assert card["outputs"] == {OUTPUT_NAME: {"dtype": "float32", "shape": [-1, 1]}}
    assert list(card["data"]) == [
        "source",
        "seed",
        "rows_raw",
        "rows_clean",
        "rows_train",
        "rows_test",
        "split",
        "test_from",
    ]
    assert card["data"]["split"] == "time-based: last 20% of trips by pickup time"
    assert card["hyperparameters"]["random_state"] == 3
    assert card["fit_seconds"] <= card["training_seconds"]
