"""`modelfleet demo taxi`, `chain` and `chat` run as a user runs them: the console script
against a stack started with `modelfleet up --detach` (its own home on free ports, the models the
session built, no catalogue ingested), exit codes and printed counts checked.

- taxi: rides at 5/s for 9 s, NATS killed with SIGKILL at 3 s and started again by the
  supervisor; exit 0, every ride posted is accepted and has its three results, some were posted
  while NATS was down, and `modelfleet status` shows NATS's restart (exit code 137).
- chat: without a catalogue it exits 1 naming the cure, after the manual's part of the story
  went as told; after `modelfleet ingest` it exits 0 with the catalogue answer checked.
- taxi against a home where nothing runs: exit 1 and what to start.
- chain: three rides through location (~0.5 s) and sensor (~2 s): every first answer within
  the 2 s budget, every sensor-aware duration over SSE.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.repository import BuildResult
from services.stack.settings import StackSettings
from services.stack.testing import settings_for_tests
from tests.integration.test_supervision import (
    UP_TIMEOUT_S,
    _assert_nothing_left,
    _env,
    _modelfleet,
    _stack_home,
    _stack_pids,
    _status,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

WORKERS = ("worker-tip", "worker-cost", "worker-dynamic-duration")


def run(
    settings: StackSettings, *args: str, timeout: float = 600.0
) -> subprocess.CompletedProcess[str]:
    """`modelfleet ARGS` in the stack's environment; its exit code, stdout and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "-q", *args],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    print(f"$ modelfleet {' '.join(args)}  (exit {done.returncode})\n{done.stdout}{done.stderr}")
    return done


@pytest.fixture(scope="module")
def detached(
    tmp_path_factory: pytest.TempPathFactory,
    model_build: BuildResult,
    stack_settings: StackSettings,
) -> Iterator[StackSettings]:
    settings = _stack_home(tmp_path_factory.mktemp("demos"), stack_settings.paths.model_repository)
    out = _modelfleet(settings, "up", "--detach", "--no-build", "--no-ingest", timeout=UP_TIMEOUT_S)
    assert "running detached, supervised by pid" in out, out
    try:
        yield settings
    finally:
        pids = _stack_pids(settings)
        _modelfleet(settings, "down", timeout=300.0)
        _assert_nothing_left(settings, pids)


def test_demo_chain_answers_in_budget_and_the_sensor_aware_duration_follows(
    detached: StackSettings,
) -> None:
    # The stack's location and sensor services have the document's delays (0.5 s and 2 s).
    done = run(detached, "demo", "chain", "--rides", "3")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "first answers within 2 s: 3/3; sensor-aware durations arrived: 3/3" in out
    firsts = re.findall(r"first answer in ([0-9.]+) s: ([0-9.]+) min, (base|sensor-aware)", out)
    assert len(firsts) == 3 and all(float(seconds) <= 2.0 for seconds, _, _ in firsts)
    assert len(re.findall(r"sensor-aware duration [0-9.]+ min over SSE", out)) == 3


def test_demo_taxi_loses_no_ride_when_nats_is_killed(detached: StackSettings) -> None:
    before = _status(detached)["nats"]
    done = run(detached, "demo", "taxi", "--rate", "5", "--seconds", "9", "--kill-at", "3")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"SIGKILL to nats (pid {before['pid']})" in out
    counts = re.search(r"^posted (\d+) rides: (\d+) accepted", out, re.MULTILINE)
    assert counts is not None, out
    posted, accepted = int(counts[1]), int(counts[2])
    assert posted == accepted >= 40  # 5/s for 9 s: 45 planned
    during = re.search(r"^posted while NATS was down: (\d+)$", out, re.MULTILINE)
    assert during is not None and int(during[1]) > 0, out
    for worker in WORKERS:
        assert re.search(rf"^  {worker}\s+\w+\s+{posted}/{posted}$", out, re.MULTILINE), out
    assert f"complete: {posted}/{posted} rides with every result; lost 0" in out
    assert re.search(r"^NATS down \d+\.\d s; recovered \d+\.\d s after the kill", out, re.M), out
    after = _status(detached)["nats"]
    assert after["ready"] and after["pid"] != before["pid"], after
    assert after["restarts"] == before["restarts"] + 1 and after["last_exit_code"] == 137, after


def test_demo_chat_fails_without_the_catalogue_then_answers_both(detached: StackSettings) -> None:
    empty = run(detached, "demo", "chat")
    assert empty.returncode == 1, empty.stdout + empty.stderr
    assert "catalogue question: the catalogue is empty" in empty.stderr
    assert "`modelfleet ingest` loads it" in empty.stderr
    # The manual's part of the story does not need the catalogue: it went as told.
    assert "1. uploaded demo-manual-01.pdf (4 pages): ready" in empty.stdout
    assert (
        "   ok: the answer says" in empty.stdout and "cites demo-manual-01.pdf p. 2" in empty.stdout
    )

    ingest = run(detached, "ingest", "--rows", "500")
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr

    done = run(detached, "demo", "chat")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "(the same file was ingested before)" in out  # the upload is idempotent
    truth = re.search(r"^   (.+), \d+ products, the lowest price ([\d.]+) \((.+)\)$", out, re.M)
    assert truth is not None, out
    brand, lowest, cheapest = truth[1], truth[2], truth[3].split(", ")
    assert f"   Q: What is the cheapest {brand} product?" in out
    answer = re.search(
        rf"^   A: The cheapest of the {re.escape(brand)} is .+ at \$([\d,.]+) \((\S+)\)\.$",
        out,
        re.M,
    )
    assert answer is not None, out
    assert answer[1].replace(",", "") == lowest and answer[2] in cheapest
    assert re.search(rf"^   \[1\] product {answer[2]}: \"", out, re.MULTILINE), out
    assert f"   ok: answered from SQL: {answer[2]} at {lowest} is the lowest {brand} price" in out


def test_demo_taxi_on_a_home_where_nothing_runs_says_what_to_start(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path / "home")
    done = run(settings, "demo", "taxi", "--seconds", "3", timeout=60.0)
    assert done.returncode == 1
    assert "not running or not ready in" in done.stderr and "nats" in done.stderr
    assert "modelfleet up --detach" in done.stderr
    assert "posted" not in done.stdout  # nothing was sent
