"""Unit tests of the synthetic TLC trip generator, the loader and the cleaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.ride_duration.data import (
    TLC_COLUMNS,
    TLC_DTYPES,
    clean_trips,
    generate_trips,
    load_trips,
)
from services.domain.taxi.zones import JFK_ZONE, MANHATTAN, ZONE_BOROUGH


@pytest.fixture(scope="module")
def trips() -> pd.DataFrame:
    return generate_trips(30_000, seed=7)


def test_schema_is_exactly_tlc(trips: pd.DataFrame) -> None:
    assert tuple(trips.columns) == TLC_COLUMNS
    assert len(TLC_COLUMNS) == 19
    for column, dtype in TLC_DTYPES.items():
        assert trips[column].dtype == pd.Series([], dtype=dtype).dtype, column
    assert trips["tpep_pickup_datetime"].is_monotonic_increasing


def test_reproducible_for_a_seed(trips: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(trips, generate_trips(30_000, seed=7))
    other = generate_trips(30_000, seed=8)
    assert not other["trip_distance"].equals(trips["trip_distance"])


def test_raw_data_has_real_world_outliers(trips: pd.DataFrame) -> None:
    duration = (trips["tpep_dropoff_datetime"] - trips["tpep_pickup_datetime"]).dt.total_seconds()
    assert (trips["trip_distance"] == 0).sum() > 100
    assert (duration < 0).any()
    assert (duration > 24 * 3600 * 0.8).any()
    assert ((duration > 2 * 3600) & (duration < 7 * 3600)).any()
    assert (trips["trip_distance"] > 100).any()
    assert trips["PULocationID"].isin([264, 265]).any()
    nulls = trips["passenger_count"].isna()
    assert 0.01 < nulls.mean() < 0.06
    assert (trips.loc[nulls, "payment_type"] == 0).all()
    assert trips.loc[nulls, "RatecodeID"].isna().all()
    assert trips.loc[nulls, "store_and_fwd_flag"].isna().all()


def test_fares_tips_and_rate_codes(trips: pd.DataFrame) -> None:
    cash = trips["payment_type"] == 2
    assert cash.mean() > 0.1 and (trips.loc[cash, "tip_amount"] == 0).all()
    card = trips["payment_type"] == 1
    assert trips.loc[card, "tip_amount"].gt(0).mean() > 0.8
    pu_b = ZONE_BOROUGH[trips["PULocationID"].to_numpy()]
    do_b = ZONE_BOROUGH[trips["DOLocationID"].to_numpy()]
    jfk_manhattan = ((trips["PULocationID"] == JFK_ZONE) & (do_b == MANHATTAN)) | (
        (trips["DOLocationID"] == JFK_ZONE) & (pu_b == MANHATTAN)
    )
    flat = trips["RatecodeID"] == 2
    assert flat.sum() > 50
    assert (trips.loc[flat, "fare_amount"] == 70).all()
    assert jfk_manhattan[flat].all()
    parts = [
        "fare_amount",
        "extra",
        "mta_tax",
        "tip_amount",
        "tolls_amount",
        "improvement_surcharge",
        "congestion_surcharge",
        "Airport_fee",
    ]
    total = trips[parts].fillna(0).sum(axis=1)
    np.testing.assert_allclose(trips["total_amount"], total, atol=0.011)
    # Metered fares: $3 + $0.70 per fifth of a mile at least.
    metered = (trips["RatecodeID"] == 1) & (trips["trip_distance"] < 100)
    lower = 3.0 + 3.5 * trips.loc[metered, "trip_distance"]
    assert (trips.loc[metered, "fare_amount"] >= lower - 0.71).all()


def test_clean_trips_filters_outliers(trips: pd.DataFrame) -> None:
    clean = clean_trips(trips)
    assert 0.9 * len(trips) < len(clean) < len(trips)
    assert clean["duration_minutes"].between(1, 120).all()
    assert (clean["trip_distance"] > 0).all() and (clean["trip_distance"] < 100).all()
    assert clean["PULocationID"].between(1, 263).all()
    assert clean["DOLocationID"].between(1, 263).all()
    assert clean.index.equals(pd.RangeIndex(len(clean)))
    # Durations depend on more than distance: Manhattan trips are slower per mile.
    per_mile = clean["duration_minutes"] / clean["trip_distance"]
    pu_b = ZONE_BOROUGH[clean["PULocationID"].to_numpy()]
    do_b = ZONE_BOROUGH[clean["DOLocationID"].to_numpy()]
    inside = (pu_b == MANHATTAN) & (do_b == MANHATTAN)
    assert per_mile[inside].median() > 1.3 * per_mile[~inside].median()


def test_clean_trips_on_a_hand_made_frame() -> None:
    base = generate_trips(10, seed=1).iloc[[0] * 6].reset_index(drop=True)
    pickup = pd.Timestamp("2024-01-02 10:00:00")
    base["tpep_pickup_datetime"] = pickup
    minutes = [10, 0.5, 130, -5, 10, 10]
    base["tpep_dropoff_datetime"] = [pickup + pd.Timedelta(minutes=m) for m in minutes]
    base["trip_distance"] = [2.0, 2.0, 2.0, 2.0, 0.0, 2.0]
    base["PULocationID"] = [161, 161, 161, 161, 161, 264]
    base["DOLocationID"] = 236
    clean = clean_trips(base)
    assert len(clean) == 1
    assert clean["duration_minutes"].iloc[0] == pytest.approx(10.0)


def test_loader_reads_parquet_csv_and_folders(trips: pd.DataFrame, tmp_path: Path) -> None:
    sample = trips.iloc[:2000].reset_index(drop=True)
    sample.to_parquet(tmp_path / "yellow_tripdata_2024-01.parquet", index=False)
    sample.to_csv(tmp_path / "yellow_tripdata_2024-02.csv", index=False)
    from_parquet = load_trips(tmp_path / "yellow_tripdata_2024-01.parquet")
    pd.testing.assert_frame_equal(from_parquet, sample)
    from_csv = load_trips(tmp_path / "yellow_tripdata_2024-02.csv")
    pd.testing.assert_frame_equal(from_csv, sample, check_exact=False, rtol=1e-9)
    both = load_trips(tmp_path)
    assert len(both) == 4000 and tuple(both.columns) == TLC_COLUMNS


def test_loader_accepts_older_column_spellings(trips: pd.DataFrame, tmp_path: Path) -> None:
    sample = trips.iloc[:100].rename(columns={"Airport_fee": "airport_fee"})
    sample = sample.drop(columns=["congestion_surcharge"])
    sample["VendorID"] = sample["VendorID"].astype("int64")
    sample.to_parquet(tmp_path / "old.parquet", index=False)
    loaded = load_trips(tmp_path / "old.parquet")
    assert tuple(loaded.columns) == TLC_COLUMNS
    assert loaded["congestion_surcharge"].isna().all()
    assert loaded["VendorID"].dtype == np.int32
    with pytest.raises(FileNotFoundError):
        load_trips(tmp_path / "missing.parquet")
