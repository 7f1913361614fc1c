"""Ride-duration data: a synthetic NYC TLC yellow-taxi trip generator, a loader and the cleaning.

- ``generate_trips(rows, seed=...)`` makes a seeded, reproducible DataFrame in the real TLC
  yellow-taxi schema (``TLC_COLUMNS``/``TLC_DTYPES``, as in the 2024 parquet files). No data is
  downloaded: the "world" (zone popularity, zone congestion) is fixed, the seed draws trips from it.
- ``load_trips(path)`` reads real TLC parquet or CSV files (one file or a folder of them) into the
  same schema, so the pipeline trains on real data when a user has it.
- ``clean_trips(df)`` applies the usual filters and adds ``duration_minutes``.

Structure of the synthetic trips (what a model can learn beyond distance):
- pickups follow the hourly/daily demand profile; Manhattan dominates, then JFK/LGA;
- dropoffs follow a gravity model (zone attractiveness x distance decay);
- trip distance = centroid distance x a detour factor (short same-zone trips otherwise);
- speed depends on the zone pair (Manhattan crawl vs outer-borough/highway), the trip length
  (longer trips use highways), hour of day and weekday (rush hours slow, nights fast, weekend
  mornings fast), per-zone congestion (Midtown slowest), the day's live traffic per borough and
  hour (``services.domain.taxi.traffic``: what the sensor service reports) and airport runs
  (Van Wyck in the evening rush); duration = distance / speed + pickup overhead, with lognormal
  noise and a heavy tail of stuck-in-traffic trips;
- fares follow the metered formula ($3 + $0.70 per 1/5 mile or per slow minute), JFK-Manhattan
  trips use RatecodeID 2 (flat $70), Newark RatecodeID 3 (+$20); surcharges as in 2024; card
  tips ~15-30%, cash tips recorded as 0;
- outliers as in the real files: zero-distance trips, negative and day-long durations, a few
  multi-hour trips, absurd distances, unknown zones 264/265, rows with null
  passenger_count/RatecodeID/store_and_fwd_flag/surcharges (payment_type 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.domain.taxi import traffic, zones
from services.domain.taxi.zones import (
    BRONX,
    BROOKLYN,
    EWR_ZONE,
    JFK_ZONE,
    LGA_ZONE,
    MANHATTAN,
    N_ZONES,
    QUEENS,
    STATEN_ISLAND,
    UNKNOWN,
    ZONE_BOROUGH,
    ZONE_XY,
)

TLC_DTYPES: Final[dict[str, str]] = {
    "VendorID": "int32",
    "tpep_pickup_datetime": "datetime64[us]",
    "tpep_dropoff_datetime": "datetime64[us]",
    "passenger_count": "float64",
    "trip_distance": "float64",
    "RatecodeID": "float64",
    "store_and_fwd_flag": "str",
    "PULocationID": "int32",
    "DOLocationID": "int32",
    "payment_type": "int64",
    "fare_amount": "float64",
    "extra": "float64",
    "mta_tax": "float64",
    "tip_amount": "float64",
    "tolls_amount": "float64",
    "improvement_surcharge": "float64",
    "total_amount": "float64",
    "congestion_surcharge": "float64",
    "Airport_fee": "float64",
}
"""The NYC TLC yellow-taxi trip record schema (column -> pandas dtype), in file order."""

TLC_COLUMNS: Final[tuple[str, ...]] = tuple(TLC_DTYPES)

MIN_DURATION_MINUTES: Final = 1.0
MAX_DURATION_MINUTES: Final = 120.0
MAX_TRIP_DISTANCE: Final = 100.0
MAX_KNOWN_ZONE: Final = 263
"""Zones 264 and 265 are "Unknown"/"N/A" in the TLC lookup table."""

DEFAULT_START: Final = "2024-01-01"
DEFAULT_DAYS: Final = 91

_WORLD_SEED: Final = traffic.WORLD_SEED  # fixed: zone popularity/congestion never change

# fmt: off
# Relative pickups per hour 0..23 (weekday / weekend), shaped like the TLC 2023-2024 files.
_HOURLY_WEEKDAY: Final = np.array(
    [2.2, 1.3, 0.8, 0.6, 0.6, 0.9, 2.2, 3.8, 4.6, 4.6, 4.5, 4.7,
     5.0, 5.1, 5.4, 5.8, 6.0, 6.6, 7.0, 6.4, 5.6, 5.3, 4.8, 3.4]
)
_HOURLY_WEEKEND: Final = np.array(
    [4.4, 3.6, 2.7, 1.8, 1.0, 0.7, 0.8, 1.3, 2.0, 2.9, 3.8, 4.5,
     4.9, 5.1, 5.2, 5.2, 5.3, 5.5, 5.6, 5.3, 4.9, 4.9, 4.8, 4.4]
)
_DAY_WEIGHT: Final = np.array([0.92, 1.0, 1.05, 1.08, 1.08, 1.0, 0.82])  # Mon..Sun
# fmt: on

_PICKUP_BOROUGH_SHARE: Final[dict[int, float]] = {
    MANHATTAN: 0.86,
    QUEENS: 0.025,
    BROOKLYN: 0.02,
    BRONX: 0.004,
    STATEN_ISLAND: 0.0005,
}
_PICKUP_AIRPORT_SHARE: Final[dict[int, float]] = {JFK_ZONE: 0.045, LGA_ZONE: 0.03, EWR_ZONE: 0.0005}
_PICKUP_UNKNOWN_SHARE: Final = 0.015
_DEST_BOROUGH_ATTRACTION: Final[dict[int, float]] = {
    MANHATTAN: 1.0,
    BROOKLYN: 0.35,
    QUEENS: 0.25,
    BRONX: 0.15,
    STATEN_ISLAND: 0.03,
}
_DEST_AIRPORT_ATTRACTION: Final[dict[int, float]] = {JFK_ZONE: 6.0, LGA_ZONE: 6.0, EWR_ZONE: 1.5}
_MIDTOWN: Final = traffic.MIDTOWN_ZONES
_GRAVITY_SCALE_MILES: Final = 1.3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class _World:
    """Fixed properties of the synthetic city (independent of the sampling seed)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(_WORLD_SEED)
        n = N_ZONES + 1
        ids = np.arange(n)
        borough = ZONE_BOROUGH.astype(np.int64)
        # Pickup popularity.
        popularity = rng.lognormal(0.0, 0.8, size=n)
        popularity[list(_MIDTOWN)] *= 4.0
        pickup = np.zeros(n)
        for code, share in _PICKUP_BOROUGH_SHARE.items():
            mask = (borough == code) & ~np.isin(ids, list(zones.AIRPORT_ZONES))
            pickup[mask] = share * popularity[mask] / popularity[mask].sum()
        for zone, share in _PICKUP_AIRPORT_SHARE.items():
            pickup[zone] = share
        pickup[[264, 265]] = _PICKUP_UNKNOWN_SHARE / 2
        self.pickup_p: FloatArray = pickup / pickup.sum()
        # Dropoff: gravity model mixed with a global attraction.
        attraction = np.zeros(n)
        for code, weight in _DEST_BOROUGH_ATTRACTION.items():
            mask = borough == code
            attraction[mask] = weight * popularity[mask]
        for zone, weight in _DEST_AIRPORT_ATTRACTION.items():
            attraction[zone] = weight
        attraction[[264, 265]] = 0.02
        dist = np.sqrt(((ZONE_XY[:, None, :] - ZONE_XY[None, :, :]) ** 2).sum(axis=2))
        gravity = attraction[None, :] * np.exp(-dist / _GRAVITY_SCALE_MILES)
        gravity /= gravity.sum(axis=1, keepdims=True)
        glob = attraction / attraction.sum()
        local_share = np.full(n, 0.75)
        local_share[list(zones.AIRPORT_ZONES)] = 0.25
        local_share[[0, 264, 265]] = 0.0
        dropoff = local_share[:, None] * gravity + (1 - local_share[:, None]) * glob[None, :]
        dropoff[:, 0] = 0.0
        self.dropoff_cdf: FloatArray = np.cumsum(dropoff / dropoff.sum(axis=1, keepdims=True), 1)
        # Congestion: speed multiplier per zone (Midtown slowest), the sensors' city.
        self.congestion: FloatArray = traffic.ZONE_CONGESTION
        self.distance: FloatArray = dist


