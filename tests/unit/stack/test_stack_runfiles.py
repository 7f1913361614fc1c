"""Unit tests of run files and the /proc helpers behind `status` and `down`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.stack import procs, runfiles
from services.stack.runfiles import RunRecord


def _record(name: str, pid: int, start_ticks: int | None) -> RunRecord:
    return RunRecord(
        name=name,
        pid=pid,
        pgid=pid,
        url="nats://127.0.0.1:1",
        started_at=runfiles.now_iso(),
        log_file="/tmp/x.log",
        start_ticks=start_ticks,
        extra_urls={"monitor": "http://127.0.0.1:2"},
        meta={"models": ["a", "b"]},
    )


def _own_ticks() -> int:
    info = procs.proc_info(procs.os.getpid())
    assert info is not None
    return info.start_ticks


def test_roundtrip(tmp_path: Path) -> None:
    record = _record("nats", 123, 456)
    path = runfiles.write(tmp_path / "run", record)
    assert path == tmp_path / "run" / "nats.json"
    assert runfiles.read(tmp_path / "run", "nats") == record
    assert [r.name for r in runfiles.read_all(tmp_path / "run")] == ["nats"]
    assert not list((tmp_path / "run").glob("*.tmp"))
    runfiles.remove(tmp_path / "run", "nats")
    assert runfiles.read(tmp_path / "run", "nats") is None


def test_malformed_and_missing_files_are_ignored(tmp_path: Path) -> None:
    assert runfiles.read_all(tmp_path / "absent") == []
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[]")
    runfiles.write(tmp_path, _record("ok", 1, None))
    assert [r.name for r in runfiles.read_all(tmp_path)] == ["ok"]


def test_live_checks_pid_and_start_time() -> None:
    me = procs.os.getpid()
    assert _record("me", me, _own_ticks()).live
    assert _record("me", me, None).live
    # Same pid, other start time: a recycled pid must not count as our component.
    assert not _record("me", me, _own_ticks() + 1).live


def test_exited_and_zombie_processes_are_not_live() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = procs.proc_info(child.pid)
    deadline = procs.time.monotonic() + 10
    assert procs.wait_gone([child.pid], deadline=deadline) == set()  # zombie counts as gone
    assert not procs.is_alive(child.pid)
    child.wait(timeout=10)
    assert ticks is None or not _record("c", child.pid, ticks.start_ticks).live


def test_family_finds_descendants() -> None:
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = procs.time.monotonic() + 10
        family: set[int] = set()
        while len(family) < 2 and procs.time.monotonic() < deadline:
            family = procs.family(parent.pid, pgid=parent.pid)
        assert parent.pid in family and len(family) == 2
    finally:
        procs.send_signal(procs.family(parent.pid, pgid=parent.pid), procs.signal.SIGKILL)
        parent.wait(timeout=10)


def test_tail_reads_last_lines_after_offset(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("old run\n" + "".join(f"line {i}\n" for i in range(30)))
    assert procs.tail(log, 3) == "line 27\nline 28\nline 29"
    assert procs.tail(log, 50, offset=len("old run\n")).splitlines()[0] == "line 0"
    assert procs.tail(tmp_path / "none.log") == ""
