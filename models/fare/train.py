"""Tip and total-cost training: the ride-duration pipeline, other targets, their own baselines.

Both models take the very input of ride-duration (``features``: float32 [None, N_FEATURES] from
``services.domain.taxi.features.ride_features``), so a worker computes one feature row per ride
and calls any of the three models with it. Both are ``HistGradientBoostingRegressor`` with the
ride-duration hyperparameters, trained on the same cleaned trips with the same time split, and
exported to ONNX with one output named like the model.

They are trained on the features *as a ride request gives them* (:func:`request_features`): a
request carries no TLC rate code, so ``ratecode_id`` is the default (standard rate) in training
as in serving; airport trips are still known from the zones. Each model is compared with two
baselines on the held-out trips:

- the **request-time baseline** (the card's ``baseline_*``, the fair comparison): it sees what
  the model sees.
  - ``tip_amount`` (USD): the mean tip rate (tip / fare) per TLC payment type over the training
    trips, times the metered-fare formula on the requested distance;
  - ``total_amount`` (USD, what the rider pays: fare, surcharges, tolls, tip): the metered-fare
    formula on the requested distance plus the fixed MTA tax and improvement surcharge ($1.50).
- the **hindsight baseline** (the card's ``hindsight_baseline``, for reference): the same
  formulas on what the meter saw at the end of the trip (the actual fare; the actual duration).
  A model that only sees the request is not expected to beat it by much: tips are 15-30 % of the
  fare, drawn at random, and 10 % of card tips are zero.

The metered fare is $3 + $0.70 per 1/5 mile or per slow minute; without a duration (request
time) it counts the distance only.

    trained = train_tip_model(generate_trips(40_000, seed=7), seed=7)
    trained.card["metrics"]["rmse"], trained.card["metrics"]["baseline_rmse"]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from models.ride_duration.card import taxi_model_card
from models.ride_duration.train import (
    HGB_PARAMS,
    INPUT_NAME,
    MAX_ONNX_ABS_DIFF,
    TEST_FRACTION,
    export_onnx,
    fit_model,
    mae_of,
    onnx_max_abs_diff,
    prepare_trips,
    rmse_of,
    trip_features,
)
from services.domain.taxi.features import DEFAULT_RATECODE_ID, FEATURE_NAMES

TIP_MODEL: Final = "tip_amount"
COST_MODEL: Final = "total_amount"
FIXED_SURCHARGES: Final = 1.5
"""MTA tax ($0.50) + improvement surcharge ($1.00): on every metered trip."""

RATECODE_COLUMN: Final = FEATURE_NAMES.index("ratecode_id")

FloatArray = npt.NDArray[np.float64]


def request_features(trips: pd.DataFrame) -> npt.NDArray[np.float32]:
    """``trip_features`` as a ride request gives them: no rate code (the standard-rate default)."""
    x = trip_features(trips)
    x[:, RATECODE_COLUMN] = DEFAULT_RATECODE_ID
    return x


def metered_fare(distance_miles: FloatArray, duration_minutes: FloatArray) -> FloatArray:
    """The NYC standard-rate meter: $3 + $0.70 per 1/5 mile or per minute in slow traffic."""
    units = np.ceil(np.maximum(5.0 * np.asarray(distance_miles), np.asarray(duration_minutes)))
    return np.asarray(3.0 + 0.70 * units, dtype=np.float64)


@dataclass(frozen=True)
class Baseline:
    """A fitted baseline: what it is, and its predictions for a frame of trips."""

    description: str
    predict: Callable[[pd.DataFrame], FloatArray]


def _tip_rates(train: pd.DataFrame) -> pd.Series:
    """Mean tip rate (tip / actual fare) per payment type over the training trips."""
    fare = train["fare_amount"].to_numpy(dtype=np.float64)
    rate_per_trip = np.where(fare > 0, train["tip_amount"].to_numpy() / np.maximum(fare, 1e-9), 0)
    return pd.Series(rate_per_trip).groupby(train["payment_type"].to_numpy()).mean()


def _request_fare(trips: pd.DataFrame) -> FloatArray:
    """The metered fare a request implies: distance only (no duration yet)."""
    distance = trips["trip_distance"].to_numpy(dtype=np.float64)
    return metered_fare(distance, np.zeros_like(distance))


def tip_baseline(train: pd.DataFrame) -> Baseline:
    """Request time: mean tip rate by payment type x the metered fare on the requested distance."""
    rates = _tip_rates(train)

    def predict(trips: pd.DataFrame) -> FloatArray:
        rate = trips["payment_type"].map(rates).fillna(0.0).to_numpy(dtype=np.float64)
        return np.asarray(rate * _request_fare(trips))

    return Baseline(
        "mean tip rate by payment type x metered fare on the requested distance", predict
    )


def tip_hindsight_baseline(train: pd.DataFrame) -> Baseline:
    """Hindsight: mean tip rate by payment type x the trip's actual fare."""
    rates = _tip_rates(train)

    def predict(trips: pd.DataFrame) -> FloatArray:
        rate = trips["payment_type"].map(rates).fillna(0.0).to_numpy(dtype=np.float64)
        return np.asarray(rate * trips["fare_amount"].to_numpy(dtype=np.float64))

    return Baseline("mean tip rate by payment type x actual fare", predict)


