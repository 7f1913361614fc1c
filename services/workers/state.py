"""The typed state of a worker process: what its lifespan builds (it serves no routes)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.common.state import ServiceState
from services.common.triton import TritonClient
from services.workers.consumer import PullConsumer
from services.workers.settings import WorkerSettings


@dataclass(kw_only=True)
class WorkersState(ServiceState):
    settings: WorkerSettings
    pool: asyncpg.Pool
    triton: TritonClient
    #: The durable JetStream consumer of the worker's kind, run as a background task.
    consumer: PullConsumer
