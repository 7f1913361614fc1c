"""``modelfleet models build``: train and export the models into the model repository."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from services.cli.output import EXIT_OK, Output
from services.stack import StackSettings


def build_repository(
    out: Output,
    settings: StackSettings,
    *,
    seed: int,
    rows: int | None,
    data: Path | None = None,
    force: bool = False,
) -> None:
    """Call models.repository.build_repository(home/model-repository, seed=..., rows=...)."""
    from models.repository import DEFAULT_TRIPS, build_repository

    target = settings.paths.model_repository
    out.line(f"building the model repository in {target} ...")
    result = build_repository(
        target, seed=seed, rows=DEFAULT_TRIPS if rows is None else rows, data_path=data, force=force
    )
    state = "built" if result.built else "already up to date"
    out.line(f"model {result.model} version {result.version} {state}: {result.path}")


def cmd_models_build(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet models build`."""
    build_repository(
        out, settings, seed=args.seed, rows=args.rows, data=args.data, force=args.force
    )
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Add ``models`` and its sub-commands to the CLI's sub-parsers."""
    models = sub.add_parser("models", help="model repository commands")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    build = models_sub.add_parser("build", help="train and export into the model repository")
    build.add_argument("--seed", type=int, default=42)
    build.add_argument("--rows", type=int)
    build.add_argument("--data", type=Path, help="real NYC TLC parquet/CSV file or folder")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.set_defaults(func=cmd_models_build)
