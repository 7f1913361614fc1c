"""What the fake API servers share: a ThreadingHTTPServer on a daemon thread, its URL, and a
context manager that starts it and always stops it.

    class FakeThing(ThreadedHttpServer):
        def __init__(self) -> None:
            ...  # state the handler reads
            super().__init__(self._handler())
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class ThreadedHttpServer:
    """A test HTTP server in a thread; ``server`` is the ThreadingHTTPServer (e.g. to wrap its
    socket in TLS before entering)."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        address: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self.server = ThreadingHTTPServer(address, handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
