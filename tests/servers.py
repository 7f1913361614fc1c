"""Serve an ASGI app on a real loopback port from a background thread (uvicorn, own loop).

For clients that are synchronous (schemathesis uses requests) and for servers that must keep
answering while the test's own event loop is idle:

    with serving(create_app(settings)) as base_url:
        requests.get(f"{base_url}/healthz")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from services.stack.testing import free_port


@contextmanager
def serving(app: Any, *, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Run ``app`` (lifespan included) until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
