"""``modelfleet train classifier`` (alias ``retrain``): retrain, gate, load into Triton."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from services.cli.output import EXIT_FAIL, EXIT_OK, Output
from services.cli.servers import job_server_urls
from services.stack import StackSettings


def cmd_train(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet train classifier`: retrain (catalogue + feedback), gate, load into Triton."""
    from services.jobs import classifier_retrain as module

    # A flag given wins; else CLASSIFIER_RETRAIN_SEED / _ROWS / _MIN_GAIN (a pod's ConfigMap),
    # else RetrainSettings' defaults.
    flags = {"seed": args.seed, "rows": args.rows, "min_gain": args.min_gain}
    overrides: dict[str, Any] = {name: value for name, value in flags.items() if value is not None}
    overrides.update(job_server_urls(settings))
    job_settings = module.RetrainSettings(log_json=False, **overrides)
    report = asyncio.run(
        module.run_retrain(
            settings=job_settings,
            repo_dir=settings.paths.model_repository,
            catalogue_path=args.data,
            say=out.line,
        )
    )
    outcome = report.outcome
    serving = "-" if outcome.serving_macro_f1 is None else f"{outcome.serving_macro_f1:.4f}"
    out.line(
        f"run {report.run_id}: {report.status}; candidate macro-F1 "
        f"{outcome.candidate_macro_f1:.4f}, serving version {outcome.serving_version} on the "
        f"same test set {serving}"
    )
    return EXIT_OK if report.status in ("serving", "rejected") else EXIT_FAIL


def add_parser(sub: Any) -> None:
    """Add ``train`` (alias ``retrain``) to the CLI's sub-parsers."""
    train = sub.add_parser(
        "train",
        aliases=["retrain"],
        help="retrain a model and roll it out without downtime (alias: retrain)",
    )
    train.add_argument("model", choices=["classifier"])
    train.add_argument(
        "--seed", type=int, help="seed of the catalogue and split (default 43, or the env's)"
    )
    train.add_argument("--rows", type=int, help="catalogue products (default 5000, or the env's)")
    train.add_argument(
        "--data", "--catalogue", dest="data", type=Path, help="real catalogue (JSON lines/CSV)"
    )
    train.add_argument(
        "--min-gain", type=float, help="macro-F1 the candidate must gain to serve (default 0)"
    )
    train.set_defaults(func=cmd_train)
