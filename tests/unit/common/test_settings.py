"""Settings: shared names without prefix, service names with prefix, fail fast on bad values."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

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


#: One valid value per AUTH_* setting, as its environment variable holds it.
AUTH_VALUES = {
    "AUTH_MODE": "jwt",
    "AUTH_JWKS_URL": "https://idp.example/jwks.json",
    "AUTH_ISSUER": "https://idp.example/",
    "AUTH_AUDIENCE": "modelfleet-api",
    "AUTH_SCOPE_PREFIX": "fleet:",
    "AUTH_LEEWAY_S": "7.0",
    "AUTH_JWKS_TIMEOUT_S": "3.0",
    "AUTH_JWKS_CACHE_S": "9.0",
    "AUTH_JWKS_MIN_REFRESH_S": "4.0",
    "AUTH_API_KEY_CACHE_S": "6.0",
    "AUTH_API_KEY_PEPPER": "pepper",
}


def _read(settings: RideDurationSettings, name: str) -> str:
    value = getattr(settings, name.lower())
    return str(value.get_secret_value() if isinstance(value, SecretStr) else value)


def test_every_auth_setting_is_read_from_its_shared_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {
        name.upper() for name in RideDurationSettings.model_fields if name.startswith("auth_")
    }
    assert fields == set(AUTH_VALUES)  # a new AUTH_* setting needs a value here
    for name, value in AUTH_VALUES.items():
        monkeypatch.setenv(name, value)
    settings = RideDurationSettings()
    assert {name: _read(settings, name) for name in AUTH_VALUES} == AUTH_VALUES


@pytest.mark.parametrize("name", sorted(AUTH_VALUES))
def test_a_prefixed_auth_name_is_not_read(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"RIDE_DURATION_{name}", AUTH_VALUES[name])
    assert _read(RideDurationSettings(), name) != AUTH_VALUES[name]  # the default stays


def test_shared_settings_take_their_field_names_as_arguments() -> None:
    settings = RideDurationSettings(auth_issuer="i", nats_url="nats://n:1", triton_grpc_url="t:1")
    assert (settings.auth_issuer, settings.nats_url, settings.triton_grpc_url) == (
        "i",
        "nats://n:1",
        "t:1",
    )
