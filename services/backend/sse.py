"""Server-Sent Events of a ride: frames and the resumable event ids (``Last-Event-ID``).

A ride's results are rows keyed by (kind, model version); a worker replaces a row's value only
with one from a newer event, and each replacement carries a higher outbox ``source_seq``. So what
a client has seen is a small map (kind, version) -> source_seq, and every event's id is that map
after the event, e.g. ``cost:1:57,duration:1:60,tip:1:57`` (the initial duration's id is
``0``, the empty map). A client reconnecting with ``Last-Event-ID`` gets exactly the results whose
``source_seq`` is newer than the map says, in any commit order, then the live stream.

    seen = parse_cursor(request.headers.get("last-event-id"))  # InvalidInput when malformed
    if is_newer(seen, kind, version, seq):
        seen[(kind, version)] = seq
        yield frame("result", data, event_id=format_cursor(seen))

Frames are written by the shared SSE writer (:mod:`services.common.sse`).
"""

from __future__ import annotations

import re
from typing import Any

from services.common import sse
from services.common.errors import InvalidInput

Cursor = dict[tuple[str, str], int]

INITIAL_ID = "0"
MAX_ID_CHARS = 1024
_ENTRY_PATTERN = r"([a-z_]{1,32}):([0-9A-Za-z_.-]{1,32}):([0-9]{1,19})"
_ENTRY = re.compile(rf"^{_ENTRY_PATTERN}$")
_ENTRY_TEXT = _ENTRY_PATTERN.replace("(", "(?:")
#: Every id :func:`format_cursor` writes (the OpenAPI pattern of ``Last-Event-ID``).
ID_PATTERN = rf"^(?:{INITIAL_ID}|{_ENTRY_TEXT}(?:,{_ENTRY_TEXT})*)$"


def frame(event: str, data: dict[str, Any], *, event_id: str | None = None) -> bytes:
    """One SSE frame (``id``, ``event``, one ``data`` line of JSON)."""
    return sse.json_frame(event, data, event_id=event_id)


def format_cursor(seen: Cursor) -> str:
    """The event id naming everything in ``seen`` (sorted, so equal maps give equal ids)."""
    if not seen:
        return INITIAL_ID
    return ",".join(f"{kind}:{version}:{seq}" for (kind, version), seq in sorted(seen.items()))


def parse_cursor(event_id: str) -> Cursor:
    """The map an id of :func:`format_cursor` names; InvalidInput (422) for anything else."""
    if event_id.strip() == INITIAL_ID:
        return {}
    seen: Cursor = {}
    for entry in event_id.strip().split(",") if len(event_id) <= MAX_ID_CHARS else [""]:
        match = _ENTRY.match(entry)
        if match is None:
            raise InvalidInput(
                "Last-Event-ID is not an id this stream sent",
                extra={
                    "errors": [
                        {
                            "field": "Last-Event-ID",
                            "in": "header",
                            "message": "expected 0 or kind:version:seq[,kind:version:seq...]",
                            "type": "value_error",
                        }
                    ]
                },
            )
        seen[(match[1], match[2])] = int(match[3])
    return seen


def is_newer(seen: Cursor, kind: str, version: str, seq: int) -> bool:
    """True when the row (kind, version) at ``seq`` is news to a client that saw ``seen``."""
    return seq > seen.get((kind, version), -1)
