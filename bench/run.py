"""`make bench` / `modelfleet bench`: run the benchmarks, print ratios, rewrite bench/RESULTS.md.

The benchmark starts its own stack (Triton, Postgres, ride-duration) on free ports under
``$MODELFLEET_HOME/bench`` so it never disturbs a running ``make up``, builds the model repository
there (skipped when already built), and measures every variant in the same run so the ratios
compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from bench.loadgen import RunResult
from bench.ride_duration import (
    CONCURRENCY,
    bench_in_process,
    bench_service,
    bench_triton,
    check_same_answers,
    make_workload,
)
from models.repository import build_repository
from services.stack.service import ServiceProcess
from services.stack.settings import StackSettings
from services.stack.testing import free_port, running_stack, settings_for_tests

RESULTS = Path(__file__).parent / "RESULTS.md"
SERVICE_APP = "services.ride_duration.app:create_app"


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    release, python = platform.release(), platform.python_version()
    return f"{model}, {os.cpu_count()} cores, Linux {release}, Python {python}"


def table(results: list[RunResult]) -> str:
    lines = [
        "| variant | concurrency | p50 ms | p99 ms | req/s | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.concurrency} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.rps:,.0f} "
            f"| {r.errors} |"
        )
    return "\n".join(lines)


def ratios(results: list[RunResult]) -> str:
    by = {(r.name, r.concurrency): r for r in results}
    lines = [
        "| concurrency | service/Triton p50 | service/Triton req/s | plain service/Triton req/s "
        "| Triton/in-process p50 | Triton/in-process req/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCY:
        service, plain = by[("service-http", c)], by[("service-http-no-coalescing", c)]
        triton, local = by[("triton-direct", c)], by[("in-process-ort", c)]
        lines.append(
            f"| {c} | {service.p50_ms / triton.p50_ms:.2f}x | {service.rps / triton.rps:.2f}x "
            f"| {plain.rps / triton.rps:.2f}x | {triton.p50_ms / local.p50_ms:.1f}x "
            f"| {triton.rps / local.rps:.2f}x |"
        )
    return "\n".join(lines)


async def run_ride_duration(
    settings: StackSettings, onnx_path: Path, *, duration_s: float, warmup_s: float, rows: int
) -> tuple[list[RunResult], float]:
    workload = make_workload(rows, seed=1234)
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
        for concurrency in CONCURRENCY:
            timing = {"duration_s": duration_s, "warmup_s": warmup_s}
            results.append(
                await asyncio.to_thread(
                    bench_in_process, onnx_path, workload, concurrency=concurrency, **timing
                )
            )
            results.append(
                await bench_triton(triton_url, workload, concurrency=concurrency, **timing)
            )
            results.append(
                await bench_service(
                    host, settings.ride_duration_port, workload, concurrency=concurrency, **timing
                )
            )
            plain_result = await bench_service(
                host, plain_port, workload, concurrency=concurrency, **timing
            )
            plain_result.name = "service-http-no-coalescing"
            results.append(plain_result)
            for r in results[-4:]:
                print(
                    f"  c={r.concurrency:<3} {r.name:<28} p50 {r.p50_ms:7.3f} ms  "
                    f"p99 {r.p99_ms:7.3f} ms  {r.rps:8,.0f} req/s  errors {r.errors}",
                    flush=True,
                )
        return results, max_diff
    finally:
        plain.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelfleet bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run")
    parser.add_argument("--rows", type=int, default=2000, help="distinct rides in the workload")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    args = parser.parse_args(argv)

    home = StackSettings().paths.home / "bench"
    settings = settings_for_tests(home)
    print(f"building the model repository in {settings.paths.model_repository} ...", flush=True)
    build = build_repository(settings.paths.model_repository, seed=42, rows=200_000)
    onnx_path = build.path / "model.onnx"
    print("starting Triton, Postgres and ride-duration on free ports ...", flush=True)
    with running_stack(settings, ["postgres", "triton", "ride-duration"]):
        results, max_diff = uvloop.run(
            run_ride_duration(
                settings,
                onnx_path,
                duration_s=args.duration,
                warmup_s=args.warmup,
                rows=args.rows,
            )
        )

    setup = "\n".join(
        [
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- machine: {machine()}",
            f"- model: ride_duration v{build.version} (HistGradientBoosting, "
            f"{len(build.card['features'])} features); Triton 2.51, Python backend running ONNX "
            "Runtime, 2 instances, dynamic batching (max queue delay 200 us)",
            "- service: ride-duration, 1 uvicorn worker (uvloop, httptools), fast routes on, "
            "prediction log on; `service-http-no-coalescing` is the same service with "
            "RIDE_DURATION_COALESCE_REQUESTS=false",
            f"- closed loop, {args.duration:g} s measured after {args.warmup:g} s warm-up per "
            "run; clients: tritonclient aio (reads the output) for Triton, a minimal keep-alive "
            "HTTP/1.1 client for the service (one connection per worker); the three ways answer "
            f"the same (max difference {max_diff:.4f} min, the service rounds to 0.01)",
        ]
    )
    report = "\n\n".join(
        [
            "# Benchmark results",
            "Generated by `make bench` (bench/run.py); rewritten on every run.",
            setup,
            "## Ride-duration: in-process ONNX Runtime vs direct Triton gRPC vs the service",
            table(results),
            "## Ratios",
            ratios(results),
            "Goals: service p50 <= 1.3x direct Triton at concurrency 1; service throughput "
            ">= 0.8x direct Triton at concurrency 32.",
        ]
    )
    print()
    print(report)
    if not args.no_write:
        RESULTS.write_text(report + "\n")
        print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
