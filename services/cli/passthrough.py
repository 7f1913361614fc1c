"""``modelfleet worker`` and ``modelfleet bench``: every argument goes to another entry point's
own parser (``python -m services.workers``, bench/run.py), ``--help`` included."""

from __future__ import annotations

import argparse
import os
from typing import Any

from services.cli.output import EXIT_OK, Output
from services.stack import StackSettings


def cmd_worker(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet worker KIND [--host H] [--port P]`: services.workers.__main__.main(ARGS)."""
    from services.workers import __main__ as module

    result = module.main(list(args.args))
    return result if isinstance(result, int) else EXIT_OK


def cmd_bench(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet bench [ARGS...]`: bench.run.main(ARGS)."""
    from bench import run as module

    os.environ["MODELFLEET_HOME"] = str(settings.home)  # bench reads StackSettings() itself
    result = module.main(list(args.args))
    return result if isinstance(result, int) else EXIT_OK


def add_parser(sub: Any) -> None:
    """Add ``worker`` and ``bench`` to the CLI's sub-parsers."""
    # Same pass-through as bench: `modelfleet worker tip --port 8010` = python -m services.workers.
    worker = sub.add_parser(
        "worker",
        help="run one streaming worker: tip, cost, dynamic-duration, sensor-duration",
        add_help=False,
        prefix_chars="\0",
    )
    worker.add_argument("args", nargs=argparse.REMAINDER, help="KIND [--host H] [--port P]")
    worker.set_defaults(func=cmd_worker)

    # prefix_chars="\0": every argument, --help included, goes to bench.run's own parser.
    bench = sub.add_parser(
        "bench", help="run the benchmarks (bench/run.py)", add_help=False, prefix_chars="\0"
    )
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmarks")
    bench.set_defaults(func=cmd_bench)
