"""Server-Sent Events, written once: the frames of ``text/event-stream`` and the response.

A frame is the HTML standard's event-stream format: optional ``id:``, ``event:`` and ``retry:``
lines, one ``data:`` line per line of the data, and a blank line; a comment (``: ...``) keeps an
idle connection open through proxies. :func:`event_stream` is the streaming response every SSE
route returns, with the headers that keep proxies from caching or buffering it:

    async def frames() -> AsyncIterator[bytes]:
        yield sse.json_frame("meta", {"conversation_id": ...})
        yield sse.frame("line one\\nline two", event="delta", event_id="7")
        yield sse.KEEP_ALIVE

    return sse.event_stream(frames())

Our own few lines rather than sse-starlette: docs/decisions.md (decision 43). A route documents
its events with :func:`openapi_content`: one schema per event name, its data the JSON of a model.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import StreamingResponse

MEDIA_TYPE = "text/event-stream"
#: No caching by clients or proxies; no buffering by nginx (the ingress) either.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: str) -> str:
    """A one-line field (``id``, ``event``); a line break would end it early: ValueError."""
    if "\n" in value or "\r" in value or (name == "id" and "\0" in value):
        raise ValueError(f"an SSE {name} cannot hold a line break or NUL: {value!r}")
    return f"{name}: {value}\n"


def _head(event: str | None, event_id: str | None, retry_ms: int | None) -> str:
    head = _field("id", event_id) if event_id is not None else ""
    if event is not None:
        head += _field("event", event)
    if retry_ms is not None:
        if retry_ms < 0:
            raise ValueError(f"an SSE retry is a number of milliseconds >= 0, not {retry_ms}")
        head += f"retry: {retry_ms}\n"
    return head


def frame(
    data: str,
    *,
    event: str | None = None,
    event_id: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """One event: ``data`` split into ``data:`` lines (a client joins them with ``\\n``).

    No ``event`` gives a ``message`` event; ``event_id`` becomes the client's
    ``Last-Event-ID``; ``retry_ms`` sets the client's reconnection delay.
    """
    lines = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    return f"{_head(event, event_id, retry_ms)}{lines}\n".encode()


def json_frame(
    event: str | None,
    payload: Any,
    *,
    event_id: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """One event whose data is ``payload`` as JSON (orjson: one line, escapes every break)."""
    head = _head(event, event_id, retry_ms).encode()
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


def comment(text: str = "") -> bytes:
    """A comment frame (clients ignore it): keeps an idle stream open through proxies."""
    lines = "".join(f": {line}\n" if line else ":\n" for line in _LINE_BREAK.split(text))
    return f"{lines}\n".encode()


KEEP_ALIVE = comment("keep-alive")


def event_stream(
    frames: AsyncIterable[bytes], *, headers: dict[str, str] | None = None
) -> StreamingResponse:
    """The response of an SSE route: ``frames`` as they come, never cached or buffered."""
    return StreamingResponse(frames, media_type=MEDIA_TYPE, headers={**HEADERS, **(headers or {})})


def openapi_content(
    events: dict[str, type[BaseModel] | dict[str, Any]], *, ids: bool = False
) -> dict[str, Any]:
    """The OpenAPI media type object of a stream of ``events``: name -> the model (or JSON
    schema) of its data, sent as one JSON line. ``ids``: every event has an ``id``.

    Each event is described as OpenAPI 3.1 reads an event stream's ``schema`` (one event:
    ``event``, ``data``, ``id``, ``retry``), the data with ``contentMediaType`` and
    ``contentSchema``; a model's nested schemas are local ``$defs``, which
    :func:`services.common.openapi.contract` moves into the document's components.
    """
    variants: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for name, model in events.items():
        schema = model if isinstance(model, dict) else model.model_json_schema()
        schema = dict(schema)
        defs.update(schema.pop("$defs", {}))
        variant: dict[str, Any] = {
            "type": "object",
            "required": ["event", "data", *(["id"] if ids else [])],
            "properties": {
                "event": {"const": name},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": schema,
                },
                "id": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0},
            },
        }
        variants.append(variant)
    event_schema: dict[str, Any] = {"oneOf": variants}
    if defs:
        event_schema["$defs"] = defs
    return {"schema": event_schema}
