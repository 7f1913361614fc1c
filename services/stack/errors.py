"""The errors of the local stack, importable without its process machinery.

The console script (services/cli) catches them around every command; in an image, where the
local stack's extra (psutil, the servers) is not installed, that import must stay light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.stack.runfiles import RunRecord


class StackError(Exception):
    """Base class of the errors of the local stack."""


class ComponentFailed(StackError):
    """A component could not start or become ready (reason only; the supervisor adds logs)."""


class StartupError(StackError):
    """`Stack.start` failed: names the component, its log file and the last log lines."""

    def __init__(self, component: str, *, reason: str, log_file: Path, log_tail: str) -> None:
        self.component = component
        self.reason = reason
        self.log_file = log_file
        self.log_tail = log_tail
        super().__init__(
            f"{component} failed to start: {reason}\n"
            f"log file: {log_file}\n"
            f"--- last lines of {log_file.name} ---\n{log_tail}"
        )


class PortInUseError(StackError):
    """A port the stack needs is taken by a process the stack did not start."""

    def __init__(self, *, component: str, port: int, setting: str, host: str) -> None:
        self.component = component
        self.port = port
        self.setting = setting
        env = f"MODELFLEET_{setting.upper()}"
        super().__init__(
            f"port {port} on {host} ({component}, setting {setting}) is already in use by "
            f"another process; stop it or set {env} to a free port"
        )


class AlreadyRunningError(StackError):
    """Components of this home are already running (live run files)."""

    def __init__(self, records: list[RunRecord], *, home: Path) -> None:
        self.records = records
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in records)
        super().__init__(
            f"already running from {home}: {names}; use `modelfleet status` or "
            "`modelfleet down` first"
        )
