"""The one list of the modelfleet services the local stack starts (after Postgres, NATS, Triton).

Add a service here: name (also its log/run file name), app factory, and the name of its port
setting in `StackSettings`. A service whose module is not importable yet is skipped with a log
line, so the stack runs while services are still being written.

A process that is not a uvicorn app factory (a streaming worker) gives `argv` instead: it runs as
`python -m <argv...> --host H --port P` and must serve `/readyz` on that port (the workers do,
with the same health endpoints as every service). `env` adds environment variables derived from
the stack's settings (e.g. the URL of another service).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

from services.stack.llm import chatbot_env
from services.stack.service import ServiceProcess
from services.stack.settings import StackSettings

log = logging.getLogger("modelfleet.stack")


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service."""

    name: str
    app: str  # "package.module:factory", or the module run by `python -m` when argv is set
    port_setting: str  # field of StackSettings
    argv: tuple[str, ...] | None = None  # `python -m` arguments (module first); None: uvicorn
    env: Callable[[StackSettings], dict[str, str]] | None = None

    @property
    def module(self) -> str:
        """The module part of `app`."""
        return self.app.partition(":")[0]


def _backend_env(settings: StackSettings) -> dict[str, str]:
    return {
        "BACKEND_RIDE_DURATION_URL": f"http://{settings.host}:{settings.ride_duration_port}",
        "BACKEND_LOCATION_URL": f"http://{settings.host}:{settings.location_port}",
        "BACKEND_SENSOR_URL": f"http://{settings.host}:{settings.sensor_port}",
    }


def _city_env(settings: StackSettings) -> dict[str, str]:
    # The sensor-duration worker finishes the backend's chain: the location and sensor services.
    # Its events wait ~2.5 s on them, so it pulls (and runs at once) more than the others: a
    # batch of 128 keeps up with ~40 rides/s where 32 kept up with ~10.
    return {
        "WORKERS_LOCATION_URL": f"http://{settings.host}:{settings.location_port}",
        "WORKERS_SENSOR_URL": f"http://{settings.host}:{settings.sensor_port}",
        "WORKERS_FETCH_BATCH": "128",
    }


def _classifier_env(settings: StackSettings) -> dict[str, str]:
    # Its retraining runs (`modelfleet retrain classifier` as a child) use the stack's repository.
    return {"MODELFLEET_HOME": str(settings.paths.home)}


def _dashboards_env(settings: StackSettings) -> dict[str, str]:
    # The stack's Prometheus (services/stack/monitoring.py): its namespace label and interval.
    return {
        "DASHBOARDS_PROMETHEUS_URL": f"http://{settings.host}:{settings.prometheus_port}",
        "DASHBOARDS_NAMESPACE": "local",
        "DASHBOARDS_SCRAPE_INTERVAL_S": str(settings.monitoring_interval_s),
    }


def _worker(kind: str, port_setting: str) -> ServiceSpec:
    return ServiceSpec(
        name=f"worker-{kind}",
        app="services.workers",
        port_setting=port_setting,
        argv=("services.workers", kind),
    )


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="location",
        app="services.city.location:create_app",
        port_setting="location_port",
    ),
    ServiceSpec(
        name="sensor",
        app="services.city.sensor:create_app",
        port_setting="sensor_port",
    ),
    ServiceSpec(
        name="ride-duration",
        app="services.ride_duration.app:create_app",
        port_setting="ride_duration_port",
    ),
    ServiceSpec(
        name="classifier",
        app="services.classifier.app:create_app",
        port_setting="classifier_port",
        env=_classifier_env,
    ),
    ServiceSpec(
        name="backend",
        app="services.backend.app:create_app",
        port_setting="backend_port",
        env=_backend_env,
    ),
    ServiceSpec(
        name="chatbot",
        app="services.chatbot.app:create_app",
        port_setting="chatbot_port",
        env=chatbot_env,  # generation by the local LLM under `modelfleet up --llm`
    ),
    _worker("tip", "worker_tip_port"),
    _worker("cost", "worker_cost_port"),
    _worker("dynamic-duration", "worker_dynamic_duration_port"),
    ServiceSpec(
        name="worker-sensor-duration",
        app="services.workers",
        port_setting="worker_sensor_duration_port",
        argv=("services.workers", "sensor-duration"),
        env=_city_env,
    ),
    ServiceSpec(
        name="dashboards",
        app="services.dashboards.app:create_app",
        port_setting="dashboards_port",
        env=_dashboards_env,
    ),
)


def importable(module: str) -> bool:
    """True when `module` can be found (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def service_processes(
    settings: StackSettings, specs: tuple[ServiceSpec, ...] = SERVICES
) -> list[ServiceProcess]:
    """A ServiceProcess per importable spec, in registry order."""
    processes: list[ServiceProcess] = []
    for spec in specs:
        if not importable(spec.module):
            log.info("skipping service %s: module %s is not importable yet", spec.name, spec.module)
            continue
        port = getattr(settings, spec.port_setting)
        if not isinstance(port, int):
            raise TypeError(f"StackSettings.{spec.port_setting} is not a port")
        processes.append(
            ServiceProcess(
                settings,
                spec.name,
                app=spec.app,
                port=port,
                port_setting=spec.port_setting,
                env=spec.env(settings) if spec.env is not None else None,
                argv=spec.argv,
            )
        )
    return processes
