"""The server URLs a job run from the CLI is given: the local stack's, unless the environment
names them (in a pod, the chart's Job sets DATABASE_URL, TRITON_GRPC_URL, NATS_URL)."""

from __future__ import annotations

import os
from typing import Any

from services.stack import StackSettings


def job_server_urls(settings: StackSettings, *, nats: bool = False) -> dict[str, Any]:
    """``{settings field: local stack URL}`` for DATABASE_URL and TRITON_GRPC_URL (and NATS_URL
    with ``nats``), leaving out those set in the environment: a job's settings read those."""
    urls = {
        "DATABASE_URL": ("database_url", settings.database_url),
        "TRITON_GRPC_URL": ("triton_grpc_url", settings.triton_grpc_url),
    }
    if nats:
        urls["NATS_URL"] = ("nats_url", settings.nats_url)
    return {field: url for env, (field, url) in urls.items() if env not in os.environ}
