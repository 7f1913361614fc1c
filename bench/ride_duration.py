"""Benchmark: the ride-duration model three ways, same model, same rows, one run.

1. in-process ONNX Runtime (the anchor for Triton),
2. direct Triton gRPC with tritonclient aio (the anchor for the service),
3. the ride-duration service over HTTP (a minimal keep-alive client, one connection per worker),
4. direct Triton over HTTP, the Open Inference Protocol with JSON tensors (the anchor for 5),
5. the service's Open Inference Protocol route (``/v2/models/ride_duration/infer``, JSON
   tensors of one ride), both through the same minimal client,

each at concurrency 1, 8 and 32, closed loop: p50, p99, requests/s, and the ratios
service/Triton-direct, OIP service/Triton HTTP and Triton-direct/in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
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
from bench.suite import BenchContext, Suite, latency_table, print_run, when_and_where
from services.ride_duration.predictor import ride_feature_matrix
from services.ride_duration.schemas import Ride
from services.stack.service import ServiceProcess
from services.stack.testing import free_port

MODEL = "ride_duration"
CONCURRENCY = (1, 8, 32)
SERVICE_APP = "services.ride_duration.app:create_app"


@dataclass(frozen=True)
class Workload:
    bodies: list[bytes]
    features: npt.NDArray[np.float32]
    path: str = "/v1/predict"
    """Where the service variant POSTs the bodies."""
    model: str = MODEL
    """The Triton model and output the direct variant calls and reads."""
    output: str = "duration_minutes"
    oip_bodies: tuple[bytes, ...] = ()
    """Open Inference Protocol bodies (JSON tensors) of the same rows, for the service."""
    triton_oip_bodies: tuple[bytes, ...] = ()
    """Open Inference Protocol bodies of the rows' features, for Triton's HTTP endpoint."""


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
    x = ride_feature_matrix(rides)
    return Workload(
        bodies=bodies,
        features=x,
        oip_bodies=tuple(oip_body(ride) for ride in rides),
        triton_oip_bodies=tuple(
            orjson.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, x.shape[1]],
                            "datatype": "FP32",
                            "data": row.tolist(),
                        }
                    ]
                }
            )
            for row in x
        ),
    )


def oip_body(ride: Ride) -> bytes:
    """The service's OIP request for one ride (JSON tensors, as a KServe client sends them)."""

    def tensor(name: str, datatype: str, value: object) -> dict[str, object]:
        return {"name": name, "shape": [1], "datatype": datatype, "data": [value]}

    return orjson.dumps(
        {
            "inputs": [
                tensor("pickup_datetime", "BYTES", ride.pickup_datetime.isoformat()),
                tensor("pickup_location_id", "INT32", ride.pickup_location_id),
                tensor("dropoff_location_id", "INT32", ride.dropoff_location_id),
                tensor("trip_distance", "FP64", ride.trip_distance),
                tensor("passenger_count", "INT32", ride.passenger_count),
            ]
        }
    )


