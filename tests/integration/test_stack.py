"""Integration tests of the local stack: real PostgreSQL + pgvector, NATS JetStream and Triton.

One stack per module on free ports in a temporary home (never the default ports), with a tiny
Python-backend model (`y = 2 * x`). The last tests stop it, check that no process is left,
kill components with SIGKILL and restart on the same home.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from services.stack import StackSettings, procs
from services.stack.supervisor import Stack
from services.stack.testing import running_stack, settings_for_tests, write_double_model
from services.stack.triton import SHM_DIR, SHM_PREFIX, STUB_NAME

pytestmark = pytest.mark.integration

INFRA = ["postgres", "nats", "triton"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> StackSettings:
    settings = settings_for_tests(tmp_path_factory.mktemp("stack"), stop_timeout=10.0)
    write_double_model(settings.paths.model_repository)
    return settings


@pytest.fixture(scope="module")
def stack(settings: StackSettings) -> Iterator[Stack]:
    with running_stack(settings, INFRA) as stack:
        yield stack


def _stubs_of(pid: int) -> set[int]:
    return {p for p in procs.family(pid, pgid=pid) if Path(procs.cmdline(p)[0]).name == STUB_NAME}


def _shm_regions() -> set[str]:
    return {p.name for p in SHM_DIR.glob(f"{SHM_PREFIX}*")}


def test_every_component_is_ready(stack: Stack) -> None:
    statuses = {s.name: s for s in stack.status()}
    for name in INFRA:
        assert statuses[name].ready, name
        assert statuses[name].pid is not None
        assert (stack.paths.run / f"{name}.json").is_file()
        assert (stack.paths.logs / f"{name}.log").is_file()
    assert set(stack.startup_seconds) == set(INFRA)


async def test_postgres_has_pgvector(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.settings.database_url, timeout=10)
    try:
        names = {r["extname"] for r in await conn.fetch("select extname from pg_extension")}
        assert "vector" in names
        await conn.execute("create table if not exists kept (id int primary key, v vector(3))")
        await conn.execute("insert into kept values (1, '[1,2,3]') on conflict do nothing")
    finally:
        await conn.close(timeout=5)


async def test_jetstream_publish(stack: Stack) -> None:
    nc = await nats.connect(stack.settings.nats_url, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(name="STACKTEST", subjects=["stacktest.>"])
        ack = await js.publish("stacktest.hello", b"hi", headers={"Nats-Msg-Id": "one"})
        assert ack.stream == "STACKTEST" and ack.seq >= 1
    finally:
        await nc.close()


def test_triton_infers_over_http(stack: Stack) -> None:
    body = {"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP32", "data": [1.5, 21]}]}
    url = f"{stack.settings.triton_http_url}/v2/models/double/infer"
    response = httpx.post(url, json=body, timeout=10, trust_env=False)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [3.0, 42.0]


def test_stop_leaves_no_process_and_restart_reuses_data(stack: Stack) -> None:
    pids = {s.name: s.pid for s in stack.status() if s.pid is not None}
    assert set(INFRA) <= set(pids)
    triton_pid = pids["triton"]
    stubs = _stubs_of(triton_pid)
    assert stubs, "the Python backend stub of the test model should run"
    family = set()
    for pid in pids.values():
        family |= procs.family(pid, pgid=pid)

    assert set(stack.stop()) >= set(INFRA)
    assert not [p for p in family | stubs if procs.is_alive(p)]
    assert not list(stack.paths.run.glob("*.json"))
    assert all(s.pid is None and not s.ready for s in stack.status())

    initdb_marker = (stack.paths.postgres_data / "PG_VERSION").stat().st_mtime
    stack.start(INFRA)
    assert (stack.paths.postgres_data / "PG_VERSION").stat().st_mtime == initdb_marker
    assert "initdb" not in stack.component("postgres").log_path.read_text().split("starting")[-1]


async def test_data_survives_the_restart(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.settings.database_url, timeout=10)
    try:
        assert await conn.fetchval("select count(*) from kept") == 1
    finally:
        await conn.close(timeout=5)


def test_kill_9_then_down_from_another_stack_reaps_and_restarts(stack: Stack) -> None:
    """Like `kill -9` followed by `modelfleet down` and `up` in another process."""
    statuses = {s.name: s for s in stack.status()}
    triton_pid, pg_pid = statuses["triton"].pid, statuses["postgres"].pid
    assert triton_pid is not None and pg_pid is not None
    stubs = _stubs_of(triton_pid)
    our_regions = {a for p in stubs for a in procs.cmdline(p) if a.startswith(SHM_PREFIX)}
    assert our_regions
    os.kill(triton_pid, signal.SIGKILL)
    os.kill(pg_pid, signal.SIGKILL)
    assert procs.wait_gone([triton_pid, pg_pid], deadline=time.monotonic() + 10) == set()

    other = Stack(stack.settings)  # knows the stack only through the run files
    other.stop()
    assert not [p for p in stubs if procs.is_alive(p)]
    assert not our_regions & _shm_regions()

    began = time.monotonic()
    other.start(INFRA)  # Postgres retries while the killed postmaster still holds its lock
    assert time.monotonic() - began < 60
    assert all(s.ready for s in stack.status() if s.name in INFRA)
    assert set(other.stop()) == set(INFRA)
