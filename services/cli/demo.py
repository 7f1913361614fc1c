"""``modelfleet demo SCENARIO``: one story per scenario against a running stack (services/jobs).

Each scenario prints what it shows as it goes and exits 0 when the story happened as told, 1 when
it did not (or could not be told: the failed step says why).

    modelfleet demo taxi [--rate 10] [--seconds 30]   rides while NATS is killed; none lost
    modelfleet demo chain [--rides 5]                 answers in a 2 s budget, the better one later
    modelfleet demo chat                              a manual uploaded, asked, cited; the catalogue
    modelfleet demo drift                             F1 falls -> alert -> retraining -> F1 back
    modelfleet demo rollout                           canary, A/B, shadow, blue/green, rolling

A scenario is a sub-parser made by an ``_add_<scenario>`` function below (its options) and a
``cmd_demo_<scenario>`` handler; ``add_parser`` lists them in ``SCENARIOS``' order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from typing import Any

from services.cli.output import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK, Output
from services.stack import StackSettings


def cmd_demo_taxi(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo taxi`: rides at a rate, NATS killed with SIGKILL mid-way and started again
    by the supervisor, every ride's results counted (services/jobs/taxi_demo.py)."""
    from services.jobs import taxi_demo as module

    kill_at = args.seconds / 3 if args.kill_at is None else args.kill_at
    if args.rate <= 0 or not 0 < kill_at < args.seconds:
        out.error(f"need --rate > 0 and 0 < --kill-at ({kill_at:g}) < --seconds ({args.seconds:g})")
        return EXIT_BAD_INPUT
    result = asyncio.run(
        module.run_taxi_demo(
            settings,
            say=out.line,
            rate_per_s=args.rate,
            seconds=args.seconds,
            kill_at_s=kill_at,
            timeout_s=args.timeout,
            url=args.url,
        )
    )
    if result.problem is not None:
        out.error(result.problem)
    elif not result.succeeded:
        out.error(f"the story did not happen as told: {result.shortfall}")
    return EXIT_OK if result.succeeded else EXIT_FAIL


