"""``python -m models.ride_duration``: build the ride-duration version of a Triton repository.

Example: ``python -m models.ride_duration --repo .modelfleet/model-repository --seed 42
--rows 200000 [--data yellow_tripdata_2024-01.parquet] [--force]``. Prints the build result as
JSON on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from models.repository import build_repository


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, build, print the result; returns the exit code."""
    default_repo = Path(os.environ.get("MODELFLEET_HOME", ".modelfleet")) / "model-repository"
    parser = argparse.ArgumentParser(prog="python -m models.ride_duration", description=__doc__)
    parser.add_argument("--repo", type=Path, default=default_repo, help="model repository dir")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rows", type=int, default=200_000, help="trips to generate (or cap)")
    parser.add_argument("--data", type=Path, default=None, help="real TLC parquet/CSV file/dir")
    parser.add_argument("--force", action="store_true", help="build even if up to date")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(message + "\n")

    logging.basicConfig(level=logging.INFO)
    result = build_repository(
        args.repo, seed=args.seed, rows=args.rows, data_path=args.data, force=args.force, log=log
    )
    summary = {
        "model": result.model,
        "version": result.version,
        "built": result.built,
        "path": str(result.path),
        "metrics": result.card.get("metrics"),
    }
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