_world: _World | None = None


def _get_world() -> _World:
    global _world
    if _world is None:
        _world = _World()
    return _world


def generate_trips(
    rows: int,
    *,
    seed: int = 42,
    start: str = DEFAULT_START,
    days: int = DEFAULT_DAYS,
) -> pd.DataFrame:
    """Synthetic yellow-taxi trips in the TLC schema, reproducible for a given seed.

    ``rows`` trips with pickups between ``start`` (a date) and ``start + days``, sorted by pickup
    time. Raw, like a TLC monthly file: run ``clean_trips`` before training.
    """
    if rows <= 0:
        raise ValueError("rows must be positive")
    world = _get_world()
    rng = np.random.default_rng(seed)
    n = rows

    # --- when ---------------------------------------------------------------------------------
    start_day = np.datetime64(start, "D")
    day_of_week_start = int((start_day.astype(np.int64) + 3) % 7)
    day_dow = (np.arange(days) + day_of_week_start) % 7
    day_p = _DAY_WEIGHT[day_dow] / _DAY_WEIGHT[day_dow].sum()
    day = rng.choice(days, size=n, p=day_p)
    dow = day_dow[day]
    weekend = dow >= 5
    hour = np.empty(n, dtype=np.int64)
    hour[~weekend] = rng.choice(
        24, size=int((~weekend).sum()), p=_HOURLY_WEEKDAY / _HOURLY_WEEKDAY.sum()
    )
    hour[weekend] = rng.choice(
        24, size=int(weekend.sum()), p=_HOURLY_WEEKEND / _HOURLY_WEEKEND.sum()
    )
    second = rng.integers(0, 3600, size=n)
    pickup_s = (
        start_day.astype("datetime64[s]").astype(np.int64) + day * 86_400 + hour * 3600 + second
    )

    # --- where --------------------------------------------------------------------------------
    pu = rng.choice(N_ZONES + 1, size=n, p=world.pickup_p)
    u = rng.random(n)
    do = np.empty(n, dtype=np.int64)
    for zone in np.unique(pu):
        mask = pu == zone
        do[mask] = np.searchsorted(world.dropoff_cdf[zone], u[mask], side="right")
    do = np.clip(do, 1, N_ZONES)
    pu_b = ZONE_BOROUGH[pu].astype(np.int64)
    do_b = ZONE_BOROUGH[do].astype(np.int64)
    known = (pu_b != UNKNOWN) & (do_b != UNKNOWN)

    # --- distance -----------------------------------------------------------------------------
    centroid = world.distance[pu, do]
    detour = 1.22 * rng.lognormal(0.0, 0.1, size=n)
    distance = centroid * detour + rng.gamma(2.0, 0.15, size=n)
    same = pu == do
    distance[same] = rng.gamma(2.0, 0.45, size=int(same.sum())) + 0.1
    unknown_rows = ~known
    distance[unknown_rows] = rng.gamma(1.5, 2.5, size=int(unknown_rows.sum())) + 0.2

    # --- speed and duration -------------------------------------------------------------------
    both_manhattan = (pu_b == MANHATTAN) & (do_b == MANHATTAN)
    one_manhattan = (pu_b == MANHATTAN) ^ (do_b == MANHATTAN)
    airport_trip = np.isin(pu, [JFK_ZONE, LGA_ZONE, EWR_ZONE]) | np.isin(
        do, [JFK_ZONE, LGA_ZONE, EWR_ZONE]
    )
    base_speed = np.select(
        [both_manhattan, airport_trip, one_manhattan, pu_b == do_b],
        [11.0, 19.0, 14.5, 13.0],
        default=15.0,
    )
    highway = 1.0 + 0.45 * np.clip(np.log1p(distance) / np.log1p(15.0), 0.0, 1.3)
    time_factor = traffic.time_speed_factor(hour, weekend)
    # Rush hours hurt more in Manhattan; evening rush to the airports (Van Wyck) is worst.
    time_factor = np.where(both_manhattan & (time_factor < 1.0), time_factor**1.3, time_factor)
    van_wyck = airport_trip & ~weekend & (hour >= 15) & (hour < 20)
    time_factor = np.where(van_wyck, time_factor * 0.8, time_factor)
    zone_factor = np.sqrt(world.congestion[pu] * world.congestion[do])
    # The day's traffic at pickup and dropoff: what a sensor sees and no request field tells.
    slot = traffic.hour_slots(pickup_s.astype("datetime64[s]"))
    live_factor = np.sqrt(traffic.live_factor(pu_b, slot) * traffic.live_factor(do_b, slot))
    speed = base_speed * highway * time_factor * zone_factor * live_factor
    speed = speed * rng.lognormal(0.0, 0.17, size=n)  # driver / signal luck
    overhead = np.clip(rng.normal(1.2, 0.5, size=n), 0.2, None)
    duration_min = distance / speed * 60.0 + overhead
    duration_min *= rng.lognormal(0.0, 0.1, size=n)
    stuck = rng.random(n) < 0.04  # accident, detour, waiting: heavy tail
    duration_min[stuck] *= 1.0 + rng.pareto(2.5, size=int(stuck.sum())) * 0.6

    # --- rate code and fares --------------------------------------------------------------------
    ratecode = np.ones(n)
    jfk_manhattan = ((pu == JFK_ZONE) & (do_b == MANHATTAN)) | (
        (do == JFK_ZONE) & (pu_b == MANHATTAN)
    )
    ratecode[jfk_manhattan & (rng.random(n) < 0.92)] = 2.0
    ratecode[(do == EWR_ZONE) | (pu == EWR_ZONE)] = 3.0
    ratecode[rng.random(n) < 0.003] = 5.0
    ratecode[rng.random(n) < 0.0005] = 99.0

    # --- raw-data outliers (before fares, so fares are consistent with what the meter saw) -----
    zero_distance = rng.random(n) < 0.015
    distance[zero_distance] = 0.0
    duration_min[zero_distance] = rng.exponential(3.0, size=int(zero_distance.sum()))
    short = rng.random(n) < 0.004
    duration_min[short] = rng.uniform(0.0, 0.9, size=int(short.sum()))
    multi_hour = rng.random(n) < 0.002
    duration_min[multi_hour] = rng.uniform(120.0, 360.0, size=int(multi_hour.sum()))
    day_long = rng.random(n) < 0.001
    duration_min[day_long] = rng.uniform(1200.0, 1800.0, size=int(day_long.sum()))
    negative = rng.random(n) < 0.001
    duration_min[negative] = -rng.uniform(1.0, 60.0, size=int(negative.sum()))
    absurd = rng.random(n) < 0.0005
    distance[absurd] = rng.uniform(150.0, 50_000.0, size=int(absurd.sum()))
    distance = np.round(distance, 2)

    dropoff_s = pickup_s + np.round(duration_min * 60.0).astype(np.int64)
    metered_minutes = np.clip(duration_min, 0.0, 600.0)
    fare = 3.0 + 0.70 * np.ceil(np.maximum(5.0 * np.minimum(distance, 200.0), metered_minutes))
    fare = np.where(ratecode == 2.0, 70.0, fare)
    fare = np.where(ratecode == 3.0, fare + 20.0, fare)
    negotiated = ratecode == 5.0
    fare[negotiated] = np.round(rng.uniform(15.0, 150.0, size=int(negotiated.sum())), 2)
    overnight = (hour >= 20) | (hour < 6)
    rush = ~weekend & (hour >= 16) & (hour < 20)
    extra = np.where(overnight, 1.0, 0.0) + np.where(rush & (ratecode != 2.0), 2.5, 0.0)
    mta_tax = np.full(n, 0.5)
    improvement = np.full(n, 1.0)
    congestion = np.where((pu_b == MANHATTAN) | (do_b == MANHATTAN), 2.5, 0.0)
    airport_fee = np.where(np.isin(pu, [JFK_ZONE, LGA_ZONE]), 1.75, 0.0)
    crossing = one_manhattan & np.isin(np.where(pu_b == MANHATTAN, do_b, pu_b), [QUEENS, BROOKLYN])
    tolls = np.where(crossing & (rng.random(n) < 0.55), 6.94, 0.0)
    tolls = np.where(ratecode == 3.0, 17.06, tolls)

    # --- payment and tips -----------------------------------------------------------------------
    payment = rng.choice([1, 2, 3, 4], size=n, p=[0.78, 0.19, 0.015, 0.015]).astype(np.int64)
    tip_base = fare + extra + mta_tax + improvement + congestion
    tip_pct = rng.choice([0.15, 0.2, 0.25, 0.3], size=n, p=[0.2, 0.45, 0.25, 0.1])
    tip_pct = tip_pct + rng.normal(0.0, 0.02, size=n)
    tip = np.where(rng.random(n) < 0.1, 0.0, np.round(np.clip(tip_pct, 0.0, None) * tip_base, 2))
    tip = np.where(payment == 1, tip, 0.0)  # cash tips are not recorded

    # --- rows with nulls, as in the real files (payment_type 0 = flex/unknown) -----------------
    null_rows = rng.random(n) < 0.03
    passenger = rng.choice(7, size=n, p=[0.02, 0.72, 0.15, 0.04, 0.02, 0.03, 0.02]).astype(float)
    passenger[null_rows] = np.nan
    ratecode[null_rows] = np.nan
    payment[null_rows] = 0
    congestion_col = np.where(null_rows, np.nan, congestion)
    airport_fee_col = np.where(null_rows, np.nan, airport_fee)
    flag = np.where(rng.random(n) < 0.005, "Y", "N").astype(object)
    flag[null_rows] = None

    total = (
        fare
        + extra
        + mta_tax
        + tip
        + tolls
        + improvement
        + np.nan_to_num(congestion_col)
        + np.nan_to_num(airport_fee_col)
    )
    vendor = rng.choice([1, 2], size=n, p=[0.27, 0.73]).astype(np.int32)

    df = pd.DataFrame(
        {
            "VendorID": vendor,
            "tpep_pickup_datetime": pickup_s.astype("datetime64[s]").astype("datetime64[us]"),
            "tpep_dropoff_datetime": dropoff_s.astype("datetime64[s]").astype("datetime64[us]"),
            "passenger_count": passenger,
            "trip_distance": distance,
            "RatecodeID": ratecode,
            "store_and_fwd_flag": flag,
            "PULocationID": pu.astype(np.int32),
            "DOLocationID": do.astype(np.int32),
            "payment_type": payment,
            "fare_amount": np.round(fare, 2),
            "extra": extra,
            "mta_tax": mta_tax,
            "tip_amount": tip,
            "tolls_amount": tolls,
            "improvement_surcharge": improvement,
            "total_amount": np.round(total, 2),
            "congestion_surcharge": congestion_col,
            "Airport_fee": airport_fee_col,
        }
    )
    df = df.sort_values("tpep_pickup_datetime", kind="stable").reset_index(drop=True)
    return conform_schema(df)


