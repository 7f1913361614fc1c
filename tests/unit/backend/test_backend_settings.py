"""Every BACKEND_* variable of today is still read (the Helm chart, ``make up`` and the docs name
them), and each downstream's URL and deadline come back as one value."""

from __future__ import annotations

import pytest

from services.backend.settings import BackendSettings, Downstream

#: Every variable the backend reads with its own prefix: env name -> (value set, value read).
BACKEND_VARIABLES: dict[str, tuple[str, object]] = {
    "BACKEND_SERVICE_NAME": ("backend-x", "backend-x"),
    "BACKEND_LOG_LEVEL": ("DEBUG", "DEBUG"),
    "BACKEND_LOG_JSON": ("false", False),
    "BACKEND_RIDE_DURATION_URL": ("http://rd:8001/", "http://rd:8001"),
    "BACKEND_RIDE_DURATION_TIMEOUT_S": ("0.7", 0.7),
    "BACKEND_LOCATION_URL": ("http://loc:9/v1/where", "http://loc:9/v1/where"),
    "BACKEND_LOCATION_TIMEOUT_S": ("0.3", 0.3),
    "BACKEND_SENSOR_URL": ("https://sensor:9", "https://sensor:9"),
    "BACKEND_SENSOR_TIMEOUT_S": ("1.25", 1.25),
    "BACKEND_REQUEST_BUDGET_S": ("2.5", 2.5),
    "BACKEND_WRITE_RESERVE_S": ("0.1", 0.1),
    "BACKEND_OUTBOX_STATS_INTERVAL_S": ("7", 7.0),
    "BACKEND_RELAY": ("false", False),
    "BACKEND_RELAY_BATCH_SIZE": ("64", 64),
    "BACKEND_RELAY_IDLE_INTERVAL_S": ("0.25", 0.25),
    "BACKEND_RELAY_PUBLISH_TIMEOUT_S": ("3", 3.0),
    "BACKEND_RELAY_RETRY_MAX_S": ("4", 4.0),
    "BACKEND_SSE_RECHECK_INTERVAL_S": ("1.5", 1.5),
    "BACKEND_SSE_MAX_DURATION_S": ("60", 60.0),
    "BACKEND_IDEMPOTENCY_KEY_TTL_S": ("3600", 3600.0),
    "BACKEND_OUTBOX_RETENTION_S": ("7200", 7200.0),
    "BACKEND_PRUNE_INTERVAL_S": ("30", 30.0),
    "BACKEND_PRUNE_BATCH_SIZE": ("100", 100),
}

#: The fields BackendSettings declares itself (its inherited ones: services.common.settings).
OWN_FIELDS = {
    "ride_duration_url",
    "ride_duration_timeout_s",
    "location_url",
    "location_timeout_s",
    "sensor_url",
    "sensor_timeout_s",
    "request_budget_s",
    "write_reserve_s",
    "outbox_stats_interval_s",
    "relay",
    "relay_batch_size",
    "relay_idle_interval_s",
    "relay_publish_timeout_s",
    "relay_retry_max_s",
    "sse_recheck_interval_s",
    "sse_max_duration_s",
    "idempotency_key_ttl_s",
    "outbox_retention_s",
    "prune_interval_s",
    "prune_batch_size",
}


@pytest.mark.parametrize("env", sorted(BACKEND_VARIABLES))
def test_every_backend_variable_is_read(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    value, expected = BACKEND_VARIABLES[env]
    monkeypatch.setenv(env, value)
    settings = BackendSettings()
    assert getattr(settings, env.removeprefix("BACKEND_").lower()) == expected


def test_the_table_names_every_field_the_backend_declares() -> None:
    fields = {env.removeprefix("BACKEND_").lower() for env in BACKEND_VARIABLES}
    assert OWN_FIELDS <= fields


def test_all_variables_together(monkeypatch: pytest.MonkeyPatch) -> None:
    for env, (value, _) in BACKEND_VARIABLES.items():
        monkeypatch.setenv(env, value)
    settings = BackendSettings()
    for env, (_, expected) in BACKEND_VARIABLES.items():
        assert getattr(settings, env.removeprefix("BACKEND_").lower()) == expected, env


def test_each_downstream_is_its_url_and_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_RIDE_DURATION_URL", "http://rd:8001/")
    monkeypatch.setenv("BACKEND_RIDE_DURATION_TIMEOUT_S", "0.7")
    monkeypatch.setenv("BACKEND_LOCATION_URL", "")
    monkeypatch.setenv("BACKEND_SENSOR_URL", "http://s:9/v1/x/")
    monkeypatch.setenv("BACKEND_SENSOR_TIMEOUT_S", "1.5")
    settings = BackendSettings()
    assert settings.downstream("ride-duration") == Downstream(
        "ride-duration", "http://rd:8001", 0.7
    )
    assert settings.downstream("location") == Downstream("location", None, 1.0)
    assert settings.downstream("sensor") == Downstream("sensor", "http://s:9/v1/x", 1.5)


@pytest.mark.parametrize(
    "env",
    ["BACKEND_RIDE_DURATION_TIMEOUT_S", "BACKEND_LOCATION_TIMEOUT_S", "BACKEND_SENSOR_TIMEOUT_S"],
)
@pytest.mark.parametrize("value", ["0", "10.5"])
def test_every_downstream_deadline_is_bounded(
    env: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=env.removeprefix("BACKEND_").lower()):
        BackendSettings()


def test_an_empty_ride_duration_url_is_refused_not_unconfigured() -> None:
    with pytest.raises(ValueError, match="BACKEND_RIDE_DURATION_URL must look like"):
        BackendSettings(ride_duration_url="")
