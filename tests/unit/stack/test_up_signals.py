"""`modelfleet up` and a stop signal in each phase (build, start, ingest, serve): everything that
was started is stopped and the exit code is 128 + the signal, on a fake stack (the real stack is
signalled in tests/integration/test_supervision.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services import cli
from services.cli import stack as stack_cli
from services.cli.interrupts import Interrupted, stop_on_signals
from services.stack import runfiles, supervisor
from services.stack.component import ComponentStatus
from services.stack.settings import StackSettings


def _signal_self(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)


class FakeStack:
    """Records what `up` asks of the stack; `hooks[phase]` runs in that phase."""

    instances: list[FakeStack] = []
    hooks: dict[str, Callable[[], None]] = {}

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.names = ["postgres", "chatbot"]
        self.startup_seconds: dict[str, float] = {}
        self.calls: list[str] = []
        FakeStack.instances.append(self)

    def running(self) -> list[Any]:
        return []

    def clean_stale(self) -> list[str]:
        return []

    def check_ports(self) -> None:
        pass

    def start(self) -> list[ComponentStatus]:
        self.calls.append("start")
        FakeStack.hooks.get("start", lambda: None)()
        return []

    def stop(self) -> list[str]:
        self.calls.append("stop")
        return ["chatbot", "postgres"]

    def supervisor(self, say: Callable[[str], None]) -> Any:
        fake = self

        class Ticks:
            def tick(self) -> None:
                fake.calls.append("tick")
                FakeStack.hooks.get("serve", lambda: None)()

        return Ticks()

    def scheduler(self, say: Callable[[str], None]) -> Any:
        fake = self

        class NoJobs:  # the batch jobs' scheduler (tests/unit/stack/test_schedule.py)
            jobs: list[Any] = []

            def next_runs(self) -> dict[str, Any]:
                return {}

            def tick(self) -> None:
                pass

            def stop(self) -> None:
                fake.calls.append("stop jobs")

        return NoJobs()


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch) -> type[FakeStack]:
    FakeStack.instances, FakeStack.hooks = [], {}
    monkeypatch.setattr(supervisor, "Stack", FakeStack)
    monkeypatch.setattr(
        stack_cli, "_build", lambda *a, **k: FakeStack.hooks.get("build", lambda: None)()
    )
    monkeypatch.setattr(
        stack_cli,
        "_ingest_catalogue",
        lambda *a, **k: FakeStack.hooks.get("ingest", lambda: None)(),
    )
    return FakeStack


@pytest.mark.parametrize(
    ("phase", "sig", "words"),
    [
        ("build", signal.SIGTERM, "SIGTERM while building the models"),
        ("start", signal.SIGINT, "SIGINT while starting the stack"),
        ("ingest", signal.SIGHUP, "SIGHUP while ingesting the catalogue"),
        ("ingest", signal.SIGTERM, "SIGTERM while ingesting the catalogue"),
        ("serve", signal.SIGHUP, "SIGHUP while serving"),
        ("serve", signal.SIGINT, "SIGINT while serving"),
    ],
)
def test_a_signal_in_any_phase_stops_everything_and_exits_non_zero(
    fake_stack: type[FakeStack],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    phase: str,
    sig: signal.Signals,
    words: str,
) -> None:
    fake_stack.hooks[phase] = lambda: _signal_self(sig)
    previous = signal.getsignal(sig)

    assert cli.main(["--home", str(tmp_path), "up"]) == 128 + sig

    (stack,) = fake_stack.instances
    assert stack.calls[-1] == "stop"
    assert words in capsys.readouterr().err
    assert runfiles.read(tmp_path.absolute() / "run", "supervisor") is None  # own record gone
    assert signal.getsignal(sig) is previous  # handlers restored


def test_the_supervisor_record_says_the_phase(fake_stack: type[FakeStack], tmp_path: Path) -> None:
    seen: list[object] = []

    def look() -> None:
        record = runfiles.read(tmp_path.absolute() / "run", "supervisor")
        assert record is not None and record.pid == os.getpid()
        seen.append(record.meta)
        if len(seen) == 2:
            _signal_self(signal.SIGTERM)

    fake_stack.hooks = {"ingest": look, "serve": look}
    assert cli.main(["--home", str(tmp_path), "up", "--no-build"]) == 128 + signal.SIGTERM
    assert seen == [
        {"mode": "foreground", "phase": "ingest"},
        {"mode": "foreground", "phase": "serve"},
    ]


def test_a_failure_after_the_start_stops_the_stack(
    fake_stack: type[FakeStack], tmp_path: Path
) -> None:
    def fail() -> None:
        raise RuntimeError("supervisor bug")

    fake_stack.hooks["serve"] = fail
    with pytest.raises(RuntimeError):
        cli.main(["--home", str(tmp_path), "up", "--no-build"])
    assert fake_stack.instances[0].calls[-1] == "stop"


def test_the_first_signal_interrupts_and_later_ones_are_ignored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals():
        with pytest.raises(Interrupted) as caught:
            _signal_self(signal.SIGHUP)
            signal.pause()  # not reached: the handler raises
        assert caught.value.exit_code == 129 and caught.value.signal_name == "SIGHUP"
        _signal_self(signal.SIGTERM)  # ignored while the clean-up runs
        _signal_self(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
