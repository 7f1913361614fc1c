"""``modelfleet rollout ...``: the sub-commands of services/rollout/commands.py, registered."""

from __future__ import annotations

import argparse
from typing import Any

from services.cli.output import Output
from services.rollout import commands as rollout_commands
from services.stack import StackSettings


def cmd_rollout(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet rollout ...`: services/rollout/commands.py."""
    return rollout_commands.run(out, settings.paths.home, args)


def add_parser(sub: Any) -> None:
    """Add ``rollout`` and its sub-commands to the CLI's sub-parsers."""
    rollout_commands.add_parser(sub).set_defaults(func=cmd_rollout)
