"""Signals that end a long-running command (`modelfleet up`): SIGINT, SIGTERM and SIGHUP all
raise `Interrupted` in the main thread, whatever phase the command is in, so one `except`
stops everything that was started.

The first signal also makes further ones ignored until the block ends: the clean-up it starts
(stopping every component, bounded by their stop timeouts) is not cut short by a second Ctrl-C
or by the SIGHUP of a closing terminal that follows a SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: the signals `modelfleet up` answers by stopping the stack
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal arrived (a BaseException, like KeyboardInterrupt, so that `except
    Exception` in the interrupted code does not swallow it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(self.signal_name)

    @property
    def signal_name(self) -> str:
        """SIGINT, SIGTERM or SIGHUP."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended."""
        return 128 + self.signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, each of STOP_SIGNALS raises Interrupted (once; then they are ignored)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
