"""A small real HTTP server for tests: answers each path as its route says (delay, status, body).

It listens on a loopback port in the test's own event loop (asyncio streams, HTTP/1.1 with
keep-alive), so the code under test makes real TCP calls with real deadlines::

    async with http_stub({"/slow": Route(delay_s=1.0), "/down": Route(status=503)}) as url:
        await client.post(f"{url}/slow", json={})  # answers after 1 s

Every request is recorded in ``stub.requests`` (path with its query, headers, body); a route
matches the path without the query.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    """How the stub answers one path."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    delay_s: float = 0.0
    content_type: str = "application/json"


@dataclass
class Stub:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return path, headers, body


@asynccontextmanager
async def http_stub(routes: Mapping[str, Route]) -> AsyncIterator[Stub]:
    """Serve ``routes`` on 127.0.0.1 (a free port) until the block ends; unknown paths: 404."""
    stub = Stub(url="")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                stub.requests.append(request)
                path = request[0].partition("?")[0]  # routes match the path, not the query
                route = routes.get(path, Route(status=404, body=b"{}"))
                await asyncio.sleep(route.delay_s)
                writer.write(
                    f"HTTP/1.1 {route.status} X\r\ncontent-type: {route.content_type}\r\n"
                    f"content-length: {len(route.body)}\r\n\r\n".encode()
                    + route.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stub.url = f"http://127.0.0.1:{port}"
    try:
        yield stub
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