async def bench_triton(
    url: str,
    workload: Workload,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> RunResult:
    client = InferenceServerClient(url=url)
    rows = workload.features
    output = [InferRequestedOutput(workload.output)]

    async def call(worker: int, i: int) -> None:
        row = rows[(worker * 7919 + i) % len(rows)][None, :]
        item = InferInput("features", list(row.shape), "FP32")
        item.set_data_from_numpy(row)
        result = await client.infer(workload.model, [item], outputs=output, client_timeout=5.0)
        result.as_numpy(workload.output)  # a real client reads its answer

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
    """The minimal client POSTing the workload's bodies to its path."""
    return await bench_post(
        host,
        port,
        workload.path,
        workload.bodies,
        concurrency=concurrency,
        duration_s=duration_s,
        warmup_s=warmup_s,
    )


async def bench_post(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> RunResult:
    """The minimal client POSTing ``bodies`` to ``path`` (one connection per worker)."""
    connections = [RawHttpConnection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.connect() for c in connections))

    async def call(worker: int, i: int) -> None:
        status, _ = await connections[worker].request(
            "POST", path, bodies[(worker * 7919 + i) % len(bodies)]
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


def ratios(results: list[RunResult]) -> str:
    by = {(r.name, r.concurrency): r for r in results}
    lines = [
        "| concurrency | service/Triton p50 | service/Triton req/s | plain service/Triton req/s "
        "| OIP service/Triton HTTP p50 | OIP service/Triton HTTP req/s "
        "| Triton/in-process p50 | Triton/in-process req/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCY:
        service, plain = by[("service-http", c)], by[("service-http-no-coalescing", c)]
        triton, local = by[("triton-direct", c)], by[("in-process-ort", c)]
        oip, triton_http = by[("service-oip", c)], by[("triton-direct-http", c)]
        lines.append(
            f"| {c} | {service.p50_ms / triton.p50_ms:.2f}x | {service.rps / triton.rps:.2f}x "
            f"| {plain.rps / triton.rps:.2f}x | {oip.p50_ms / triton_http.p50_ms:.2f}x "
            f"| {oip.rps / triton_http.rps:.2f}x | {triton.p50_ms / local.p50_ms:.1f}x "
            f"| {triton.rps / local.rps:.2f}x |"
        )
    return "\n".join(lines)


async def run(ctx: BenchContext) -> str:
    """The suite: every variant at every concurrency, then the Markdown section."""
    settings, build = ctx.settings, ctx.builds[MODEL]
    onnx_path = build.path / "model.onnx"
    workload = make_workload(ctx.rows, seed=1234)
    host = settings.host
    triton_url = f"{host}:{settings.triton_grpc_port}"
    plain_port = free_port()
    plain = ServiceProcess(
        settings,
        "ride-duration-no-coalescing",
        app=SERVICE_APP,
        port=plain_port,
        port_setting="ride_duration_port",
        env={"RIDE_DURATION_COALESCE_REQUESTS": "false"},
    )
    plain.start()
    try:
        plain.wait_ready(time.monotonic() + plain.startup_timeout)
        max_diff = await check_same_answers(
            triton_url, host, settings.ride_duration_port, onnx_path, workload
        )
        results: list[RunResult] = []
        timing = {"duration_s": ctx.duration_s, "warmup_s": ctx.warmup_s}
        for concurrency in CONCURRENCY:
            local = await asyncio.to_thread(
                bench_in_process, onnx_path, workload, concurrency=concurrency, **timing
            )
            direct = await bench_triton(triton_url, workload, concurrency=concurrency, **timing)
            service = await bench_service(
                host, settings.ride_duration_port, workload, concurrency=concurrency, **timing
            )
            plain_result = await bench_service(
                host, plain_port, workload, concurrency=concurrency, **timing
            )
            plain_result.name = "service-http-no-coalescing"
            triton_http = await bench_post(
                host,
                settings.triton_http_port,
                f"/v2/models/{MODEL}/infer",
                workload.triton_oip_bodies,
                concurrency=concurrency,
                **timing,
            )
            triton_http.name = "triton-direct-http"
            oip = await bench_post(
                host,
                settings.ride_duration_port,
                f"/v2/models/{MODEL}/infer",
                workload.oip_bodies,
                concurrency=concurrency,
                **timing,
            )
            oip.name = "service-oip"
            for result in (local, direct, service, plain_result, triton_http, oip):
                print_run(result)
                results.append(result)
    finally:
        plain.stop()

    setup = "\n".join(
        [
            when_and_where(),
            f"- model: ride_duration v{build.version} (HistGradientBoosting, "
            f"{len(build.card['features'])} features); Triton 2.51, Python backend running ONNX "
            "Runtime, 2 instances, dynamic batching (max queue delay 200 us)",
            "- service: ride-duration, 1 uvicorn worker (uvloop, httptools), fast routes on, "
            "prediction log on, inference over Triton's HTTP endpoint (TRITON_INFER_TRANSPORT="
            "http, decision 53); `service-http-no-coalescing` is the same service with "
            "RIDE_DURATION_COALESCE_REQUESTS=false",
            f"- closed loop, {ctx.duration_s:g} s measured after {ctx.warmup_s:g} s warm-up per "
            "run; clients: tritonclient aio gRPC (reads the output) for `triton-direct`, a "
            "minimal keep-alive HTTP/1.1 client (one connection per worker) for the service "
            "(`service-http`: POST /v1/predict), and for the Open Inference Protocol pair, JSON "
            "tensors of one row: `triton-direct-http` (Triton's /v2/models/ride_duration/infer, "
            "the 26 features) and `service-oip` (the service's, the ride's fields); the three "
            f"ways answer the same (max difference {max_diff:.4f} min, the service rounds to "
            "0.01)",
        ]
    )
    return "\n\n".join(
        [
            "## Ride-duration: in-process ONNX Runtime vs direct Triton gRPC vs the service",
            setup,
            latency_table(results),
            "### Ratios",
            ratios(results),
            "Goals (issue 17): service p50 <= 1.2x direct Triton at concurrency 1; service "
            "throughput >= 0.9x direct Triton at concurrency 32; the OIP route within 1.3x of "
            "direct Triton over HTTP.",
        ]
    )


SUITE = Suite(name="ride-duration", components=("postgres", "triton", "ride-duration"), run=run)
