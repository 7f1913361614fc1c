"""The chatbot generating with the real local LLM, as `modelfleet up --llm` runs it: llama.cpp's
OpenAI-compatible server (services/stack/llm.py, the packaged Gemma 3 270M) and a chatbot process
with the generation settings the stack gives it, on the session's Postgres, NATS and Triton.

The packaged model is a base model: what it writes is untrusted, so the tests assert the path
(pieces streamed as the model writes them, the validation's verdict, the answer the user gets,
the metrics, cancellation), not the quality of its text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from bench.chatbot import make_pdf
from services.stack.llm import LlamaServer, chatbot_env
from services.stack.service import ServiceProcess
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import free_port
from tests.integration.test_chatbot import KETTLE

pytestmark = pytest.mark.integration

QUESTION = "How fast does the Zephyr 3000 kettle boil water?"


@pytest.fixture(scope="module")
def llm_chatbot(stack: Stack, stack_settings: StackSettings) -> Iterator[str]:
    """The local LLM server and a chatbot generating with it; the chatbot's URL."""
    settings = stack_settings.model_copy(update={"llm": True})
    server = LlamaServer(settings)
    chatbot = ServiceProcess(
        settings,
        "chatbot-llm",
        app="services.chatbot.app:create_app",
        port=free_port(),
        port_setting="chatbot_port",
        env={
            **chatbot_env(settings),
            "CHATBOT_CACHE_ENABLED": "false",
            "CHATBOT_LLM_MAX_TOKENS": "32",
            # generous: the test machine's cores are shared (a token can take a second)
            "CHATBOT_LLM_TIMEOUT_S": "120",
            "CHATBOT_REQUEST_TIMEOUT_S": "150",
        },
    )
    try:
        server.start()
        server.wait_ready(time.monotonic() + settings.llm_startup_timeout)
        chatbot.start()
        chatbot.wait_ready(time.monotonic() + settings.service_startup_timeout)
        yield chatbot.url
    finally:
        chatbot.stop()
        server.stop()


def _upload(client: httpx.Client) -> str:
    files = {"file": ("zephyr-llm.pdf", make_pdf(KETTLE), "application/pdf")}
    response = client.post("/v1/documents", files=files)
    assert response.status_code == 202, response.text
    status_url = response.json()["status_url"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(status_url).json()
        if status["status"] != "processing":
            assert status["status"] == "ready", status
            return str(status["id"])
        time.sleep(0.2)
    raise AssertionError("the PDF is still processing after 60 s")


def _events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, orjson.loads(line.removeprefix("data: "))


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_pdf_question_is_answered_by_the_local_llm_streamed(llm_chatbot: str) -> None:
    with httpx.Client(base_url=llm_chatbot, timeout=180) as client:
        document_id = _upload(client)
        body = {"question": QUESTION, "filters": {"document_id": document_id}, "stream": True}
        with client.stream("POST", "/v1/chat", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = list(_events(response))
        metrics = client.get("/metrics").text
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "meta" and kinds[-1] == "done", kinds
    assert set(kinds[1:-1]) <= {"delta"}
    meta, done = events[0][1], events[-1][1]
    assert meta["generation"] == "openai"  # the stack's wiring: the chatbot asks the local LLM
    assert meta["citations"][0]["page"] == 2  # sources before the text
    streamed = "".join(data["text"] for kind, data in events if kind == "delta").strip()
    verdict = done["validation"]
    if verdict["passed"]:  # the model's own text, cited
        assert (done["answer"], done["generation"]) == (streamed, "openai")
        assert re.search(r"\[\d\]", done["answer"])
    else:  # replaced by the extractive answer, the model's text kept as rejected
        assert verdict["rejected"] == streamed
        assert done["generation"] == "extractive"
        assert "95 seconds" in done["answer"] and done["citations"][0]["page"] == 2
    model = "local-llm"
    assert _metric(metrics, "modelfleet_chatbot_llm_time_to_first_token_seconds_count", model=model)
    assert _metric(metrics, "modelfleet_chatbot_llm_queue_seconds_count", model=model)
    assert _metric(metrics, "modelfleet_chatbot_llm_tokens_total", model=model, direction="in")
    outcome = "passed" if verdict["passed"] else "failed"
    assert _metric(metrics, "modelfleet_chatbot_llm_answers_total", model=model, outcome=outcome)


def test_a_question_no_source_answers_is_refused_before_the_llm(llm_chatbot: str) -> None:
    with httpx.Client(base_url=llm_chatbot, timeout=180) as client:
        document_id = _upload(client)
        before = client.get("/metrics").text
        question = "How fast does the Zephyr 4000 kettle boil water?"  # the manual's is a 3000
        body = {"question": question, "filters": {"document_id": document_id}}
        response = client.post("/v1/chat", json=body)
        after = client.get("/metrics").text
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["citations"] == [] and answer["refusal"]["check"] == "identifier"
    assert answer["answer"].startswith("I do not know") and answer.get("validation") is None
    asked = "modelfleet_chatbot_llm_queue_seconds_count"  # one sample per generation asked
    assert _metric(after, asked, model="local-llm") == _metric(before, asked, model="local-llm")


def test_a_client_that_goes_away_cancels_the_generation(llm_chatbot: str) -> None:
    body = {
        "question": "Describe the Zephyr 3000 kettle: how fast does it boil water, how far does"
        " its base rotate, and what does its warranty cover?",
        "stream": True,
    }
    with httpx.Client(base_url=llm_chatbot, timeout=180) as client:
        with client.stream("POST", "/v1/chat", json=body) as response:
            assert response.status_code == 200
            for kind, _ in _events(response):
                if kind == "delta":
                    break  # the first piece of text: go away mid-answer
        deadline = time.monotonic() + 60
        cancelled = 0.0
        while time.monotonic() < deadline and not cancelled:
            metrics = client.get("/metrics").text
            cancelled = _metric(
                metrics, "modelfleet_chatbot_llm_answers_total", outcome="cancelled"
            )
            time.sleep(0.2)
    assert cancelled == 1
