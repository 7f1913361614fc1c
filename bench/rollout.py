"""Benchmark: what model-level rollouts cost ride-duration, measured in one run.

1. Shadow overhead: the service with all traffic on stable, then with a shadow variant mirroring
   every call, alternated (off, on, off, on) at concurrency 1 and 8 so drift hits both alike:
   p50, p99, requests/s of the answers, and the p99 ratio on/off. The shadow runs off the
   request path (bounded queue); shadow comparisons and drops in the same windows are reported.
2. Split accuracy: a 20% canary, 2,000 requests without a user id: the observed canary share.

The candidate is the deliberately worse ride_duration version (``models.ride_duration.variants``)
published into the bench stack's repository and loaded beside the stable one for the run, then
removed again.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import RunResult
from bench.ride_duration import MODEL, Workload, bench_service, make_workload
from bench.suite import BenchContext, Suite, latency_table, print_run, when_and_where
from models.repository import remove_version
from models.ride_duration.variants import SPEC, publish_candidate
from services.common.triton import TritonClient

CONCURRENCY = (1, 8)
SPLIT_REQUESTS = 2000
CANARY_SHARE = 0.2


def _variant(name: str, role: str, weight: float, version: int) -> dict[str, Any]:
    return {"name": name, "model": MODEL, "model_version": version, "role": role, "weight": weight}


async def _put(http: httpx.AsyncClient, variants: list[dict[str, Any]]) -> None:
    current = (await http.get("/v1/admin/routing")).json()["version"]
    response = await http.put(
        "/v1/admin/routing",
        json={"expected_version": current, "variants": variants, "comment": "bench"},
        headers={"x-modelfleet-actor": "bench"},
    )
    response.raise_for_status()


async def _shadow_counts(http: httpx.AsyncClient) -> tuple[float, float]:
    """(rows compared, calls dropped) so far, from the service's /metrics."""
    compared = dropped = 0.0
    for family in text_string_to_metric_families((await http.get("/metrics")).text):
        for sample in family.samples:
            if sample.name == "modelfleet_shadow_comparisons_total":
                compared += sample.value
            elif sample.name == "modelfleet_shadow_dropped_total":
                dropped += sample.value
    return compared, dropped


async def _split(http: httpx.AsyncClient, workload: Workload) -> Counter[str]:
    variants: Counter[str] = Counter()
    queue = list(range(SPLIT_REQUESTS))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            body = workload.bodies[i % len(workload.bodies)]
            response = await http.post(
                "/v1/predict", content=body, headers={"content-type": "application/json"}
            )
            variants[orjson.loads(response.content)["model"]["variant"]] += 1

    await asyncio.gather(*(worker() for _ in range(8)))
    return variants


async def _load(ctx: BenchContext) -> None:
    triton = TritonClient(ctx.settings.triton_grpc_url, timeout_s=5.0)
    try:
        await triton.load_model(MODEL)
    finally:
        await triton.close()


async def run(ctx: BenchContext) -> str:
    """The suite: shadow off/on alternated per concurrency, then the canary split."""
    settings = ctx.settings
    repo = settings.paths.model_repository
    stable = ctx.builds[MODEL].version
    candidate = await asyncio.to_thread(
        publish_candidate, repo, quality="worse", seed=43, rows=40_000
    )
    await _load(ctx)
    host, port = settings.host, settings.ride_duration_port
    workload = make_workload(ctx.rows, seed=1234)
    timing = {"duration_s": ctx.duration_s, "warmup_s": ctx.warmup_s}
    off = [_variant("stable", "stable", 1.0, stable)]
    on = [*off, _variant("shadow", "shadow", 1.0, candidate.version)]
    results: list[RunResult] = []
    ratios: list[str] = []
    shadow_lines: list[str] = []
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10.0) as http:
        try:
            for concurrency in CONCURRENCY:
                runs: dict[str, list[RunResult]] = {"off": [], "on": []}
                for label in ("off", "on", "off", "on"):
                    await _put(http, on if label == "on" else off)
                    before = await _shadow_counts(http)
                    result = await bench_service(
                        host, port, workload, concurrency=concurrency, **timing
                    )
                    after = await _shadow_counts(http)
                    result.name = f"shadow {label}"
                    print_run(result)
                    results.append(result)
                    runs[label].append(result)
                    if label == "on":
                        shadow_lines.append(
                            f"| {concurrency} | {len(result.latencies):,} | "
                            f"{after[0] - before[0]:,.0f} | {after[1] - before[1]:,.0f} |"
                        )
                p99 = {k: sorted(r.p99_ms for r in v)[0] for k, v in runs.items()}
                p99_mean = {k: sum(r.p99_ms for r in v) / len(v) for k, v in runs.items()}
                ratio = p99_mean["on"] / p99_mean["off"]
                ratios.append(
                    f"- concurrency {concurrency}: p99 on/off {ratio:.2f}x "
                    f"(mean of 2 runs each: {p99_mean['on']:.3f} vs {p99_mean['off']:.3f} ms; "
                    f"best: {p99['on']:.3f} vs {p99['off']:.3f} ms)"
                )
            await _put(
                http,
                [
                    _variant("stable", "stable", 1.0 - CANARY_SHARE, stable),
                    _variant("canary", "canary", CANARY_SHARE, candidate.version),
                ],
            )
            split = await _split(http, workload)
        finally:
            await _put(http, off)
            await asyncio.to_thread(remove_version, repo, SPEC, candidate.version)
            await _load(ctx)
    observed = split["canary"] / SPLIT_REQUESTS
    sigma = math.sqrt(CANARY_SHARE * (1 - CANARY_SHARE) / SPLIT_REQUESTS)
    setup = "\n".join(
        [
            when_and_where(),
            f"- stable: ride_duration v{stable}; candidate (shadow, canary): v{candidate.version}, "
            "the deliberately worse variant; both loaded in Triton (version_policy all)",
            "- service: ride-duration, 1 uvicorn worker, fast routes, prediction log on, "
            "shadow queue 1,000, 2 shadow workers; runs alternate off/on/off/on per concurrency, "
            f"{ctx.duration_s:g} s measured after {ctx.warmup_s:g} s warm-up each",
        ]
    )
    return "\n\n".join(
        [
            "## Rollouts: shadow overhead and canary split accuracy (ride-duration)",
            setup,
            latency_table(results),
            "### Shadow p99 on vs off",
            "\n".join(ratios),
            "| concurrency | answers (on) | shadow rows compared | shadow calls dropped |\n"
            "|---:|---:|---:|---:|\n" + "\n".join(shadow_lines),
            "### Canary split",
            f"- canary {CANARY_SHARE:.0%}, {SPLIT_REQUESTS:,} requests without a user id: "
            f"observed {observed:.1%} (|error| {abs(observed - CANARY_SHARE) / sigma:.1f} sigma, "
            f"sigma {sigma:.1%})",
        ]
    )


SUITE = Suite(name="rollout", components=("postgres", "triton", "ride-duration"), run=run)
