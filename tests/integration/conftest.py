"""One real stack per test session: Postgres, NATS, Triton (real models), ride-duration, the
taxi backend and its three streaming workers.

It is started with the CLI's own start-up code (services.stack), on free ports, in a temporary
home, with a model repository built by models/ (small data set to keep the session short).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from models.repository import BuildResult, build_repository
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import running_stack, settings_for_tests
from tests.fake_llm import write_fake_llm_model

TEST_SEED = 7
TEST_ROWS = 40_000
TEST_CATALOGUE_ROWS = 2_000
COMPONENTS = [
    "postgres",
    "nats",
    "triton",
    "ride-duration",
    "classifier",
    "backend",
    "chatbot",
    "worker-tip",
    "worker-cost",
    "worker-dynamic-duration",
]


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> StackSettings:
    return settings_for_tests(tmp_path_factory.mktemp("modelfleet-home"))


@pytest.fixture(scope="session")
def model_build(stack_settings: StackSettings) -> BuildResult:
    # The chatbot's LLM modes are tested against a fake LLM served by the real Triton.
    write_fake_llm_model(stack_settings.paths.model_repository)
    return build_repository(
        stack_settings.paths.model_repository,
        seed=TEST_SEED,
        rows=TEST_ROWS,
        catalogue_rows=TEST_CATALOGUE_ROWS,
        log=lambda _: None,
    )


@pytest.fixture(scope="session")
def stack(stack_settings: StackSettings, model_build: BuildResult) -> Iterator[Stack]:
    with running_stack(stack_settings, COMPONENTS) as s:
        yield s


@pytest.fixture(scope="session")
def ride_duration_url(stack: Stack, stack_settings: StackSettings) -> str:
    return f"http://{stack_settings.host}:{stack_settings.ride_duration_port}"


@pytest_asyncio.fixture(scope="session")
async def http(ride_duration_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ride_duration_url, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="session")
def backend_url(stack: Stack, stack_settings: StackSettings) -> str:
    return f"http://{stack_settings.host}:{stack_settings.backend_port}"


@pytest_asyncio.fixture(scope="session")
async def backend(backend_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=backend_url, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="session")
def chatbot_url(stack: Stack, stack_settings: StackSettings) -> str:
    return f"http://{stack_settings.host}:{stack_settings.chatbot_port}"


@pytest_asyncio.fixture
async def db(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[asyncpg.Pool]:
    """A small asyncpg pool on the stack's database (per test: each test has its own loop)."""
    pool = await asyncpg.create_pool(stack_settings.database_url, min_size=0, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def onnx_path(model_build: BuildResult) -> Path:
    return model_build.path / "model.onnx"


def wait_until(predicate: object, *, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``predicate()`` until it is true or the time is up."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False