def conform_schema(df: pd.DataFrame) -> pd.DataFrame:
    """Columns and dtypes of ``TLC_DTYPES`` (case-insensitive names; missing columns -> null)."""
    by_lower = {str(c).lower(): c for c in df.columns}
    out: dict[str, pd.Series | npt.NDArray[np.float64]] = {}
    for column, dtype in TLC_DTYPES.items():
        source = by_lower.get(column.lower())
        if source is None:
            if dtype.startswith("int"):
                raise ValueError(f"missing required column {column!r}")
            values: pd.Series = pd.Series(np.nan, index=df.index, dtype="float64")
        else:
            values = df[source]
        if dtype.startswith("datetime64"):
            values = pd.to_datetime(values).astype(dtype)
        elif dtype.startswith("int"):
            values = pd.to_numeric(values).fillna(0).astype(dtype)
        elif dtype == "str":
            values = values.astype("str").where(values.notna())
        else:
            values = pd.to_numeric(values).astype(dtype)
        out[column] = values
    return pd.DataFrame(out, index=df.index)


def load_trips(path: Path | str) -> pd.DataFrame:
    """Read TLC yellow-taxi trips from a parquet/CSV file or a folder of them, in TLC schema.

    Folders are read in name order (``*.parquet``, ``*.csv``, ``*.csv.gz``). Column names are
    matched case-insensitively (older files spell ``airport_fee``); missing optional columns
    become null.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p
            for p in root.iterdir()
            if p.is_file() and p.name.endswith((".parquet", ".csv", ".csv.gz"))
        )
        if not files:
            raise FileNotFoundError(f"no .parquet or .csv files in {root}")
    elif root.is_file():
        files = [root]
    else:
        raise FileNotFoundError(str(root))
    frames = [conform_schema(_read_one(p)) for p in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _read_one(path: Path) -> pd.DataFrame:
    if path.name.endswith(".parquet"):
        return pd.read_parquet(path)
    if path.name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path, low_memory=False)
    raise ValueError(f"unsupported trip file {path} (want .parquet or .csv)")


def clean_trips(df: pd.DataFrame) -> pd.DataFrame:
    """Usual TLC filters, plus a ``duration_minutes`` column.

    Keeps trips with 1 <= duration <= 120 minutes, 0 < trip_distance < 100 miles, and both zones
    known (1..263; 264/265 are Unknown/N/A). Returns a new frame with a fresh index.
    """
    duration = (df["tpep_dropoff_datetime"] - df["tpep_pickup_datetime"]).dt.total_seconds() / 60.0
    keep = (
        duration.between(MIN_DURATION_MINUTES, MAX_DURATION_MINUTES)
        & (df["trip_distance"] > 0)
        & (df["trip_distance"] < MAX_TRIP_DISTANCE)
        & df["PULocationID"].between(1, MAX_KNOWN_ZONE)
        & df["DOLocationID"].between(1, MAX_KNOWN_ZONE)
    )
    out = df.loc[keep].copy()
    out["duration_minutes"] = duration[keep].astype("float64")
    return out.reset_index(drop=True)
