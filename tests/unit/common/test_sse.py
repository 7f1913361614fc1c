"""The SSE writer: frames as clients parse them (the event-stream format), and the response."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from services.common import sse


def parse(raw: bytes) -> list[dict[str, str]]:
    """Events as the HTML standard's parser dispatches them (id, event, data, retry)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    data: list[str] = []
    for line in raw.decode().split("\n"):
        if line == "":
            if data:
                events.append({**current, "data": "\n".join(data)})
            current, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            current[name] = value
    return events


def test_json_frames_are_byte_for_byte_what_the_streams_sent() -> None:
    assert sse.json_frame("delta", {"text": "a b"}) == b'event: delta\ndata: {"text":"a b"}\n\n'
    assert (
        sse.json_frame("result", {"kind": "tip"}, event_id="tip:1:3")
        == b'id: tip:1:3\nevent: result\ndata: {"kind":"tip"}\n\n'
    )
    assert sse.KEEP_ALIVE == b": keep-alive\n\n"


def test_json_data_with_line_breaks_stays_one_line() -> None:
    raw = sse.json_frame("done", {"answer": "one\ntwo\r\nthree"})
    assert raw.count(b"\n") == 3
    (event,) = parse(raw)
    assert orjson.loads(event["data"]) == {"answer": "one\ntwo\r\nthree"}


def test_multi_line_data_is_one_data_line_per_line() -> None:
    raw = sse.frame("first\nsecond\r\nthird\rfourth", event="text")
    assert raw == b"event: text\ndata: first\ndata: second\ndata: third\ndata: fourth\n\n"
    assert parse(raw) == [{"event": "text", "data": "first\nsecond\nthird\nfourth"}]


def test_a_frame_without_an_event_name_is_a_message() -> None:
    raw = sse.frame("hello")
    assert raw == b"data: hello\n\n"
    assert parse(raw) == [{"data": "hello"}]
    assert sse.json_frame(None, [1, 2]) == b"data: [1,2]\n\n"


def test_ids_and_retry() -> None:
    raw = sse.frame("x", event="e", event_id="cost:1:57,tip:1:57", retry_ms=1500)
    assert raw == b"id: cost:1:57,tip:1:57\nevent: e\nretry: 1500\ndata: x\n\n"
    assert parse(raw) == [{"id": "cost:1:57,tip:1:57", "event": "e", "retry": "1500", "data": "x"}]
    assert parse(sse.frame("", event_id="0")) == [{"id": "0", "data": ""}]
    assert parse(sse.frame(" leading space")) == [{"data": " leading space"}]


@pytest.mark.parametrize(
    ("event", "event_id", "retry_ms"),
    [("a\nb", None, None), (None, "1\r", None), (None, "a\0", None), (None, None, -1)],
)
def test_fields_that_would_break_the_frame_are_refused(
    event: str | None, event_id: str | None, retry_ms: int | None
) -> None:
    with pytest.raises(ValueError):
        sse.frame("x", event=event, event_id=event_id, retry_ms=retry_ms)
    with pytest.raises(ValueError):
        sse.json_frame(event, {}, event_id=event_id, retry_ms=retry_ms)


def test_comments_are_ignored_by_clients() -> None:
    assert sse.comment() == b":\n\n"
    assert sse.comment("two\nlines") == b": two\n: lines\n\n"
    assert parse(sse.comment("x") + sse.frame("y")) == [{"data": "y"}]


async def test_event_stream_sends_the_frames_with_no_cache_and_no_buffering() -> None:
    async def frames() -> AsyncIterator[bytes]:
        yield sse.json_frame("meta", {"n": 1})
        yield sse.KEEP_ALIVE

    response = sse.event_stream(frames(), headers={"X-Extra": "1"})
    assert response.media_type == "text/event-stream"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["x-extra"] == "1"
    body = [chunk async for chunk in response.body_iterator]
    assert body == [b'event: meta\ndata: {"n":1}\n\n', b": keep-alive\n\n"]
