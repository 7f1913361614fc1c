"""`make bench` / `modelfleet bench`: run the benchmark suites, print ratios, update RESULTS.md.

The benchmark starts its own stack on free ports under ``$MODELFLEET_HOME/bench`` so it never
disturbs a running ``make up``, builds the model repository there (skipped when already built),
starts the components the chosen suites need, and runs each suite, which measures its variants
in the same run so its ratios compare like with like. ``--suite NAME`` (repeatable) runs some
suites; bench/RESULTS.md keeps the sections of the others (see bench/suite.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop

from bench import (
    chain,
    chatbot,
    chatbot_llm,
    chatbot_retrieval,
    classifier,
    ride_duration,
    rollout,
    scoring,
    taxi,
)
from bench.suite import BenchContext, Suite, read_sections, render_results
from models.repository import build_models
from services.stack.settings import StackSettings
from services.stack.testing import running_stack, settings_for_tests

RESULTS = Path(__file__).parent / "RESULTS.md"
SUITES: tuple[Suite, ...] = (
    ride_duration.SUITE,
    classifier.SUITE,
    chatbot.SUITE,
    chatbot_retrieval.SUITE,
    chatbot_llm.SUITE,
    scoring.SUITE,
    taxi.SUITE,
    chain.SUITE,
    rollout.SUITE,
)
"""Every suite, in the order of RESULTS.md. Add a suite here."""


def _components(suites: list[Suite]) -> list[str]:
    seen: dict[str, None] = {}
    for suite in suites:
        seen.update(dict.fromkeys(suite.components))
    return list(seen)


async def _run_suites(suites: list[Suite], ctx: BenchContext) -> dict[str, str]:
    sections: dict[str, str] = {}
    for suite in suites:
        print(f"\n== suite {suite.name} ==", flush=True)
        sections[suite.name] = await suite.run(ctx)
        print(f"\n{sections[suite.name]}\n", flush=True)
    return sections


def main(argv: list[str] | None = None) -> int:
    by_name = {suite.name: suite for suite in SUITES}
    parser = argparse.ArgumentParser(prog="modelfleet bench", description=__doc__)
    parser.add_argument(
        "--suite",
        action="append",
        choices=sorted(by_name),
        help="run only this suite (repeatable; default: every suite)",
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run")
    parser.add_argument("--rows", type=int, default=2000, help="distinct requests in a workload")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    chosen = [by_name[name] for name in args.suite] if args.suite else list(SUITES)

    home = StackSettings().paths.home / "bench"
    settings = settings_for_tests(home)
    print(f"building the model repository in {settings.paths.model_repository} ...", flush=True)
    builds = {b.model: b for b in build_models(settings.paths.model_repository, seed=42)}
    components = _components(chosen)
    print(f"starting {', '.join(components)} on free ports ...", flush=True)
    ctx = BenchContext(
        settings=settings,
        builds=builds,
        duration_s=args.duration,
        warmup_s=args.warmup,
        rows=args.rows,
    )
    with running_stack(settings, components):
        sections = uvloop.run(_run_suites(chosen, ctx))

    if not args.no_write:
        kept = read_sections(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.write_text(render_results([s.name for s in SUITES], kept | sections))
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
