"""Low-level process helpers for the local stack (psutil, local extra; Linux only).

Used by the components to tell a live process from a dead or recycled pid, to find every
process of a component (its process group and descendants, including Triton's Python stubs
that outlive a SIGKILLed server), to terminate them with deadlines, to check ports and to read
the tail of a log file. psutil reads the processes (``/proc`` underneath); a process's identity
is its start time in clock ticks since boot, the number run files have always stored.
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

import psutil

log = logging.getLogger("modelfleet.stack")

#: Clock ticks per second: the unit of ``start_ticks`` (field 22 of /proc/PID/stat).
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError)


@dataclass(frozen=True)
class ProcInfo:
    """What the stack cares about of one process (psutil's status names in ``state``)."""

    pid: int
    state: str
    ppid: int
    pgid: int
    start_ticks: int

    @property
    def alive(self) -> bool:
        """False for zombies (exited, not yet reaped) and dead tasks."""
        return self.state not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def proc_info(pid: int) -> ProcInfo | None:
    """The process's state, parent, group and start; None when it does not exist (any more)."""
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            # create_time() is boot time + start ticks / CLK_TCK: back to the ticks.
            ticks = round((proc.create_time() - psutil.boot_time()) * _CLOCK_TICKS)
            return ProcInfo(
                pid=pid,
                state=proc.status(),
                ppid=proc.ppid(),
                pgid=os.getpgid(pid),
                start_ticks=ticks,
            )
    except _GONE:
        return None


def iter_procs() -> Iterator[ProcInfo]:
    """Every process visible to this one."""
    for pid in psutil.pids():
        info = proc_info(pid)
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
    """argv of PID ([] when gone, a zombie or unreadable)."""
    try:
        return psutil.Process(pid).cmdline() if pid > 0 else []
    except _GONE:
        return []


def exe(pid: int) -> str | None:
    """Resolved executable of PID (None for zombies, kernel threads, gone processes)."""
    try:
        return (psutil.Process(pid).exe() or None) if pid > 0 else None
    except _GONE:
        return None


def mapped_files(pid: int, prefix: str) -> set[str]:
    """Paths starting with `prefix` that PID has mapped (e.g. shared memory regions)."""
    try:
        regions = psutil.Process(pid).memory_maps(grouped=True) if pid > 0 else []
    except _GONE:
        return set()
    return {
        region.path.removesuffix(" (deleted)")
        for region in regions
        if region.path.startswith(prefix)
    }


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
