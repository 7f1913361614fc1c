"""JSON over HTTP to another service: one pooled client and the one translation of its errors.

A service calling another over HTTP (ride-duration from the backend, an external location or
sensor service) holds one :class:`JsonClient` for its life. Each call passes the request id on,
has its own deadline, and turns every failure into :mod:`services.common.errors` (a timeout or a
504 answer -> :class:`DependencyTimeout`; unreachable or a 5xx -> :class:`DependencyError`; any
other non-2xx, a body over ``MAX_ANSWER_BYTES`` or one that is not a JSON object ->
:class:`DependencyFailed`).

The client is aiohttp's: on the request path of POST /v1/rides it costs ~0.09 ms of CPU per call
where httpx cost ~1.8 ms at 16 calls in flight (its connection pool scans every connection per
request), measured on this project's 2-core machine; see docs/decisions.md.

    client = JsonClient(max_connections=128)          # in the app's lifespan
    data = await client.post_json(url, body, timeout_s=0.5, name="ride-duration")
    call = client.post_call(settings.downstream("location"), body)  # a fan-out Call, or None
    await client.close()
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from services.backend.fanout import Call
from services.backend.settings import Downstream
from services.common.errors import DependencyError, DependencyFailed, DependencyTimeout
from services.common.logging import outgoing_headers

#: A downstream answer larger than this is refused (a JSON object, not a download).
MAX_ANSWER_BYTES = 64 * 1024
_JSON = {"content-type": "application/json"}


class JsonClient:
    """Pooled keep-alive HTTP/1.1 connections for JSON calls to other services."""

    def __init__(self, *, max_connections: int = 128) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=60),
            trust_env=False,
            raise_for_status=False,
        )

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> JsonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def post_json(
        self, url: str, body: dict[str, Any], *, timeout_s: float, name: str
    ) -> dict[str, Any]:
        """POST ``body`` to ``url``; the JSON object answered (errors: see the module)."""
        headers = {**_JSON, **outgoing_headers()}
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.post(
                    url, data=orjson.dumps(body), headers=headers
                ) as response:
                    status = response.status
                    content = await _read_bounded(response, name) if status == 200 else b""
        except TimeoutError as exc:
            raise DependencyTimeout(f"{name} did not answer within {timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise DependencyError(f"{name} unreachable: {exc!r}") from exc
        if status == 504:
            raise DependencyTimeout(f"{name} answered 504")
        if status >= 500:
            raise DependencyError(f"{name} answered {status}")
        if status != 200:
            raise DependencyFailed(f"{name} answered {status}")
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise DependencyFailed(f"{name} answered invalid JSON") from exc
        if not isinstance(data, dict):
            raise DependencyFailed(f"{name} answered {type(data).__name__}, not a JSON object")
        return data

    def post_call(
        self, target: Downstream, body: dict[str, Any], *, path: str = ""
    ) -> Call[dict[str, Any]] | None:
        """A fan-out call POSTing ``body`` to ``target`` (plus ``path``) within its deadline;
        None when ``target`` has no URL (its outcome is then ``not_configured``)."""
        if target.url is None:
            return None
        url, name, timeout_s = f"{target.url}{path}", target.name, target.timeout_s

        async def run() -> dict[str, Any]:
            return await self.post_json(url, body, timeout_s=timeout_s, name=name)

        return Call(f"http:{name}", "post", run, timeout_s)

    async def get_status(self, url: str, *, timeout_s: float, name: str) -> int:
        """GET ``url``; its status code (a readiness probe). Unreachable: DependencyError."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.get(url, headers=outgoing_headers()) as response:
                    return response.status
        except TimeoutError as exc:
            raise DependencyTimeout(f"{name} did not answer within {timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise DependencyError(f"{name} unreachable: {exc!r}") from exc


async def _read_bounded(response: aiohttp.ClientResponse, name: str) -> bytes:
    """The body, refused once it passes ``MAX_ANSWER_BYTES``."""
    if (response.content_length or 0) > MAX_ANSWER_BYTES:
        raise DependencyFailed(f"{name} answered {response.content_length} bytes")
    content = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        content += chunk
        if len(content) > MAX_ANSWER_BYTES:
            raise DependencyFailed(f"{name} answered over {MAX_ANSWER_BYTES} bytes")
    return bytes(content)
