"""Ride-duration training: features, split, gradient boosting, baseline, ONNX export and check.

``train(trips, seed=..., onnx_path=...)`` takes raw TLC trips (synthetic or real), cleans them,
computes features with ``services.domain.taxi.features.ride_features`` (the same code the service
runs), and:

- splits by time: trips sorted by pickup time, the last ``test_fraction`` (20%) is held out, so
  the test set is "the future" as in production (ties keep file order; deterministic);
- trains a ``HistGradientBoostingRegressor`` (squared error, fixed iterations, no early
  stopping, ``random_state=seed``) on the features -> ``duration_minutes``;
- fits the baseline: a linear regression on ``trip_distance`` only;
- reports RMSE/MAE of both on the held-out trips;
- exports the model to ONNX (input ``features`` float32 [None, N_FEATURES], output
  ``duration_minutes`` float32 [None, 1]) and checks that ONNX Runtime matches sklearn;
- returns the model card (a JSON-able dict; the repository adds version and dates).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from models.ride_duration.card import TripData, taxi_model_card
from models.ride_duration.data import clean_trips
from services.domain.taxi.features import (
    N_FEATURES,
    N_SENSOR_FEATURES,
    ride_features,
    with_traffic,
)
from services.domain.taxi.traffic import traffic_speed_mph

MODEL_NAME: Final = "ride_duration"
SENSOR_MODEL_NAME: Final = "ride_duration_sensor"
"""The sensor-aware variant: the same features and the sensor's traffic speed at pickup."""
INPUT_NAME: Final = "features"
OUTPUT_NAME: Final = "duration_minutes"
TEST_FRACTION: Final = 0.2
ONNX_TARGET_OPSET: Final = {"": 17, "ai.onnx.ml": 3}
MAX_ONNX_ABS_DIFF: Final = 1e-3
"""Largest allowed |ONNX Runtime - sklearn| over the test set, in minutes."""

HGB_PARAMS: Final[dict[str, Any]] = {
    "loss": "squared_error",
    "learning_rate": 0.1,
    "max_iter": 300,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": False,
}

FloatArray = npt.NDArray[np.float32]


def trip_features(trips: pd.DataFrame, *, traffic: bool = False) -> FloatArray:
    """``ride_features`` of a TLC-schema frame (one row per trip); ``traffic``: with the
    sensor's traffic speed at pickup as the last column (the sensor-aware model's input)."""
    x = ride_features(
        pickup_datetime=trips["tpep_pickup_datetime"].to_numpy(dtype="datetime64[us]"),
        pickup_location_id=trips["PULocationID"].to_numpy(),
        dropoff_location_id=trips["DOLocationID"].to_numpy(),
        trip_distance=trips["trip_distance"].to_numpy(dtype=np.float64),
        passenger_count=trips["passenger_count"].to_numpy(dtype=np.float64),
        ratecode_id=trips["RatecodeID"].to_numpy(dtype=np.float64),
        payment_type=trips["payment_type"].to_numpy(dtype=np.float64),
    )
    if not traffic:
        return x
    speed = traffic_speed_mph(
        trips["PULocationID"].to_numpy(dtype=np.int64),
        trips["tpep_pickup_datetime"].to_numpy(dtype="datetime64[s]"),
    )
    return with_traffic(x, speed)


