"""Unit tests of the tip and total-cost models: baselines, metrics, ONNX export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.fare.train import (
    COST_MODEL,
    TIP_MODEL,
    TrainedRegressor,
    cost_baseline,
    cost_hindsight_baseline,
    metered_fare,
    request_features,
    tip_baseline,
    tip_hindsight_baseline,
    train_cost_model,
    train_tip_model,
)
from models.ride_duration.data import clean_trips, generate_trips
from models.ride_duration.train import INPUT_NAME, onnx_session, trip_features
from services.domain.taxi.features import FEATURE_NAMES, N_FEATURES


@pytest.fixture(scope="module")
def trips() -> pd.DataFrame:
    return generate_trips(20_000, seed=5)


@pytest.fixture(scope="module")
def tip(trips: pd.DataFrame) -> TrainedRegressor:
    return train_tip_model(trips, seed=5)


@pytest.fixture(scope="module")
def cost(trips: pd.DataFrame) -> TrainedRegressor:
    return train_cost_model(trips, seed=5)


def test_metered_fare_formula() -> None:
    # 1 mile in 4 minutes: 5 units of 1/5 mile; 1 mile in 12 minutes: 12 slow minutes.
    got = metered_fare(np.array([1.0, 1.0, 0.0]), np.array([4.0, 12.0, 0.5]))
    np.testing.assert_allclose(got, [3.0 + 0.7 * 5, 3.0 + 0.7 * 12, 3.0 + 0.7])


TIP_TRAIN = pd.DataFrame(
    {"payment_type": [1, 1, 2], "fare_amount": [10.0, 20.0, 10.0], "tip_amount": [2, 6, 0.0]}
)  # card: mean(0.2, 0.3) = 0.25, cash: 0


def test_tip_baseline_is_rate_by_payment_type_times_the_requested_distance_fare() -> None:
    test = pd.DataFrame({"payment_type": [1, 2, 4], "trip_distance": [1.0, 5.0, 1.0]})
    # 1 mile: $3 + 5 x $0.70 = $6.50 on the meter (no duration at request time).
    np.testing.assert_allclose(tip_baseline(TIP_TRAIN).predict(test), [0.25 * 6.5, 0.0, 0.0])


def test_tip_hindsight_baseline_is_rate_by_payment_type_times_actual_fare() -> None:
    test = pd.DataFrame({"payment_type": [1, 2, 4], "fare_amount": [10.0, 50.0, 10.0]})
    np.testing.assert_allclose(tip_hindsight_baseline(TIP_TRAIN).predict(test), [2.5, 0.0, 0.0])


def test_cost_baselines_add_fixed_surcharges() -> None:
    test = pd.DataFrame({"trip_distance": [2.0], "duration_minutes": [15.0]})
    assert cost_baseline(test).predict(test)[0] == pytest.approx(3.0 + 0.7 * 10 + 1.5)
    assert cost_hindsight_baseline(test).predict(test)[0] == pytest.approx(3.0 + 0.7 * 15 + 1.5)


@pytest.mark.parametrize("which", ["tip", "cost"])
def test_models_beat_their_request_time_baselines(
    which: str, tip: TrainedRegressor, cost: TrainedRegressor
) -> None:
    metrics = (tip if which == "tip" else cost).card["metrics"]
    assert metrics["unit"] == "USD"
    assert metrics["rmse_improvement_vs_baseline"] == pytest.approx(
        1 - metrics["rmse"] / metrics["baseline_rmse"], abs=1e-3
    )
    hindsight = metrics["hindsight_baseline"]
    if which == "tip":
        # Same information as the model: clearly better. Tips are 15-30 % of the fare drawn at
        # random (10 % zero), so even the baseline that knows the actual fare is only close; it
        # also knows the day's live traffic in the metered minutes, which no request tells.
        assert metrics["rmse"] < 0.95 * metrics["baseline_rmse"]
        assert metrics["mae"] < 0.9 * metrics["baseline_mae"]
        assert metrics["rmse"] < 1.1 * hindsight["rmse"]
    else:  # the fare formula misses tips, tolls, surcharges and flat airport fares by far
        assert metrics["rmse_improvement_vs_baseline"] >= 0.3
        assert hindsight["rmse_improvement"] >= 0.3


def test_models_ignore_the_rate_code_a_request_does_not_carry(tip: TrainedRegressor) -> None:
    trips = clean_trips(generate_trips(300, seed=78))
    x = request_features(trips)
    assert set(x[:, FEATURE_NAMES.index("ratecode_id")].tolist()) == {1.0}
    jfk_flat = x.copy()
    jfk_flat[:, FEATURE_NAMES.index("ratecode_id")] = 2.0
    np.testing.assert_allclose(tip.model.predict(jfk_flat), tip.model.predict(x))


@pytest.mark.parametrize("name", [TIP_MODEL, COST_MODEL])
def test_onnx_export_matches_and_card_is_complete(
    name: str, tip: TrainedRegressor, cost: TrainedRegressor
) -> None:
    trained = tip if name == TIP_MODEL else cost
    card = json.loads(json.dumps(trained.card))
    assert card["name"] == name and card["features"] == list(FEATURE_NAMES)
    assert card["inputs"] == {INPUT_NAME: {"dtype": "float32", "shape": [-1, N_FEATURES]}}
    assert card["outputs"] == {name: {"dtype": "float32", "shape": [-1, 1]}}
    x = trip_features(clean_trips(generate_trips(300, seed=77)))
    (got,) = onnx_session(trained.onnx_bytes).run([name], {INPUT_NAME: x})
    np.testing.assert_allclose(got[:, 0], trained.model.predict(x), atol=1e-3)
    assert card["metrics"]["onnx_max_abs_diff"] <= 1e-3


@pytest.mark.parametrize("name", [TIP_MODEL, COST_MODEL])
def test_card_keeps_its_layout(name: str, tip: TrainedRegressor, cost: TrainedRegressor) -> None:
    card = (tip if name == TIP_MODEL else cost).card
    assert list(card) == [
        "name",
        "task",
        "algorithm",
        "hyperparameters",
        "data",
        "features",
        "features_at_request",
        "inputs",
        "outputs",
        "metrics",
        "onnx_sha256",
        "training_seconds",
        "fit_seconds",
        "frameworks",
    ]
    assert card["algorithm"] == "sklearn HistGradientBoostingRegressor"
    assert card["features_at_request"] == (
        "ratecode_id is 1 (standard rate): a ride request has no rate code"
    )
    assert list(card["data"]) == [
        "source",
        "seed",
        "rows_raw",
        "rows_clean",
        "rows_train",
        "rows_test",
        "split",
        "test_from",
        "target",
    ]
    assert card["data"]["target"] == name
    assert card["hyperparameters"]["random_state"] == 5
    assert len(card["onnx_sha256"]) == 64 and card["fit_seconds"] <= card["training_seconds"]