def cost_baseline(_train: pd.DataFrame) -> Baseline:
    """Request time: metered fare on the requested distance, plus the fixed surcharges."""

    def predict(trips: pd.DataFrame) -> FloatArray:
        return np.asarray(_request_fare(trips) + FIXED_SURCHARGES)

    return Baseline("metered-fare formula on the requested distance + $1.50", predict)


def cost_hindsight_baseline(_train: pd.DataFrame) -> Baseline:
    """Hindsight: metered fare on distance and actual duration, plus the fixed surcharges."""

    def predict(trips: pd.DataFrame) -> FloatArray:
        fare = metered_fare(
            trips["trip_distance"].to_numpy(dtype=np.float64),
            trips["duration_minutes"].to_numpy(dtype=np.float64),
        )
        return np.asarray(fare + FIXED_SURCHARGES)

    return Baseline("metered-fare formula on distance and actual duration + $1.50", predict)


@dataclass(frozen=True)
class TrainedRegressor:
    """A trained tip or cost model: the sklearn model, its ONNX bytes and its card."""

    model: HistGradientBoostingRegressor
    onnx_bytes: bytes
    card: dict[str, Any]


def _train(
    trips: pd.DataFrame,
    *,
    name: str,
    target: str,
    task: str,
    make_baseline: Callable[[pd.DataFrame], Baseline],
    make_hindsight: Callable[[pd.DataFrame], Baseline],
    seed: int,
    source: str,
    test_fraction: float,
) -> TrainedRegressor:
    started = time.perf_counter()
    data = prepare_trips(trips, source=source, seed=seed, test_fraction=test_fraction)
    train_df, test_df = data.train, data.test
    x_train, x_test = request_features(train_df), request_features(test_df)
    y_train = train_df[target].to_numpy(dtype=np.float64)
    y_test = test_df[target].to_numpy(dtype=np.float64)
    fit_started = time.perf_counter()
    model = fit_model(x_train, y_train, seed=seed)
    fit_seconds = time.perf_counter() - fit_started
    baseline, hindsight = make_baseline(train_df), make_hindsight(train_df)
    pred = model.predict(x_test)
    base_pred, hind_pred = baseline.predict(test_df), hindsight.predict(test_df)
    rmse, mae = rmse_of(y_test, pred), mae_of(y_test, pred)
    base_rmse, base_mae = rmse_of(y_test, base_pred), mae_of(y_test, base_pred)
    hind_rmse, hind_mae = rmse_of(y_test, hind_pred), mae_of(y_test, hind_pred)
    onnx_bytes = export_onnx(model, output_name=name, doc=f"{name}: {task}")
    diff = onnx_max_abs_diff(onnx_bytes, model, x_test, output_name=name)
    if diff > MAX_ONNX_ABS_DIFF:
        raise RuntimeError(f"{name}: ONNX Runtime differs from sklearn by {diff:.3g}")
    card = taxi_model_card(
        name=name,
        task=task,
        input_name=INPUT_NAME,
        output_name=name,
        hyperparameters={**HGB_PARAMS, "random_state": seed},
        data={**data.card(), "target": target},
        features_at_request="ratecode_id is 1 (standard rate): a ride request has no rate code",
        metrics={
            "unit": "USD",
            "rmse": round(rmse, 4),
            "mae": round(mae, 4),
            "baseline_rmse": round(base_rmse, 4),
            "baseline_mae": round(base_mae, 4),
            "rmse_improvement_vs_baseline": round(1.0 - rmse / base_rmse, 4),
            "mae_improvement_vs_baseline": round(1.0 - mae / base_mae, 4),
            "baseline": baseline.description,
            "hindsight_baseline": {
                "description": hindsight.description,
                "rmse": round(hind_rmse, 4),
                "mae": round(hind_mae, 4),
                "rmse_improvement": round(1.0 - rmse / hind_rmse, 4),
                "mae_improvement": round(1.0 - mae / hind_mae, 4),
            },
            "onnx_max_abs_diff": diff,
        },
        onnx_bytes=onnx_bytes,
        started=started,
        fit_seconds=fit_seconds,
    )
    return TrainedRegressor(model=model, onnx_bytes=onnx_bytes, card=card)


def train_tip_model(
    trips: pd.DataFrame,
    *,
    seed: int,
    source: str = "synthetic-tlc",
    test_fraction: float = TEST_FRACTION,
) -> TrainedRegressor:
    """The ``tip_amount`` model (USD) and its card; see the module docstring."""
    return _train(
        trips,
        name=TIP_MODEL,
        target="tip_amount",
        task="regression: NYC yellow-taxi tip amount in USD at request time",
        make_baseline=tip_baseline,
        make_hindsight=tip_hindsight_baseline,
        seed=seed,
        source=source,
        test_fraction=test_fraction,
    )


def train_cost_model(
    trips: pd.DataFrame,
    *,
    seed: int,
    source: str = "synthetic-tlc",
    test_fraction: float = TEST_FRACTION,
) -> TrainedRegressor:
    """The ``total_amount`` model (USD) and its card; see the module docstring."""
    return _train(
        trips,
        name=COST_MODEL,
        target="total_amount",
        task="regression: NYC yellow-taxi total amount paid in USD at request time",
        make_baseline=cost_baseline,
        make_hindsight=cost_hindsight_baseline,
        seed=seed,
        source=source,
        test_fraction=test_fraction,
    )