def split_by_time(
    trips: pd.DataFrame, *, test_fraction: float = TEST_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the last ``test_fraction`` of trips by pickup time is the test set."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    ordered = trips.sort_values("tpep_pickup_datetime", kind="stable").reset_index(drop=True)
    cut = int(round(len(ordered) * (1.0 - test_fraction)))
    if cut <= 0 or cut >= len(ordered):
        raise ValueError(f"not enough trips to split ({len(ordered)})")
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


def prepare_trips(
    trips: pd.DataFrame, *, source: str, seed: int, test_fraction: float = TEST_FRACTION
) -> TripData:
    """Raw trips cleaned and split by time: what every taxi model trains and is tested on."""
    clean = clean_trips(trips)
    train_df, test_df = split_by_time(clean, test_fraction=test_fraction)
    return TripData(
        source=source,
        seed=seed,
        trips=trips,
        clean=clean,
        train=train_df,
        test=test_df,
        test_fraction=test_fraction,
    )


def fit_model(
    x: FloatArray,
    y: npt.NDArray[np.float64],
    *,
    seed: int,
    params: dict[str, Any] = HGB_PARAMS,
) -> HistGradientBoostingRegressor:
    """The gradient boosting regressor on the feature matrix."""
    model = HistGradientBoostingRegressor(random_state=seed, **params)
    model.fit(x, y)
    return model


def fit_baseline(distance: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> LinearRegression:
    """The baseline: linear regression of duration on trip distance only."""
    baseline = LinearRegression()
    baseline.fit(distance.reshape(-1, 1), y)
    return baseline


def export_onnx(
    model: HistGradientBoostingRegressor,
    *,
    output_name: str = OUTPUT_NAME,
    doc: str = "ride_duration: trip duration in minutes from ride_features",
    n_features: int = N_FEATURES,
) -> bytes:
    """ONNX bytes: input ``features`` float32 [None, N_FEATURES], output ``output_name``
    (default ``duration_minutes``) float32 [None, 1]."""
    with warnings.catch_warnings():
        # skl2onnx 1.20 passes Python bools for the leaves' nodes_missing_value_tracks_true
        # (an ints attribute); protobuf 6 converts them (to 0) with a DeprecationWarning.
        warnings.filterwarnings(
            "ignore",
            message=r"Field onnx\.AttributeProto\.ints: Expected an int, got a boolean",
            category=DeprecationWarning,
        )
        proto = to_onnx(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            target_opset=ONNX_TARGET_OPSET,
        )
    graph = proto.graph
    if len(graph.output) != 1:
        raise RuntimeError(f"expected one ONNX output, got {len(graph.output)}")
    old = graph.output[0].name
    if old != output_name:
        for node in graph.node:
            node.output[:] = [output_name if name == old else name for name in node.output]
            node.input[:] = [output_name if name == old else name for name in node.input]
        graph.output[0].name = output_name
    proto.doc_string = doc
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


def onnx_session(onnx_bytes: bytes) -> ort.InferenceSession:
    """A CPU ONNX Runtime session with one intra-op thread (as served)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )


def onnx_max_abs_diff(
    onnx_bytes: bytes,
    model: HistGradientBoostingRegressor,
    x: FloatArray,
    *,
    output_name: str = OUTPUT_NAME,
) -> float:
    """max |ONNX Runtime - sklearn| over the rows of ``x``."""
    session = onnx_session(onnx_bytes)
    (got,) = session.run([output_name], {INPUT_NAME: x})
    want = model.predict(x)
    if got.shape != (x.shape[0], 1) or got.dtype != np.float32:
        raise RuntimeError(f"unexpected ONNX output {got.dtype} {got.shape}")
    return float(np.max(np.abs(got[:, 0].astype(np.float64) - want))) if len(x) else 0.0


def rmse_of(y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def mae_of(y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]) -> float:
    return float(np.mean(np.abs(y - pred)))


@dataclass(frozen=True)
class TrainedModel:
    """What ``train_model`` produced: the fitted models, the ONNX bytes and the card."""

    model: HistGradientBoostingRegressor
    baseline: LinearRegression
    onnx_bytes: bytes
    card: dict[str, Any]


def train_model(
    trips: pd.DataFrame,
    *,
    seed: int,
    source: str = "synthetic-tlc",
    test_fraction: float = TEST_FRACTION,
    params: dict[str, Any] = HGB_PARAMS,
    sensor: bool = False,
) -> TrainedModel:
    """Clean, split, train, evaluate, export and check; see the module docstring.

    ``params``: the regressor's hyperparameters (rollout tests train deliberately weaker or
    stronger variants with other values; see ``models.ride_duration.variants``). ``sensor``:
    the sensor-aware variant (``SENSOR_MODEL_NAME``), with the traffic speed at pickup.
    """
    started = time.perf_counter()
    data = prepare_trips(trips, source=source, seed=seed, test_fraction=test_fraction)
    train_df, test_df = data.train, data.test
    x_train = trip_features(train_df, traffic=sensor)
    x_test = trip_features(test_df, traffic=sensor)
    y_train = train_df["duration_minutes"].to_numpy(dtype=np.float64)
    y_test = test_df["duration_minutes"].to_numpy(dtype=np.float64)

    fit_started = time.perf_counter()
    model = fit_model(x_train, y_train, seed=seed, params=params)
    fit_seconds = time.perf_counter() - fit_started
    baseline = fit_baseline(train_df["trip_distance"].to_numpy(dtype=np.float64), y_train)

    pred = model.predict(x_test)
    base_pred = baseline.predict(test_df["trip_distance"].to_numpy(dtype=np.float64).reshape(-1, 1))
    rmse, mae = rmse_of(y_test, pred), mae_of(y_test, pred)
    base_rmse, base_mae = rmse_of(y_test, base_pred), mae_of(y_test, base_pred)

    name = SENSOR_MODEL_NAME if sensor else MODEL_NAME
    onnx_bytes = export_onnx(
        model,
        doc=f"{name}: trip duration in minutes from ride_features"
        + (" and the traffic speed at pickup" if sensor else ""),
        n_features=N_SENSOR_FEATURES if sensor else N_FEATURES,
    )
    diff = onnx_max_abs_diff(onnx_bytes, model, x_test)
    if diff > MAX_ONNX_ABS_DIFF:
        raise RuntimeError(f"ONNX Runtime differs from sklearn by {diff:.3g} minutes")

    card = taxi_model_card(
        name=name,
        sensor=sensor,
        task="regression: NYC yellow-taxi trip duration in minutes",
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        hyperparameters={**params, "random_state": seed},
        data=data.card(),
        metrics={
            "rmse": round(rmse, 4),
            "mae": round(mae, 4),
            "baseline_rmse": round(base_rmse, 4),
            "baseline_mae": round(base_mae, 4),
            "rmse_improvement_vs_baseline": round(1.0 - rmse / base_rmse, 4),
            "baseline": "linear regression on trip_distance",
            "onnx_max_abs_diff": diff,
        },
        onnx_bytes=onnx_bytes,
        started=started,
        fit_seconds=fit_seconds,
    )
    return TrainedModel(model=model, baseline=baseline, onnx_bytes=onnx_bytes, card=card)


def train_sensor_model(
    trips: pd.DataFrame,
    *,
    seed: int,
    source: str = "synthetic-tlc",
    test_fraction: float = TEST_FRACTION,
) -> TrainedModel:
    """The sensor-aware variant (``SENSOR_MODEL_NAME``): :func:`train_model` with ``sensor``."""
    return train_model(trips, seed=seed, source=source, test_fraction=test_fraction, sensor=True)


def train(
    trips: pd.DataFrame,
    *,
    seed: int,
    onnx_path: Path,
    source: str = "synthetic-tlc",
    test_fraction: float = TEST_FRACTION,
) -> dict[str, Any]:
    """Train on raw TLC trips, write the ONNX model to ``onnx_path``, return the model card."""
    trained = train_model(trips, seed=seed, source=source, test_fraction=test_fraction)
    onnx_path.write_bytes(trained.onnx_bytes)
    return trained.card
