"""The server URLs a CLI job gets: the local stack's, except those its environment names."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli.servers import job_server_urls
from services.stack.testing import settings_for_tests

ENV_NAMES = ("DATABASE_URL", "TRITON_GRPC_URL", "NATS_URL")


def test_the_local_stack_urls_when_the_environment_names_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    settings = settings_for_tests(tmp_path)
    assert job_server_urls(settings) == {
        "database_url": settings.database_url,
        "triton_grpc_url": settings.triton_grpc_url,
    }
    assert job_server_urls(settings, nats=True) == {
        "database_url": settings.database_url,
        "triton_grpc_url": settings.triton_grpc_url,
        "nats_url": settings.nats_url,
    }


def test_a_url_the_environment_names_is_left_to_the_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://modelfleet@db.internal:5432/modelfleet")
    monkeypatch.setenv("NATS_URL", "nats://nats.internal:4222")
    settings = settings_for_tests(tmp_path)
    assert job_server_urls(settings) == {"triton_grpc_url": settings.triton_grpc_url}
    assert job_server_urls(settings, nats=True) == {"triton_grpc_url": settings.triton_grpc_url}
