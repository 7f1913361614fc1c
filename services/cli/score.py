"""``modelfleet score``: batch-score rides (Postgres) or a TLC file through Triton."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from services.cli.output import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK, Output
from services.cli.servers import job_server_urls
from services.stack import StackSettings


def cmd_score(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet score [--file PATH] [--run-id ID]`: batch scoring through Triton.

    Exit 0 when the run is complete, 2 on bad input (a clear message), 1 when a dependency fails.
    """
    from services.common.errors import ClientError, ModelfleetError
    from services.jobs.scoring import runner
    from services.jobs.scoring import settings as settings_module

    overrides: dict[str, Any] = dict(job_server_urls(settings))
    for field in ("models", "chunk_rows", "concurrency"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    try:
        job_settings = settings_module.ScoreSettings(log_json=False, **overrides)
        summary = asyncio.run(
            runner.run_score(
                settings=job_settings, file=args.file, run_id=args.run_id, say=out.line
            )
        )
    except ClientError as exc:
        out.error(exc.detail)
        return EXIT_BAD_INPUT
    except ModelfleetError as exc:
        out.error(f"{type(exc).__name__}: {exc.detail}")
        return EXIT_FAIL
    except ValueError as exc:  # pydantic ValidationError: a bad SCORE_* setting or option
        out.error(str(exc))
        return EXIT_BAD_INPUT
    for line in summary.lines():
        out.line(line)
    return EXIT_OK if summary.status == "done" else EXIT_FAIL


def add_parser(sub: Any) -> None:
    """Add ``score`` to the CLI's sub-parsers."""
    score = sub.add_parser(
        "score", help="batch-score rides (Postgres) or a TLC parquet/CSV file through Triton"
    )
    score.add_argument("--file", type=Path, help="TLC trips file or folder (default: new rides)")
    score.add_argument("--run-id", help="resume or start this run (default: resume the source's)")
    score.add_argument("--models", help="comma-separated models (default: $SCORE_MODELS)")
    score.add_argument("--chunk-rows", type=int, help="rows per chunk and transaction")
    score.add_argument("--concurrency", type=int, help="Triton requests in flight")
    score.set_defaults(func=cmd_score)
