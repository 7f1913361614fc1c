"""The chatbot's routes on its typed state: the JSON answer, its SSE events, the body limits.

The app runs without its lifespan: the state is built from a fake answerer (no Postgres,
Triton or NATS), so what is checked is the HTTP layer and the handlers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute

from services.chatbot import api
from services.chatbot.answer import Answerer, Pending
from services.chatbot.app import create_app
from services.chatbot.generation import Prompt
from services.chatbot.metrics import UPLOADS, user_labels
from services.chatbot.schemas import ChatRequest
from services.chatbot.settings import ChatbotSettings
from services.chatbot.state import ChatbotState
from services.chatbot.uploads import Ingestion
from services.common.app import ServiceApp
from services.common.errors import DependencyError
from services.common.security.guard import policy_of_route
from services.common.triton import TritonClient
from services.domain.documents.store import DocumentInfo

CONVERSATION = str(uuid.uuid4())
#: A retrieval answer as the answerer builds it: a chunk leaves out what it does not know.
BODY: dict[str, Any] = {
    "answered_by": "retrieval",
    "generation": "extractive",
    "retrieved": [
        {"source": "documents", "score": 0.8, "document_id": "d1", "document": "m.pdf", "page": 2},
        {"source": "products", "score": 1.0, "product_id": "P1"},
    ],
    "count": None,
    "groups": None,
    "answer": "The kettle boils water in three minutes [1].",
    "citations": [
        {"n": 1, "source": "documents", "quote": "three minutes", "score": 0.8, "page": 2},
    ],
    "cached": False,
    "conversation_id": CONVERSATION,
}


class FakeAnswerer:
    """Answers every question with :data:`BODY`, or as a pending LLM answer when asked."""

    def __init__(self) -> None:
        self.pending = False
        self.fail_mid_stream = False
        self.generator = object()

    async def plan(self, request: ChatRequest, *, user: str) -> dict[str, Any] | Pending:
        if not self.pending:
            return BODY
        body = {k: v for k, v in BODY.items() if k not in ("answer", "cached", "conversation_id")}
        return Pending(
            request=request,
            user=user,
            conversation_id=uuid.UUID(CONVERSATION),
            key=None,
            start=0.0,
            prompt=Prompt(messages=[], text=""),
            body=body,
        )

    async def stream(self, pending: Pending) -> AsyncIterator[tuple[str, Any]]:
        yield "meta", {**pending.body, "cached": False, "conversation_id": CONVERSATION}
        yield "delta", {"text": "The kettle "}
        if self.fail_mid_stream:
            raise DependencyError("the LLM went away")
        yield "delta", {"text": "boils."}
        yield "done", {**BODY, "answer": "The kettle boils."}


settings = ChatbotSettings(log_json=False, max_upload_bytes=1024)


@pytest.fixture
def answerer() -> FakeAnswerer:
    return FakeAnswerer()


@pytest_asyncio.fixture
async def client(answerer: FakeAnswerer) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    app.service_state = ChatbotState(
        settings=settings,
        pool=cast(asyncpg.Pool, None),
        triton=cast(TritonClient, None),
        answerer=cast(Answerer, answerer),
        ingestion=cast(Ingestion, None),
        user_labels=user_labels(10),
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
        yield http_client


def events_of(raw: bytes) -> list[tuple[str, Any]]:
    """(event, data) of each frame, parsed as the chat clients do."""
    events: list[tuple[str, Any]] = []
    for block in raw.decode().split("\n\n")[:-1]:
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


async def test_the_json_answer_is_the_body_as_built(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat", json={"question": "How fast does it boil?"})
    assert response.status_code == 200, response.text
    assert response.json() == BODY  # no null page/product_id added to a chunk or citation


async def test_a_finished_answer_streams_meta_pieces_done(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat", json={"question": "How fast?"}, headers={"accept": "text/event-stream"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.content.startswith(b'event: meta\ndata: {"')
    events = events_of(response.content)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "meta" and kinds[-1] == "done" and kinds.count("delta") > 1
    assert events[-1][1] == BODY
    assert events[0][1] == {k: v for k, v in BODY.items() if k != "answer"}
    assert "".join(data["text"] for kind, data in events if kind == "delta") == BODY["answer"]


async def test_an_llm_answer_streams_as_written(
    client: httpx.AsyncClient, answerer: FakeAnswerer
) -> None:
    answerer.pending = True
    response = await client.post("/v1/chat", json={"question": "How fast?", "stream": True})
    events = events_of(response.content)
    assert [kind for kind, _ in events] == ["meta", "delta", "delta", "done"]
    assert events[-1][1] == {**BODY, "answer": "The kettle boils."}


async def test_an_llm_failing_mid_answer_ends_with_an_error_event(
    client: httpx.AsyncClient, answerer: FakeAnswerer
) -> None:
    answerer.pending = answerer.fail_mid_stream = True
    response = await client.post("/v1/chat", json={"question": "How fast?", "stream": True})
    events = events_of(response.content)
    assert [kind for kind, _ in events] == ["meta", "delta", "error"]
    error = events[-1][1]
    assert error["status"] == 503 and error["instance"] == "/v1/chat"
    assert error["detail"] == "the LLM went away"


def _route(name: str) -> APIRoute:
    (route,) = [r for r in api.router.routes if isinstance(r, APIRoute) and r.name == name]
    return route


def test_the_routes_declare_their_body_limits() -> None:
    assert policy_of_route(_route("chat"), settings).max_body_bytes == api.MAX_CHAT_BODY_BYTES
    upload = policy_of_route(_route("upload_document"), settings)
    assert upload.scope == "write"
    assert upload.max_body_bytes == api.upload_body_limit(settings)
    assert api.upload_body_limit(settings) == settings.max_upload_bytes + api.UPLOAD_OVERHEAD_BYTES


async def test_bodies_over_the_limit_are_413(client: httpx.AsyncClient) -> None:
    rejected = UPLOADS.labels("rejected")._value.get()
    upload_limit = api.upload_body_limit(settings)
    assert upload_limit < api.MAX_CHAT_BODY_BYTES < settings.max_body_bytes  # the routes' own
    too_big = b"%PDF-1.7\n" + b"0" * upload_limit
    question = "q" * api.MAX_CHAT_BODY_BYTES
    for path, kwargs in (
        ("/v1/chat", {"json": {"question": question}}),
        ("/v1/documents", {"content": too_big, "headers": {"content-type": "application/pdf"}}),
        ("/v1/documents", {"files": {"file": ("big.pdf", too_big)}}),
    ):
        response = await client.post(path, **kwargs)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("payload-too-large")
    assert UPLOADS.labels("rejected")._value.get() == rejected + 2


async def test_an_upload_over_the_file_limit_is_413_inside_the_body_limit(
    client: httpx.AsyncClient,
) -> None:
    pdf = b"%PDF-1.7\n" + b"0" * settings.max_upload_bytes
    response = await client.post("/v1/documents", files={"file": ("big.pdf", pdf)})
    assert response.status_code == 413
    assert "file" in response.json()["detail"]


async def test_document_status_sends_times_as_before(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = DocumentInfo(
        id=uuid.uuid4(),
        source="pdf",
        external_id="manual.pdf",
        title="Manual",
        content_hash="abc",
        page_count=3,
        status="ready",
        error=None,
        chunk_count=7,
        created_at=datetime(2026, 12, 2, 13, 0, tzinfo=UTC),
        updated_at=datetime(2026, 12, 2, 13, 0, 1, 250000, tzinfo=UTC),
    )

    async def get_document(pool: Any, document_id: uuid.UUID) -> DocumentInfo | None:
        return document if document_id == document.id else None

    monkeypatch.setattr(api, "get_document", get_document)
    response = await client.get(f"/v1/documents/{document.id}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": str(document.id),
        "source": "documents",
        "name": "manual.pdf",
        "title": "Manual",
        "status": "ready",
        "error": None,
        "pages": 3,
        "chunks": 7,
        "created_at": "2026-12-02T13:00:00+00:00",  # what orjson wrote from the row
        "updated_at": "2026-12-02T13:00:01.250000+00:00",
    }
    assert response.json()["updated_at"] == orjson.dumps(document.updated_at).decode().strip('"')
    assert (await client.get(f"/v1/documents/{uuid.uuid4()}")).status_code == 404
