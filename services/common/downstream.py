"""JSON over HTTP to another service: the one translation of httpx errors into the error tree.

A service calling another over HTTP (ride-duration from the backend, an external location or
sensor service) uses :func:`post_json`: it passes the request id on, gives the call a deadline,
and turns every failure into :mod:`services.common.errors` (a timeout or a 504 answer ->
:class:`DependencyTimeout`; unreachable or a 5xx -> :class:`DependencyError`; any other non-2xx
or a body that is not a JSON object -> :class:`DependencyFailed`).

    data = await post_json(client, "/v1/predict", body, timeout_s=0.5, name="ride-duration")
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from services.common.errors import DependencyError, DependencyFailed, DependencyTimeout
from services.common.logging import outgoing_headers

#: A downstream answer larger than this is refused (a JSON object, not a download).
MAX_ANSWER_BYTES = 64 * 1024


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    timeout_s: float,
    name: str,
) -> dict[str, Any]:
    """POST ``body`` to ``url`` (relative to the client's base URL); the JSON object answered."""
    try:
        response = await client.post(
            url,
            content=orjson.dumps(body),
            headers={"content-type": "application/json", **outgoing_headers()},
            timeout=timeout_s,
        )
    except httpx.TimeoutException as exc:
        raise DependencyTimeout(f"{name} did not answer within {timeout_s} s") from exc
    except httpx.HTTPError as exc:
        raise DependencyError(f"{name} unreachable: {exc!r}") from exc
    if response.status_code == 504:
        raise DependencyTimeout(f"{name} answered 504")
    if response.status_code >= 500:
        raise DependencyError(f"{name} answered {response.status_code}")
    if response.status_code != 200:
        raise DependencyFailed(f"{name} answered {response.status_code}")
    if len(response.content) > MAX_ANSWER_BYTES:
        raise DependencyFailed(f"{name} answered {len(response.content)} bytes")
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise DependencyFailed(f"{name} answered invalid JSON") from exc
    if not isinstance(data, dict):
        raise DependencyFailed(f"{name} answered {type(data).__name__}, not a JSON object")
    return data
