"""What every ``modelfleet`` command shares: the printer, the exit codes, a command's signature."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from services.stack import StackSettings

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class Output:
    """Everything the CLI prints goes through here (stdout for results, stderr for errors)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._err = err if err is not None else sys.stderr
        self._terminal_may_be_gone = False

    def terminal_may_be_gone(self) -> None:
        """After a SIGHUP: the terminal may be closed, so a failed write is dropped instead of
        cutting short what the command still has to do (stopping the stack)."""
        self._terminal_may_be_gone = True

    def _print(self, text: str, stream: TextIO) -> None:
        try:
            print(text, file=stream, flush=True)
        except OSError:
            if not self._terminal_may_be_gone:
                raise

    def line(self, text: str = "") -> None:
        """One line of normal output."""
        self._print(text, self._out)

    def error(self, text: str) -> None:
        """One (possibly multi-line) error message."""
        self._print(f"modelfleet: {text}", self._err)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A plain aligned table."""
        widths = [len(h) for h in headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        for row in (headers, *rows):
            self.line(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )


#: a sub-command's handler (``set_defaults(func=...)``): print through Output, return the exit code
Command = Callable[[Output, StackSettings, argparse.Namespace], int]
