"""JSON over HTTP to another service: one pooled client and the one translation of its errors.

A service calling another over HTTP (the backend calling ride-duration, location and sensor; the
chain worker calling location and sensor) holds one :class:`JsonClient` for its life. Each call
passes the request id on, has its own deadline cut to what is left of the request's budget, tells
the callee that budget (``X-Request-Budget-Ms``, :mod:`services.common.deadline`), and turns every
failure into :mod:`services.common.errors` (a timeout or a 504 answer -> :class:`DependencyTimeout`;
unreachable or a 5xx -> :class:`DependencyError`; any other non-2xx, a body over
``MAX_ANSWER_BYTES`` or one that is not a JSON object -> :class:`DependencyFailed`).

The client is aiohttp's: on the request path of POST /v1/rides it costs ~0.09 ms of CPU per call
where httpx cost ~1.8 ms at 16 calls in flight (its connection pool scans every connection per
request), measured on this project's 2-core machine; see docs/decisions.md.

    client = JsonClient(max_connections=128)          # in the app's lifespan
    data = await client.post_json(url, body, timeout_s=0.5, name="ride-duration")
    zone = await client.get_json(f"{location}/v1/zones/161", timeout_s=0.5, name="location")
    await client.close()
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from services.common.deadline import bounded, outgoing_budget
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
        return await self._json("POST", url, orjson.dumps(body), timeout_s=timeout_s, name=name)

    async def get_json(
        self,
        url: str,
        *,
        timeout_s: float,
        name: str,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """GET ``url`` (with query ``params``); the JSON object answered."""
        return await self._json("GET", url, None, timeout_s=timeout_s, name=name, params=params)

    async def _json(
        self,
        method: str,
        url: str,
        data: bytes | None,
        *,
        timeout_s: float,
        name: str,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        timeout_s = bounded(timeout_s)
        headers = {**outgoing_headers(), **outgoing_budget(timeout_s)}
        if data is not None:
            headers.update(_JSON)
        try:
            if timeout_s <= 0:
                raise TimeoutError
            async with asyncio.timeout(timeout_s):
                async with self._session.request(
                    method, url, data=data, params=params, headers=headers
                ) as response:
                    status = response.status
                    content = await _read_bounded(response, name) if status == 200 else b""
        except TimeoutError as exc:
            raise DependencyTimeout(f"{name} did not answer within {timeout_s:.3f} s") from exc
        except aiohttp.ClientError as exc:
            raise DependencyError(f"{name} unreachable: {exc!r}") from exc
        if status == 504:
            raise DependencyTimeout(f"{name} answered 504")
        if status >= 500:
            raise DependencyError(f"{name} answered {status}")
        if status != 200:
            raise DependencyFailed(f"{name} answered {status}")
        try:
            decoded = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise DependencyFailed(f"{name} answered invalid JSON") from exc
        if not isinstance(decoded, dict):
            raise DependencyFailed(f"{name} answered {type(decoded).__name__}, not a JSON object")
        return decoded

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
