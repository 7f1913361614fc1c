"""Unit tests of StackSettings: defaults, environment overrides, derived URLs and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.stack.settings import StackSettings
from services.stack.testing import PORT_SETTINGS, settings_for_tests


@pytest.fixture(autouse=True)
def _no_modelfleet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MODELFLEET_")]:
        monkeypatch.delenv(name)


def test_defaults_match_the_documented_ports() -> None:
    s = StackSettings()
    assert s.home == Path(".modelfleet")
    assert (s.postgres_port, s.nats_port) == (5433, 4222)
    assert (s.triton_http_port, s.triton_grpc_port, s.triton_metrics_port) == (8100, 8101, 8102)
    assert (s.backend_port, s.ride_duration_port, s.classifier_port, s.chatbot_port) == (
        8000,
        8001,
        8002,
        8003,
    )


def test_service_env_derives_the_shared_urls() -> None:
    assert StackSettings().service_env() == {
        "DATABASE_URL": "postgresql://modelfleet@127.0.0.1:5433/modelfleet",
        "NATS_URL": "nats://127.0.0.1:4222",
        "TRITON_GRPC_URL": "127.0.0.1:8101",
        "TRITON_HTTP_URL": "http://127.0.0.1:8100",
        "TRITON_INFER_TRANSPORT": "http",
    }


def test_environment_overrides_with_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELFLEET_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MODELFLEET_POSTGRES_PORT", "6543")
    monkeypatch.setenv("MODELFLEET_TRITON_GRPC_PORT", "9101")
    s = StackSettings()
    assert s.database_url == "postgresql://modelfleet@127.0.0.1:6543/modelfleet"
    assert s.triton_grpc_url == "127.0.0.1:9101"
    assert s.paths.postgres_data == tmp_path / "state" / "postgres"


def test_paths_are_absolute_even_for_a_relative_home() -> None:
    paths = StackSettings(home=Path("rel")).paths
    assert paths.home.is_absolute()
    assert paths.run == paths.home / "run"
    assert paths.logs == paths.home / "logs"
    assert paths.model_repository == paths.home / "model-repository"


def test_disabled_nats_monitor_has_no_url() -> None:
    assert StackSettings(nats_monitor_port=0).nats_monitor_url is None
    assert StackSettings().nats_monitor_url == "http://127.0.0.1:8222"


def test_settings_for_tests_uses_distinct_non_default_ports(tmp_path: Path) -> None:
    s = settings_for_tests(tmp_path, triton_startup_timeout=5.0)
    ports = [getattr(s, name) for name in PORT_SETTINGS]
    assert len(set(ports)) == len(ports)
    assert not {5433, 4222, 8000, 8001, 8100, 8101, 8102} & set(ports)
    assert s.home == tmp_path
    assert s.triton_startup_timeout == 5.0


def test_invalid_port_is_rejected() -> None:
    with pytest.raises(ValueError):
        StackSettings(postgres_port=70000)
