"""The local stack: real PostgreSQL, NATS JetStream, Triton and the services as processes.

Entry points: `Stack(StackSettings(...))` with `start()`, `stop()`, `status()`; the CLI in
`services/cli/stack.py` (`modelfleet up/down/status`); pytest helpers in `services.stack.testing`.
"""

from services.stack.component import (
    AlreadyRunningError,
    Component,
    ComponentStatus,
    PortInUseError,
    StackError,
    StartupError,
)
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack, StopError

__all__ = [
    "AlreadyRunningError",
    "Component",
    "ComponentStatus",
    "PortInUseError",
    "Stack",
    "StackError",
    "StackSettings",
    "StartupError",
    "StopError",
]