def cmd_demo_chain(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo chain`: first answers within the budget, the sensor-aware duration over
    SSE moments later (services/jobs/chain_demo.py)."""
    from services.jobs import chain_demo as module

    if args.rides < 1:
        out.error("need --rides >= 1")
        return EXIT_BAD_INPUT
    url = args.url or f"http://{settings.host}:{settings.backend_port}"
    result = asyncio.run(
        module.run_chain_demo(url, say=out.line, rides=args.rides, timeout_s=args.timeout)
    )
    if result.problem is not None:
        out.error(result.problem)
    elif not result.succeeded:
        out.error("the story did not happen as told: see the rides above")
    return EXIT_OK if result.succeeded else EXIT_FAIL


def cmd_demo_chat(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo chat`: a manual uploaded and asked, the answer citing it; a catalogue
    question answered from SQL (services/jobs/chat_demo.py)."""
    from services.jobs import chat_demo as module

    url = args.url or f"http://{settings.host}:{settings.chatbot_port}"
    # The truth of the catalogue question: the stack's Postgres, unless the environment names
    # another (as for a job run from the CLI, services/cli/servers.py).
    database_url = os.environ.get("DATABASE_URL", settings.database_url)
    result = asyncio.run(module.run_chat_demo(url, database_url, say=out.line))
    failed = [s for s in result.steps if not s.ok]
    if failed:
        out.error(f"{failed[0].name}: {failed[0].detail}")
    return EXIT_OK if result.succeeded else EXIT_FAIL


def cmd_demo_rollout(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo rollout`: the five model-level strategies on ride-duration (services/
    jobs/rollout_demo.py); exit 0 when the story went as told (``DemoOutcome.succeeded``)."""
    from services.jobs import rollout_demo as module

    result = module.run_rollout_demo(settings, say=out.line)
    return EXIT_OK if result.succeeded else EXIT_FAIL


def _local_prometheus(settings: StackSettings) -> str | None:
    """The local stack's Prometheus (services/stack/monitoring.py) when it answers, else None."""
    import httpx

    url = f"http://{settings.host}:{settings.prometheus_port}"
    try:
        return url if httpx.get(f"{url}/-/ready", timeout=2.0).status_code == 200 else None
    except httpx.HTTPError:
        return None


def cmd_demo_drift(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo drift`: F1 falls, the alert starts retraining, F1 recovers (services/
    jobs/drift.py); exit 0 when the run succeeded and the estimate's alert came first."""
    from services.jobs import drift as module

    url = args.url or f"http://{settings.host}:{settings.classifier_port}"
    out.line(f"drift demo against {url}")
    result = asyncio.run(
        module.run_demo(
            url,
            say=out.line,
            products=args.products,
            label_lag=args.label_lag,
            prometheus_url=args.prometheus or _local_prometheus(settings),
            wait_for_alert_s=args.wait_for_alert,
            timeout_s=args.timeout,
        )
    )
    out.line(f"macro-F1 before drift: {result.before}")
    out.line(f"macro-F1 during drift (first alert): {result.during}")
    out.line(f"macro-F1 after retraining: {result.after}")
    estimate, labelled = (result.fired.get(n) for n in (module.ESTIMATE_ALERT, module.F1_ALERT))
    out.line(
        f"predictions since the drift began until the alert: estimated-F1 {estimate}, "
        f"labelled-F1 {labelled} (labels {args.label_lag} predictions late)"
    )
    ok = result.run is not None and result.run["status"] == "succeeded" and result.estimate_first
    return EXIT_OK if ok else EXIT_FAIL


def _add_taxi(sub: Any) -> None:
    taxi = sub.add_parser(
        "taxi",
        help="rides at a rate while NATS is killed and restarted; every ride's results counted",
        description="Post rides to the backend at --rate for --seconds, SIGKILL NATS at "
        "--kill-at (the supervisor of `modelfleet up` starts it again), then wait until every "
        "ride has its tip, cost and dynamic duration. Exit 1 when a ride is lost.",
    )
    taxi.add_argument("--url", help="backend URL (default: the local stack's)")
    taxi.add_argument("--rate", type=float, default=10.0, help="rides per second (10)")
    taxi.add_argument("--seconds", type=float, default=30.0, help="seconds of rides (30)")
    taxi.add_argument(
        "--kill-at", type=float, help="second of the stream NATS is killed at (a third of it)"
    )
    taxi.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds after the last ride for every result to arrive (120)",
    )
    taxi.set_defaults(func=cmd_demo_taxi)


def _add_chat(sub: Any) -> None:
    chat = sub.add_parser(
        "chat",
        help="upload a manual, ask about it (cited answer), then a catalogue question",
        description="Upload a generated product manual (PDF), ask a question one of its pages "
        "answers and check that the answer cites it, then ask for the cheapest product of the "
        "catalogue's largest brand and check it against the products table. Exit 1 when a step "
        "fails.",
    )
    chat.add_argument("--url", help="chatbot URL (default: the local stack's)")
    chat.set_defaults(func=cmd_demo_chat)


def _add_chain(sub: Any) -> None:
    chain = sub.add_parser(
        "chain",
        help="rides through location -> sensor -> duration: in budget, the better one later",
        description="Post rides to the backend (whose chain calls the location and sensor "
        "services, ~0.5 s and ~2 s, under a 2 s budget): print each first answer and its time, "
        "then the sensor-aware duration arriving over the ride's SSE stream. Exit 1 when a first "
        "answer missed the budget or a sensor-aware duration did not arrive.",
    )
    chain.add_argument("--url", help="backend URL (default: the local stack's)")
    chain.add_argument("--rides", type=int, default=5, help="rides to post (5)")
    chain.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait per sensor-aware duration"
    )
    chain.set_defaults(func=cmd_demo_chain)


def _add_drift(sub: Any) -> None:
    drift = sub.add_parser(
        "drift", help="shifted products -> F1 falls -> alert -> retraining -> F1 recovers"
    )
    drift.add_argument("--url", help="classifier URL (default: the local stack's)")
    drift.add_argument(
        "--products",
        type=int,
        default=550,
        help="labelled products in the window before the drift, and after retraining",
    )
    drift.add_argument(
        "--label-lag",
        type=int,
        default=500,
        help="feedback arrives this many predictions after its prediction",
    )
    drift.add_argument(
        "--prometheus",
        help="a Prometheus evaluating the project's rules; the demo counts predictions until "
        "each alert fires there (default: the local stack's, else the rules' conditions on the "
        "gauges)",
    )
    drift.add_argument(
        "--wait-for-alert",
        type=float,
        default=0.0,
        help="seconds to wait for Prometheus + Alertmanager to start the run (0: send "
        "Alertmanager's notification to /v1/alerts directly, as under `make up`)",
    )
    drift.add_argument("--timeout", type=float, default=900.0, help="seconds for the run")
    drift.set_defaults(func=cmd_demo_drift)


def _add_rollout(sub: Any) -> None:
    rollout = sub.add_parser(
        "rollout", help="canary (aborted, promoted), A/B, shadow, blue/green, rolling"
    )
    rollout.set_defaults(func=cmd_demo_rollout)


#: the scenarios in the order `modelfleet demo --help` lists them
SCENARIOS: tuple[Callable[[Any], None], ...] = (
    _add_taxi,
    _add_chain,
    _add_chat,
    _add_drift,
    _add_rollout,
)


def add_parser(sub: Any) -> None:
    """Add ``demo`` and its scenarios to the CLI's sub-parsers."""
    demo = sub.add_parser("demo", help="one story per scenario against a running stack")
    scenarios = demo.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for add in SCENARIOS:
        add(scenarios)
