"""``modelfleet demo drift|rollout``: a scenario against a running stack (services/jobs)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.cli.output import EXIT_FAIL, EXIT_OK, Output
from services.stack import StackSettings


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


def cmd_demo(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet demo drift|rollout`: a scenario against a running stack."""
    if args.scenario == "rollout":
        return cmd_demo_rollout(out, settings, args)
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


def add_parser(sub: Any) -> None:
    """Add ``demo`` to the CLI's sub-parsers."""
    demo = sub.add_parser("demo", help="scenarios against a running stack")
    demo.add_argument("scenario", choices=["drift", "rollout"])
    demo.add_argument("--url", help="classifier URL (default: the local stack's)")
    demo.add_argument(
        "--products",
        type=int,
        default=550,
        help="drift: labelled products in the window before the drift, and after retraining",
    )
    demo.add_argument(
        "--label-lag",
        type=int,
        default=500,
        help="drift: feedback arrives this many predictions after its prediction",
    )
    demo.add_argument(
        "--prometheus",
        help="drift: a Prometheus evaluating the project's rules; the demo counts predictions "
        "until each alert fires there (default: the local stack's, else the rules' conditions "
        "on the gauges)",
    )
    demo.add_argument(
        "--wait-for-alert",
        type=float,
        default=0.0,
        help="seconds to wait for Prometheus + Alertmanager to start the run (0: send "
        "Alertmanager's notification to /v1/alerts directly, as under `make up`)",
    )
    demo.add_argument("--timeout", type=float, default=900.0, help="seconds for the run")
    demo.set_defaults(func=cmd_demo)
