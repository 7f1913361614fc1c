"""Settings: shared names without prefix, service names with prefix, fail fast on bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.ride_duration.settings import RideDurationSettings


def test_shared_names_have_no_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432/x")
    monkeypatch.setenv("NATS_URL", "nats://nats.example:4222")
    monkeypatch.setenv("TRITON_GRPC_URL", "triton.example:8001")
    monkeypatch.setenv("RIDE_DURATION_TRITON_MODEL", "ride_duration_v2")
    monkeypatch.setenv("RIDE_DURATION_TRITON_TIMEOUT_S", "0.25")
    settings = RideDurationSettings()
    assert settings.database_url == "postgresql://u@db.example:5432/x"
    assert settings.nats_url == "nats://nats.example:4222"
    assert settings.triton_grpc_url == "triton.example:8001"
    assert settings.triton_model == "ride_duration_v2"
    assert settings.triton_timeout_s == 0.25


def test_unprefixed_service_setting_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_MODEL", "other")
    assert RideDurationSettings().triton_model == "ride_duration"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://u@h/db"),
        ("DATABASE_URL", "not a url"),
        ("NATS_URL", "http://nats:4222"),
        ("TRITON_GRPC_URL", "grpc://triton:8001"),
        ("TRITON_GRPC_URL", "triton"),
        ("RIDE_DURATION_TRITON_TIMEOUT_S", "0"),
        ("RIDE_DURATION_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_values_fail_at_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        RideDurationSettings()
