"""uvicorn's httptools protocol, writing a response's head and first body part in one send.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two ``send`` system calls per answer, two segments on
the wire and a client woken twice. On loopback (a pod's sidecar, the local stack, a benchmark)
the kernel delivers each segment inside the writer's call, so the second write is paid in full
on the request path: in a profile of ride-duration at concurrency 1, uvicorn's ``send`` was 10%
of the service's CPU. Here the head is held until the first body part and both go in one write.

Everything else is uvicorn's: the response cycle writes through :class:`_HeadHeldTransport`,
which holds only the head (the first write that is not the ``100 Continue`` interim answer, sent
at once as before) and hands every other call to the real transport. A head is never held past
the current turn of the event loop: a streamed answer (SSE) whose first part comes later gets
its head at once, as before; a one-part answer's body is sent in the same turn as its head
(Starlette's ``Response`` sends both without yielding), so the two go out together. Every
service runs with it (``--http services.common.http_protocol:OneWriteHttpToolsProtocol``: the
local stack, the chart's commands; decision 54).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _HeadHeldTransport:
    """The transport of one response: its first write (the head) waits for the next."""

    __slots__ = ("_flush_soon", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None  # None: nothing written yet; b"": the head went out
        self._flush_soon: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            if bytes(data[: len(_CONTINUE)]) == _CONTINUE:
                self._transport.write(data)
                return
            self._held = bytes(data)
            self._flush_soon = asyncio.get_running_loop().call_soon(self._flush)
            return
        if self._held:
            if self._flush_soon is not None:
                self._flush_soon.cancel()
                self._flush_soon = None
            data, self._held = self._held + bytes(data), b""
        self._transport.write(data)

    def _flush(self) -> None:
        """The head alone: no body part came in the turn that sent it."""
        self._flush_soon = None
        if self._held and not self._transport.is_closing():
            self._transport.write(self._held)
        self._held = b""

    def close(self) -> None:
        if self._flush_soon is not None:
            self._flush_soon.cancel()
        self._flush()  # a head without a body (the app failed) goes before the close
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; each response cycle writes through a head-holding
    transport."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and not isinstance(cycle.transport, _HeadHeldTransport):
            cycle.transport = _HeadHeldTransport(self.transport)  # type: ignore[assignment]
