"""Benchmark: the ride-duration model three ways, same model, same rows, one run.

1. in-process ONNX Runtime (the anchor for Triton),
2. direct Triton gRPC with tritonclient aio (the anchor for the service),
3. the ride-duration service over HTTP (a minimal keep-alive client, one connection per worker),

each at concurrency 1, 8 and 32, closed loop: p50, p99, requests/s, and the ratios
service/Triton-direct and Triton-direct/in-process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import orjson
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient

from bench.loadgen import RunResult, run_async, run_threads
from bench.rawhttp import RawHttpConnection
from services.ride_duration.predictor import ride_feature_matrix
from services.ride_duration.schemas import Ride

MODEL = "ride_duration"
CONCURRENCY = (1, 8, 32)


@dataclass(frozen=True)
class Workload:
    bodies: list[bytes]
    features: npt.NDArray[np.float32]


def make_workload(rows: int, *, seed: int) -> Workload:
    """Rides from the synthetic TLC generator, as request bodies and as feature rows."""
    from models.ride_duration.data import clean_trips, generate_trips

    trips = clean_trips(generate_trips(rows * 2, seed=seed))
    trips = trips[trips.passenger_count.between(1, 9)].head(rows)
    rides = [
        Ride(
            pickup_datetime=t.tpep_pickup_datetime.to_pydatetime(),
            pickup_location_id=int(t.PULocationID),
            dropoff_location_id=int(t.DOLocationID),
            trip_distance=float(t.trip_distance),
            passenger_count=int(t.passenger_count),
        )
        for t in trips.itertuples()
    ]
    bodies = [ride.model_dump_json(exclude_none=True).encode() for ride in rides]
    return Workload(bodies=bodies, features=ride_feature_matrix(rides))


async def bench_triton(
    url: str, workload: Workload, *, concurrency: int, duration_s: float, warmup_s: float
) -> RunResult:
    client = InferenceServerClient(url=url)
    rows = workload.features
    output = [InferRequestedOutput("duration_minutes")]

    async def call(worker: int, i: int) -> None:
        row = rows[(worker * 7919 + i) % len(rows)][None, :]
        item = InferInput("features", list(row.shape), "FP32")
        item.set_data_from_numpy(row)
        result = await client.infer(MODEL, [item], outputs=output, client_timeout=5.0)
        result.as_numpy("duration_minutes")  # a real client reads its answer

    try:
        return await run_async(
            "triton-direct",
            call,
            concurrency=concurrency,
            duration_s=duration_s,
            warmup_s=warmup_s,
        )
    finally:
        await client.close()


async def bench_service(
    host: str,
    port: int,
    workload: Workload,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> RunResult:
    connections = [RawHttpConnection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.connect() for c in connections))
    bodies = workload.bodies

    async def call(worker: int, i: int) -> None:
        status, _ = await connections[worker].request(
            "POST", "/v1/predict", bodies[(worker * 7919 + i) % len(bodies)]
        )
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    try:
        return await run_async(
            "service-http",
            call,
            concurrency=concurrency,
            duration_s=duration_s,
            warmup_s=warmup_s,
        )
    finally:
        await asyncio.gather(*(c.close() for c in connections))


def bench_in_process(
    onnx_path: Path, workload: Workload, *, concurrency: int, duration_s: float, warmup_s: float
) -> RunResult:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    rows = workload.features

    def call(worker: int, i: int) -> None:
        session.run(None, {"features": rows[(worker * 7919 + i) % len(rows)][None, :]})

    return run_threads(
        "in-process-ort", call, concurrency=concurrency, duration_s=duration_s, warmup_s=warmup_s
    )


async def check_same_answers(
    url: str, host: str, port: int, onnx_path: Path, workload: Workload
) -> float:
    """Largest difference between the three ways on the first rows (they must agree)."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rows = workload.features[:20]
    local: npt.NDArray[Any] = session.run(None, {"features": rows})[0].reshape(-1)
    client = InferenceServerClient(url=url)
    item = InferInput("features", list(rows.shape), "FP32")
    item.set_data_from_numpy(rows)
    remote = (await client.infer(MODEL, [item], client_timeout=5.0)).as_numpy("duration_minutes")
    await client.close()
    connection = RawHttpConnection(host, port)
    await connection.connect()
    served = []
    for body in workload.bodies[:20]:
        _, raw = await connection.request("POST", "/v1/predict", body)
        served.append(orjson.loads(raw)["duration_minutes"])
    await connection.close()
    clipped = np.maximum(local, 1.0)
    return float(
        max(
            np.abs(remote.reshape(-1) - local).max(),
            np.abs(np.array(served) - clipped).max(),
        )
    )
