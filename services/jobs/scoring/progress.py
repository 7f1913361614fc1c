"""A one-line progress bar for batch jobs, drawn only when the output is a terminal.

bar = Progress(total=40_000, done=12_000, out=sys.stdout)   # 12,000 rows resumed
bar.advance(2_000)
bar.close()
"""

from __future__ import annotations

import time
from typing import Final, TextIO

_WIDTH: Final = 30
_MIN_INTERVAL_S: Final = 0.2


def render_bar(done: int, total: int, rows_per_s: float, *, width: int = _WIDTH) -> str:
    """``[#####.....]  12,000/40,000 rows  30%  8,000 rows/s``."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(round(fraction * width))
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} rows "
        f"{fraction:4.0%}  {rows_per_s:,.0f} rows/s"
    )


class Progress:
    """Redraws at most every 0.2 s; does nothing when ``out`` is not a TTY (logs, pipes, pods)."""

    def __init__(self, *, total: int, done: int, out: TextIO) -> None:
        self.total, self.done, self.out = total, done, out
        self.enabled = out.isatty()
        self._started = time.monotonic()
        self._scored = 0
        self._drawn = 0.0

    def advance(self, rows: int) -> None:
        self.done += rows
        self._scored += rows
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= _MIN_INTERVAL_S or self.done >= self.total):
            self._drawn = now
            rate = self._scored / max(now - self._started, 1e-9)
            self.out.write("\r" + render_bar(self.done, self.total, rate))
            self.out.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.out.write("\n")
            self.out.flush()
