"""Unit tests of the stack's process helpers (psutil) against real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.stack import procs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
#: Starts a sleeper, prints its pid, exits: the sleeper is an orphan of the same process group.
ORPHAN = f"import subprocess; print(subprocess.Popen({SLEEPER!r}).pid, flush=True)"
#: A child that starts a grandchild and an orphan (printing their pids), then sleeps.
PARENT = [
    sys.executable,
    "-c",
    "import subprocess, sys, time; "
    f"p = subprocess.Popen({SLEEPER!r}); print(p.pid, flush=True); "
    f"subprocess.run([sys.executable, '-c', {ORPHAN!r}], check=True); "
    "print('ready', flush=True); time.sleep(60)",
]


def _stat_ticks(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rfind(")") + 2 :].split()[19])


def test_proc_info_is_the_kernel_view() -> None:
    me = os.getpid()
    info = procs.proc_info(me)
    assert info is not None and info.alive
    assert (info.pid, info.ppid, info.pgid) == (me, os.getppid(), os.getpgid(me))
    assert info.start_ticks == _stat_ticks(me)  # the unit run files store
    assert procs.is_alive(me, info.start_ticks)
    assert not procs.is_alive(me, info.start_ticks + 1)  # a recycled pid
    assert procs.proc_info(0) is None and procs.proc_info(-1) is None
    assert me in {p.pid for p in procs.iter_procs()}


def test_cmdline_exe_and_maps_of_a_process() -> None:
    me = os.getpid()
    assert procs.cmdline(me) == sys.orig_argv
    assert procs.exe(me) == os.path.realpath(sys.executable)
    prefix = str(Path(os.path.realpath(sys.executable)).parent.parent)
    assert procs.mapped_files(me, prefix)
    assert procs.mapped_files(me, "/no/such/prefix") == set()


def test_family_finds_descendants_and_the_group_then_they_are_killed() -> None:
    child = subprocess.Popen(PARENT, stdout=subprocess.PIPE, start_new_session=True, text=True)
    assert child.stdout is not None
    with child, child.stdout:
        try:
            grandchild = int(child.stdout.readline())
            orphan = int(child.stdout.readline())  # same group, no longer a descendant
            assert child.stdout.readline() == "ready\n"  # the orphan's parent has exited
            assert procs.family(child.pid) == {child.pid, grandchild}
            assert procs.family(child.pid, pgid=child.pid) == {child.pid, grandchild, orphan}
            assert "time.sleep(60)" in procs.cmdline(grandchild)[-1]
            assert procs.proc_info(orphan) is not None
            procs.send_signal([child.pid, grandchild, orphan], signal.SIGKILL)
            assert procs.wait_gone([grandchild, orphan], deadline=time.monotonic() + 10) == set()
        finally:
            procs.send_signal(procs.family(child.pid, pgid=child.pid), signal.SIGKILL)
            child.kill()


def test_gone_and_zombie_processes() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while (info := procs.proc_info(proc.pid)) is not None and info.alive:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert info is not None and not info.alive  # a zombie: exited, not reaped
    assert not procs.is_alive(proc.pid)
    assert procs.cmdline(proc.pid) == [] and procs.exe(proc.pid) is None
    assert procs.mapped_files(proc.pid, "/") == set()
    assert procs.family(proc.pid) == set()
    assert procs.reap_own_zombie(proc.pid)
    assert procs.proc_info(proc.pid) is None
    assert procs.cmdline(proc.pid) == [] and procs.exe(proc.pid) is None
    assert procs.wait_gone([proc.pid], deadline=time.monotonic()) == set()
    procs.send_signal([proc.pid], signal.SIGTERM)  # gone: ignored
    proc.wait()  # Popen copes with a child reaped elsewhere
