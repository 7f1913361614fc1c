"""Low-level process helpers for the local stack (Linux /proc based, no psutil).

Used by the components to tell a live process from a dead or recycled pid, to find every
process of a component (its process group and descendants, including Triton's Python stubs
that outlive a SIGKILLed server), to terminate them with deadlines, to check ports and to read
the tail of a log file.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("modelfleet.stack")

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    """One row of /proc/PID/stat that the stack cares about."""

    pid: int
    state: str
    ppid: int
    pgid: int
    start_ticks: int

    @property
    def alive(self) -> bool:
        """False for zombies (exited, not yet reaped) and dead tasks."""
        return self.state not in ("Z", "X", "x")


def proc_info(pid: int) -> ProcInfo | None:
    """Parse /proc/PID/stat; None when the process does not exist (any more)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2 :].split()
    return ProcInfo(
        pid=pid,
        state=rest[0],
        ppid=int(rest[1]),
        pgid=int(rest[2]),
        start_ticks=int(rest[19]),
    )


def iter_procs() -> Iterator[ProcInfo]:
    """Every process visible in /proc."""
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info is not None:
                yield info


def is_alive(pid: int, start_ticks: int | None = None) -> bool:
    """True when PID runs (not a zombie) and, if given, started at `start_ticks`.

    Comparing the start time guards against a pid recycled by an unrelated process.
    """
    info = proc_info(pid)
    if info is None or not info.alive:
        return False
    return start_ticks is None or info.start_ticks == start_ticks


def reap_own_zombie(pid: int) -> bool:
    """Reap PID if it is an exited child of this very process; True when reaped.

    A zombie still "exists" for kill(pid, 0): PostgreSQL then refuses to start on a data dir
    whose postmaster.pid names it. Another Stack object in this process (or a test that killed
    a component) may hold that child; subprocess.Popen copes with a child reaped elsewhere.
    """
    info = proc_info(pid)
    if info is None or info.alive or info.ppid != os.getpid():
        return False
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return reaped == pid


def cmdline(pid: int) -> list[str]:
    """argv of PID ([] when gone or unreadable)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def exe(pid: int) -> str | None:
    """Resolved executable of PID (None for zombies, kernel threads, gone processes)."""
    try:
        return os.readlink(_PROC / str(pid) / "exe")
    except OSError:
        return None


def mapped_files(pid: int, prefix: str) -> set[str]:
    """Paths starting with `prefix` that PID has mapped (e.g. shared memory regions)."""
    try:
        lines = (_PROC / str(pid) / "maps").read_text().splitlines()
    except OSError:
        return set()
    found: set[str] = set()
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith(prefix):
            found.add(parts[5].removesuffix(" (deleted)"))
    return found


def family(pid: int, *, pgid: int | None = None) -> set[int]:
    """PID, all its live descendants and all live members of process group `pgid`."""
    procs = [p for p in iter_procs() if p.alive]
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    if is_alive(pid):
        found.add(pid)
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    if pgid is not None:
        found.update(p.pid for p in procs if p.pgid == pgid)
    return found


def send_signal(pids: Iterable[int], sig: signal.Signals) -> None:
    """Send `sig` to each pid, ignoring the ones that are already gone."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(pids: Iterable[int], *, deadline: float) -> set[int]:
    """Poll until every pid has exited (zombies count as exited); return the survivors."""
    remaining = set(pids)
    while True:
        remaining = {pid for pid in remaining if is_alive(pid)}
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.05)


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on (or holds) host:port.

    Binds with SO_REUSEADDR like the servers do, so sockets in TIME_WAIT left by a previous
    run of the stack do not count as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def tail(path: Path, lines: int = 20, *, offset: int = 0) -> str:
    """The last `lines` lines of a log file (from byte `offset` on), '' if it does not exist."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(offset, size - 64 * 1024)
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
