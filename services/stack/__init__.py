"""The local stack: real PostgreSQL, NATS JetStream, Triton and the services as processes.

Entry points: `Stack(StackSettings(...))` (services/stack/supervisor.py) with `start()`,
`stop()`, `status()`; the CLI in `services/cli/stack.py` (`modelfleet up/down/status`); pytest
helpers in `services.stack.testing`.

This package's top level holds only what is light: the settings and the errors. Everything that
runs processes (psutil, from the `local` extra) is imported from its own module, so the console
script loads in an image that has no local stack (`services.stack.supervisor.Stack`).
"""

from services.stack.errors import AlreadyRunningError, PortInUseError, StackError, StartupError
from services.stack.settings import StackSettings

__all__ = [
    "AlreadyRunningError",
    "PortInUseError",
    "StackError",
    "StackSettings",
    "StartupError",
]
