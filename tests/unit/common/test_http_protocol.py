"""The one-write protocol: a response's head and first body part in one send, nothing held
past a turn of the event loop, the interim 100 Continue sent at once; and a real uvicorn server
answering through it (one write per JSON answer, a streamed answer's head before its body)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.common.http_protocol import OneWriteHttpToolsProtocol, _HeadHeldTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


def _held(real: RecordingTransport) -> _HeadHeldTransport:
    return _HeadHeldTransport(real)  # type: ignore[arg-type]


async def test_the_head_goes_out_with_the_body_in_one_write() -> None:
    real = RecordingTransport()
    transport = _held(real)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == []
    transport.write(b"{}")
    transport.write(b"more")
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"more"]
    await asyncio.sleep(0)  # the cancelled flush writes nothing
    assert len(real.writes) == 2
    assert transport.get_extra_info("peername") == "extra:peername"


async def test_a_head_without_a_body_in_the_same_turn_goes_out_alone() -> None:
    real = RecordingTransport()
    transport = _held(real)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"]
    transport.write(b"data: 1\n\n")
    assert real.writes[-1] == b"data: 1\n\n"


async def test_continue_is_not_held_and_close_sends_a_held_head_first() -> None:
    real = RecordingTransport()
    transport = _held(real)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert real.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    transport.close()
    assert real.writes[-1].startswith(b"HTTP/1.1 500") and real.closed
    await asyncio.sleep(0)
    assert len(real.writes) == 2


class _Spy:
    """The socket's transport, its writes recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport, self._writes = transport, writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class SpiedProtocol(OneWriteHttpToolsProtocol):
    writes: ClassVar[list[bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        spy = _Spy(transport, self.writes)  # type: ignore[arg-type]
        super().connection_made(spy)  # type: ignore[arg-type]


async def _stream() -> AsyncIterator[bytes]:
    yield b"data: first\n\n"
    await asyncio.sleep(0.05)
    yield b"data: second\n\n"


async def _json(request: Request) -> Response:
    return JSONResponse({"body": (await request.body()).decode()})


async def _events(request: Request) -> Response:
    return StreamingResponse(_stream(), media_type="text/event-stream")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/json", _json, methods=["POST"]), Route("/sse", _events)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=SpiedProtocol, loop="asyncio", log_level="warning", lifespan="off"
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve(sockets=[sock]))
    while not served.started:  # noqa: ASYNC110 (uvicorn.Server has no event to wait on)
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    served.should_exit = True
    await task


async def test_uvicorn_answers_through_it_in_one_write_per_answer(server: str) -> None:
    SpiedProtocol.writes.clear()
    async with httpx.AsyncClient(base_url=server) as client:
        for i in range(3):  # keep-alive: each response cycle gets its own held head
            answer = await client.post("/json", content=f"n{i}")
            assert answer.status_code == 200 and answer.json() == {"body": f"n{i}"}
            assert len(SpiedProtocol.writes) == i + 1
            head, _, body = SpiedProtocol.writes[-1].partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and body == b'{"body":"n%d"}' % i
        async with client.stream("GET", "/sse") as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            text = "".join([chunk async for chunk in streamed.aiter_text()])
    assert text == "data: first\n\ndata: second\n\n"
