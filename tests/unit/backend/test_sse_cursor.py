"""SSE event ids of a ride: what a client has seen, and what it gets again on reconnection."""

from __future__ import annotations

import orjson
import pytest

from services.backend import sse
from services.common.errors import InvalidInput


def test_the_id_names_everything_seen_and_parses_back() -> None:
    seen: sse.Cursor = {("tip", "1"): 57, ("cost", "1"): 57, ("duration", "1"): 60}
    event_id = sse.format_cursor(seen)
    assert event_id == "cost:1:57,duration:1:60,tip:1:57"
    assert sse.parse_cursor(event_id) == seen
    assert sse.format_cursor({}) == sse.INITIAL_ID and sse.parse_cursor("0") == {}


def test_only_newer_rows_are_news() -> None:
    seen = sse.parse_cursor("duration:1:60,tip:1:57")
    assert not sse.is_newer(seen, "tip", "1", 57)  # seen already
    assert sse.is_newer(seen, "duration", "1", 61)  # telemetry replaced it since
    assert sse.is_newer(seen, "cost", "1", 55)  # committed late, with an older seq: still news
    assert sse.is_newer(seen, "tip", "2", 57)  # another model version


@pytest.mark.parametrize(
    "bad", ["", "tip", "tip:1", "tip:1:x", "tip:1:-1", "Tip:1:2", "tip:1:2,", "a" * 2000]
)
def test_malformed_ids_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        sse.parse_cursor(bad)
    assert caught.value.extra["errors"][0]["field"] == "Last-Event-ID"


def test_frame_carries_id_event_and_json_data() -> None:
    raw = sse.frame("result", {"kind": "tip"}, event_id="tip:1:3")
    lines = raw.decode().split("\n")
    assert lines[:2] == ["id: tip:1:3", "event: result"]
    assert orjson.loads(lines[2].removeprefix("data: ")) == {"kind": "tip"}
    assert raw.endswith(b"\n\n")
