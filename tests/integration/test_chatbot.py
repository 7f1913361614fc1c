"""The chatbot on the real stack: uploads, cited answers, SQL facts, cache, SSE, metrics, and the
two remote generation modes against fakes (a fake LLM model on the real Triton, a fake
OpenAI-compatible server)."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from pypdf import PdfReader, PdfWriter

from bench.chatbot import make_pdf
from services.chatbot.app import create_app
from services.chatbot.settings import ChatbotSettings
from services.common.nats import connect
from services.common.triton import TritonClient
from services.domain.documents.corpus import bump_generation
from services.domain.documents.embeddings import Embedder
from services.domain.documents.ingest import Product, ingest_products
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import service_settings
from tests.asgi import asgi_client
from tests.fake_llm import FAKE_LLM, fake_openai_reply
from tests.httpstub import Route, http_stub

pytestmark = pytest.mark.integration


def encrypt(data: bytes, password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password=password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest_asyncio.fixture
async def chatbot(chatbot_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=chatbot_url, timeout=30.0) as client:
        yield client


@pytest_asyncio.fixture
async def nats(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[NatsClient]:
    nc = await connect(stack_settings.nats_url, name="test-chatbot")
    yield nc
    await nc.close()


async def upload(client: httpx.AsyncClient, name: str, data: bytes) -> dict[str, Any]:
    """Upload a PDF and wait until its ingestion ended; the final status body."""
    response = await client.post("/v1/documents", files={"file": (name, data, "application/pdf")})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == accepted["status_url"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = (await client.get(accepted["status_url"])).json()
        if status["status"] != "processing":
            return dict(status)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} still processing after 60 s")


async def ask(client: httpx.AsyncClient, question: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/chat", json={"question": question, **fields})
    assert response.status_code == 200, response.text
    return dict(response.json())


KETTLE = [
    "Zephyr 3000 kettle manual. Thank you for choosing the Zephyr 3000. Read these "
    "instructions before the first use.",
    "Performance. The Zephyr 3000 kettle boils one litre of water in 95 seconds. "
    "The base rotates 360 degrees.",
    "Warranty. The warranty covers two years from the date of purchase. Keep your receipt.",
]


async def test_uploaded_pdf_answers_with_the_right_page(chatbot: httpx.AsyncClient) -> None:
    status = await upload(chatbot, "zephyr-3000.pdf", make_pdf(KETTLE))
    assert (status["status"], status["pages"]) == ("ready", 3)
    assert status["chunks"] >= 3
    body = await ask(
        chatbot,
        "How fast does the Zephyr 3000 kettle boil water?",
        filters={"document_id": status["id"]},
    )
    assert body["answered_by"] == "retrieval"
    assert "95 seconds" in body["answer"]
    first = body["citations"][0]
    assert (first["document"], first["page"]) == ("zephyr-3000.pdf", 2)
    assert "95 seconds" in first["quote"]
    assert first["document_id"] == status["id"]
    assert body["retrieved"][0]["score"] == pytest.approx(first["score"], abs=1e-3)
    assert body["retrieved"][0]["score"] > 0.5


async def test_a_question_no_source_answers_is_refused_without_citations(
    chatbot: httpx.AsyncClient,
) -> None:
    status = await upload(chatbot, "zephyr-refusal.pdf", make_pdf(KETTLE))
    only = {"filters": {"document_id": status["id"]}}
    answered = await ask(chatbot, "How fast does the Zephyr 3000 kettle boil water?", **only)
    assert "refusal" not in answered or answered["refusal"] is None
    assert [c["page"] for c in answered["citations"]] == [2]  # only where the answer comes from
    other_model = await ask(chatbot, "How fast does the Zephyr 4000 kettle boil water?", **only)
    assert other_model["citations"] == []
    assert other_model["refusal"]["check"] == "identifier"
    assert other_model["answer"].startswith("I do not know")
    assert "4000" in other_model["refusal"]["reason"]
    unsaid = await ask(
        chatbot, "Which smartphone app controls the Zephyr 3000 kettle remotely?", **only
    )
    assert unsaid["citations"] == []
    assert unsaid["refusal"]["check"] == "unsupported"
    text = (await chatbot.get("/metrics")).text
    assert 'modelfleet_chatbot_refusals_total{check="identifier"}' in text
    assert 'modelfleet_chatbot_refusals_total{check="unsupported"}' in text


async def test_product_question_is_answered_from_sql(
    chatbot: httpx.AsyncClient, db: asyncpg.Pool, nats: NatsClient, stack_settings: StackSettings
) -> None:
    laptops = "Electronics > Computers > Laptops"
    products = [
        Product("QL-1", "Quillon Air 13 laptop", "Light.", "Quillon", 449.0, laptops),
        Product("QL-2", "Quillon Book 14 laptop", "Fast.", "Quillon", 499.0, laptops),
        Product("QL-3", "Quillon Pro 16 laptop", "Big.", "Quillon", 899.0, laptops),
        Product(
            "QM-1", "Quillon 27 inch monitor", "4K.", "Quillon", 1299.0, "Electronics > Monitors"
        ),
    ]
    triton = TritonClient(stack_settings.triton_grpc_url, timeout_s=10.0)
    try:
        await ingest_products(db, Embedder(triton), products)
    finally:
        await triton.close()
    await bump_generation(nats.jetstream())  # what every ingestion does after its commit

    cheapest = await ask(chatbot, "What is the cheapest Quillon laptop under $500?")
    assert (cheapest["answered_by"], cheapest["generation"]) == ("facts", "sql")
    assert [c["product_id"] for c in cheapest["citations"]] == ["QL-1", "QL-2"]
    assert "449.00" in cheapest["answer"] and "QL-1" in cheapest["answer"]

    count = await ask(chatbot, "How many products by Quillon?")
    assert count["count"] == 4
    assert {c["product_id"] for c in count["citations"]} == {"QL-1", "QL-2", "QL-3", "QM-1"}

    priciest = await ask(chatbot, "most expensive Quillon laptop")
    assert priciest["citations"][0]["product_id"] == "QL-3"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "status", "problem"),
    [
        ("notes.txt", b"just text, no PDF", "text/plain", 415, "unsupported-media-type"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj garbage", "application/pdf", 422, "invalid-document"),
        ("secret.pdf", None, "application/pdf", 422, "encrypted-document"),
        ("empty.pdf", b"", "application/pdf", 415, "unsupported-media-type"),
    ],
)
async def test_bad_uploads_are_refused_and_nothing_is_stored(
    chatbot: httpx.AsyncClient,
    db: asyncpg.Pool,
    name: str,
    data: bytes | None,
    content_type: str,
    status: int,
    problem: str,
) -> None:
    if data is None:
        data = encrypt(make_pdf(["Top secret text of a locked file."]), "hunter2")
    before = await db.fetchval("select count(*) from documents")
    response = await chatbot.post("/v1/documents", files={"file": (name, data, content_type)})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(problem)
    assert await db.fetchval("select count(*) from documents") == before
    assert await db.fetchval("select count(*) from documents where external_id = $1", name) == 0


async def test_an_upload_over_the_limit_is_413(chatbot: httpx.AsyncClient) -> None:
    too_big = b"%PDF-1.7\n" + b"0" * (10 * 1024 * 1024 + 1)
    response = await chatbot.post("/v1/documents", files={"file": ("big.pdf", too_big)})
    assert response.status_code == 413
    assert response.json()["type"].endswith("payload-too-large")


async def test_unknown_document_and_bad_question(chatbot: httpx.AsyncClient) -> None:
    assert (await chatbot.get(f"/v1/documents/{uuid.uuid4()}")).status_code == 404
    blank = await chatbot.post("/v1/chat", json={"question": "   "})
    assert blank.status_code == 422
    assert blank.json()["errors"][0]["field"] == "question"
    unknown = await chatbot.post(
        "/v1/chat", json={"question": "hello", "conversation_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 404


async def test_cache_hits_on_a_repeat_and_misses_after_a_document_change(
    chatbot: httpx.AsyncClient,
) -> None:
    await upload(chatbot, "zephyr-cache.pdf", make_pdf(KETTLE[1:]))
    question = "How many degrees does the Zephyr base rotate?"
    first = await ask(chatbot, question)
    again = await ask(chatbot, question.upper() + "  ")
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["answer"] == first["answer"]
    assert again["conversation_id"] != first["conversation_id"]
    changed = f"The Orbit lamp {uuid.uuid4().hex[:8]} uses a 7 W LED."  # new content each run
    await upload(chatbot, "other-manual.pdf", make_pdf([changed]))
    after = await ask(chatbot, question)
    assert after["cached"] is False


async def test_conversation_keeps_its_turns(chatbot: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    first = await ask(chatbot, "What does the warranty of the Zephyr cover?")
    second = await ask(chatbot, "And how long is it?", conversation_id=first["conversation_id"])
    assert second["conversation_id"] == first["conversation_id"]
    rows = await db.fetch(
        "select role, content from chat_messages where conversation_id = $1 order by id",
        uuid.UUID(first["conversation_id"]),
    )
    assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[2]["content"] == "And how long is it?"


async def sse_events(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] | None = None
) -> list[tuple[str, Any]]:
    """POST /v1/chat and read its Server-Sent Events as (event, data) pairs."""
    events: list[tuple[str, Any]] = []
    async with client.stream("POST", "/v1/chat", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, orjson.loads(line.removeprefix("data: "))))
    return events


async def test_answer_streams_as_server_sent_events(chatbot: httpx.AsyncClient) -> None:
    events = await sse_events(
        chatbot,
        {"question": "How fast does the Zephyr 3000 kettle boil water?"},
        headers={"accept": "text/event-stream"},
    )
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "meta" and kinds[-1] == "done" and "delta" in kinds
    done = events[-1][1]
    assert "".join(data["text"] for kind, data in events if kind == "delta") == done["answer"]
    assert events[0][1]["citations"] == done["citations"]


async def test_metrics_are_exposed(chatbot: httpx.AsyncClient) -> None:
    await ask(chatbot, "How fast does the Zephyr 3000 kettle boil water?")
    text = (await chatbot.get("/metrics")).text
    for name in (
        "modelfleet_chatbot_request_duration_seconds_bucket",
        'modelfleet_chatbot_questions_by_user_total{user="ip:127.0.0.1"}',
        "modelfleet_chatbot_embedding_duration_seconds_count",
        "modelfleet_chatbot_vector_search_duration_seconds_count",
        "modelfleet_chatbot_source_matches_count",
        "modelfleet_chatbot_prompt_chars_count",
        "modelfleet_chatbot_response_chars_count",
        'modelfleet_chatbot_tokens_total{direction="in",mode="extractive"}',
        'modelfleet_chatbot_cache_requests_total{result="hit"}',
        "modelfleet_chatbot_errors_total{type=",
        'modelfleet_chatbot_uploads_total{outcome="rejected"}',
    ):
        assert name in text, name


def openai_settings(stack_settings: StackSettings, fake_url: str, **values: Any) -> ChatbotSettings:
    """The chatbot in openai mode against the fake OpenAI-compatible server at ``fake_url``."""
    return remote_settings(
        stack_settings,
        generation="openai",
        openai_base_url=f"{fake_url}/v1",
        openai_model="fake-model",
        **values,
    )


def remote_settings(stack_settings: StackSettings, **values: Any) -> ChatbotSettings:
    return service_settings(ChatbotSettings, stack_settings, cache_enabled=False, **values)


async def test_openai_mode_against_a_fake_openai_compatible_server(
    chatbot: httpx.AsyncClient, stack_settings: StackSettings
) -> None:
    document = await upload(chatbot, "zephyr-openai.pdf", make_pdf(KETTLE))
    reply = fake_openai_reply(
        "It boils a litre in 95 seconds [1].", prompt_tokens=321, completion_tokens=12
    )
    async with http_stub({"/v1/chat/completions": Route(body=reply)}) as fake:
        settings = openai_settings(stack_settings, fake.url, openai_api_key="sk-test-key")
        async with asgi_client(create_app(settings)) as client:
            body = await ask(
                client,
                "How fast does the Zephyr 3000 kettle boil water?",
                filters={"document_id": document["id"]},
            )
    assert (body["answer"], body["generation"]) == ("It boils a litre in 95 seconds [1].", "openai")
    assert body["validation"] == {"passed": True}
    assert body["citations"][0]["page"] == 2
    [(path, headers, raw)] = fake.requests
    assert headers["authorization"] == "Bearer sk-test-key"
    sent = orjson.loads(raw)
    assert sent["model"] == "fake-model"
    assert "95 seconds" in sent["messages"][0]["content"]  # the sources went into the prompt
    assert sent["messages"][-1] == {
        "role": "user",
        "content": "How fast does the Zephyr 3000 kettle boil water?",
    }


async def test_openai_mode_streams_the_endpoints_pieces(
    chatbot: httpx.AsyncClient, stack_settings: StackSettings
) -> None:
    document = await upload(chatbot, "zephyr-openai.pdf", make_pdf(KETTLE))
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "It boils "}}]},
        {"choices": [{"index": 0, "delta": {"content": "in 95 seconds [1]."}}]},
        {"choices": [], "usage": {"prompt_tokens": 300, "completion_tokens": 7}},
    ]
    stream = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    route = Route(body=stream, content_type="text/event-stream")
    async with http_stub({"/v1/chat/completions": route}) as fake:
        settings = openai_settings(stack_settings, fake.url)
        async with asgi_client(create_app(settings)) as client:
            events = await sse_events(
                client,
                {
                    "question": "How fast does the Zephyr 3000 kettle boil water?",
                    "filters": {"document_id": document["id"]},
                    "stream": True,
                },
            )
    assert [kind for kind, _ in events] == ["meta", "delta", "delta", "done"]
    assert [data["text"] for kind, data in events if kind == "delta"] == [
        "It boils ",
        "in 95 seconds [1].",
    ]
    done = events[-1][1]
    assert done["answer"] == "It boils in 95 seconds [1]."
    # meta: every source the model was given; done: the ones the validated answer cites
    assert done["citations"] == [c for c in events[0][1]["citations"] if c["n"] == 1]
    assert done["citations"][0]["page"] == 2
    assert orjson.loads(fake.requests[0][2])["stream"] is True


async def test_a_streamed_answer_that_fails_validation_is_replaced_and_counted(
    chatbot: httpx.AsyncClient, stack_settings: StackSettings
) -> None:
    document = await upload(chatbot, "zephyr-openai.pdf", make_pdf(KETTLE))
    chunks = [  # a figure the cited source does not have
        {"choices": [{"index": 0, "delta": {"content": "It boils in 60 seconds [1]."}}]},
    ]
    stream = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    route = Route(body=stream, content_type="text/event-stream")
    async with http_stub({"/v1/chat/completions": route}) as fake:
        settings = openai_settings(stack_settings, fake.url)
        async with asgi_client(create_app(settings)) as client:
            events = await sse_events(
                client,
                {
                    "question": "How fast does the Zephyr 3000 kettle boil water?",
                    "filters": {"document_id": document["id"]},
                    "stream": True,
                },
            )
            text = (await client.get("/metrics")).text
    assert [kind for kind, _ in events] == ["meta", "delta", "done"]
    done = events[-1][1]
    assert done["validation"]["check"] == "figure"
    assert done["validation"]["rejected"] == "It boils in 60 seconds [1]."
    assert done["generation"] == "extractive"
    assert "95 seconds" in done["answer"]  # the extractive answer from the same sources
    assert done["citations"][0]["page"] == 2
    labels = 'check="figure",model="fake-model",outcome="failed"'
    assert f"modelfleet_chatbot_llm_answers_total{{{labels}}}" in text
    assert 'modelfleet_chatbot_llm_time_to_first_token_seconds_count{model="fake-model"}' in text
    assert 'modelfleet_chatbot_llm_queue_seconds_count{model="fake-model"}' in text


async def test_openai_mode_maps_an_overloaded_endpoint_to_503(
    stack_settings: StackSettings, chatbot: httpx.AsyncClient
) -> None:
    await upload(chatbot, "zephyr-openai.pdf", make_pdf(KETTLE))
    async with http_stub({"/v1/chat/completions": Route(status=429, body=b"{}")}) as fake:
        settings = openai_settings(stack_settings, fake.url)
        async with asgi_client(create_app(settings)) as client:
            response = await client.post(
                "/v1/chat", json={"question": "How fast does the Zephyr 3000 boil water?"}
            )
    assert response.status_code == 503
    assert response.json()["type"].endswith("llm-unavailable")


async def test_triton_mode_against_a_fake_llm_on_the_real_triton(
    stack_settings: StackSettings, chatbot: httpx.AsyncClient
) -> None:
    document = await upload(chatbot, "zephyr-triton.pdf", make_pdf(KETTLE))
    settings = remote_settings(
        stack_settings, generation="triton", llm_triton_model=FAKE_LLM, llm_max_tokens=77
    )
    async with asgi_client(create_app(settings)) as client:
        body = await ask(
            client,
            "How fast does the Zephyr 3000 kettle boil water?",
            filters={"document_id": document["id"]},
        )
        ready = (await client.get("/readyz")).json()
    assert ready["checks"]["llm"] == "ok"
    # The fake's text carries the token limit (77), a figure none of the sources has: the
    # validation rejects it and the extractive answer replaces it.
    validation = body["validation"]
    assert (validation["passed"], validation["check"]) == (False, "figure")
    assert validation["rejected"].startswith("fake-llm (77): ")
    assert "95 seconds" in validation["rejected"]  # source [1] reached the model via the prompt
    assert body["generation"] == "extractive"
    assert "95 seconds" in body["answer"]
    assert body["citations"][0]["page"] == 2
