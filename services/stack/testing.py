"""Helpers for tests that need the real local stack (Postgres, NATS, Triton, services).

Small on purpose:

- `free_ports(n)` / `free_port()`: loopback ports nobody listens on right now.
- `settings_for_tests(home, **overrides)`: `StackSettings` for a temporary home with every port
  free (never the 80xx/81xx/5433/4222 defaults that manual runs may hold).
- `running_stack(settings, components)`: context manager that starts the stack and always
  stops it (no process left behind, even when the test fails).
- `write_double_model(repository)`: a tiny Python-backend model (`y = 2 * x`, FP32, batched)
  for tests that need Triton without the real models.

Example (a session fixture in a conftest.py)::

    @pytest.fixture(scope="session")
    def stack(tmp_path_factory):
        settings = settings_for_tests(tmp_path_factory.mktemp("stack"))
        write_double_model(settings.paths.model_repository)
        with running_stack(settings, ["postgres", "nats", "triton"]) as stack:
            yield stack
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from services.common.settings import ServiceSettings
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

S = TypeVar("S", bound=ServiceSettings)

PORT_SETTINGS = (
    "postgres_port",
    "nats_port",
    "nats_monitor_port",
    "triton_http_port",
    "triton_grpc_port",
    "triton_metrics_port",
    "backend_port",
    "ride_duration_port",
    "classifier_port",
    "chatbot_port",
    "location_port",
    "sensor_port",
    "worker_tip_port",
    "worker_cost_port",
    "worker_dynamic_duration_port",
    "worker_sensor_duration_port",
    "prometheus_port",
    "alertmanager_port",
    "dashboards_port",
    "llm_port",
)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that are free on `host` now (all held open while choosing)."""
    with ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """One port that is free on `host` now."""
    return free_ports(1, host)[0]


def settings_for_tests(home: Path, **overrides: Any) -> StackSettings:
    """StackSettings with `home` and a free port for every port setting.

    `overrides` are passed to StackSettings as they are (e.g. `triton_startup_timeout=60`).
    """
    values: dict[str, Any] = dict(zip(PORT_SETTINGS, free_ports(len(PORT_SETTINGS)), strict=True))
    values["home"] = home
    values.update(overrides)
    return StackSettings(**values)


def service_settings(cls: type[S], stack: StackSettings, **values: Any) -> S:
    """A service's settings pointed at ``stack``'s Postgres, NATS and Triton (plain-text logs).

    For tests and benchmarks that run a service (or a job) in their own process next to a stack:
    ``service_settings(ChatbotSettings, stack, cache_enabled=False)``.
    """
    connected: dict[str, Any] = {
        "database_url": stack.database_url,
        "nats_url": stack.nats_url,
        "triton_grpc_url": stack.triton_grpc_url,
        "log_json": False,
    }
    return cls(**{**connected, **values})


@contextmanager
def running_stack(
    settings: StackSettings, components: Sequence[str] | None = None
) -> Iterator[Stack]:
    """Start `components` (default: all) of a Stack; stop everything on exit."""
    stack = Stack(settings)
    stack.start(components)
    try:
        yield stack
    finally:
        stack.stop()


DOUBLE_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 64
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

DOUBLE_MODEL = '''\
"""Test model: y = 2 * x."""
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", x * 2)]))
        return responses
'''


def write_double_model(repository: Path, name: str = "double") -> Path:
    """Write the `y = 2 * x` Python-backend model (version 1) into `repository`."""
    folder = repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(DOUBLE_CONFIG.format(name=name))
    (folder / "1" / "model.py").write_text(DOUBLE_MODEL)
    return folder
