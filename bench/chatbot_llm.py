"""Benchmark: generation by the local LLM, streamed, against llama.cpp called in process.

The stack's Postgres, NATS and Triton, plus what `modelfleet up --llm` adds: the llama.cpp
server (services/stack/llm.py, the packaged Gemma 3 270M unless ``MODELFLEET_LLM_MODEL`` names
another GGUF file) and a chatbot generating with it (``CHATBOT_GENERATION=openai``).
``MANUALS`` manuals are uploaded; answer ``i`` of every variant is about manual ``i % MANUALS``
(its battery life), so every prompt is new to the model: llama.cpp reuses the evaluated prefix
of the previous prompt, and a question asked again would measure that cache instead of the
prompt's evaluation. The anchor and the server get the chatbot's prompt (:func:`build_prompt`)
over that manual's pages; the chatbot builds its own from what it retrieves. At most
``MAX_TOKENS`` tokens, temperature 0:

1. ``anchor: in process`` - ``llama_cpp.Llama.create_chat_completion(stream=True)`` in this
   process on a thread (one model, calls one at a time, as the server runs them),
2. ``llama.cpp server`` - the server's ``/v1/chat/completions`` streamed over HTTP,
3. ``chatbot /v1/chat`` - the whole answer path streamed as SSE: embed, retrieve, generate,
   validate (time to the first ``delta`` event).

Per variant and concurrency (1 and 4): time to first token p50/p99, output tokens/s per answer
(p50), and the ratios of the server's and the chatbot's TTFT p50 to the anchor's.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.chatbot import make_pdf, manual_pages
from bench.suite import BenchContext, Suite, when_and_where
from services.chatbot.compose import Passage
from services.chatbot.generation import build_prompt
from services.stack.llm import LlamaServer, chatbot_env, model_file
from services.stack.service import ServiceProcess
from services.stack.testing import free_port

CONCURRENCY = (1, 4)
MAX_TOKENS = 24
#: answers per worker and run (generation takes seconds: a count, not a duration)
#: answers per run: at concurrency 1, and per worker at concurrency 4
ANSWERS = {1: 4, 4: 2}
MANUALS = 8
#: llama.cpp threads, the server's and the anchor's: 1. Two threads on two cores that other
#: processes keep busy wait for each other at every layer (docs/operations.md: 8 tokens of this
#: prompt took 15.5 and 23.1 s with 2 threads, 8.6 and 13.5 s with 1, interleaved).
N_THREADS = 1


@dataclass
class Timings:
    """TTFT and tokens/s of each answer of one variant at one concurrency."""

    name: str
    concurrency: int
    ttft_s: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    errors: int = 0

    def p(self, q: float) -> float:
        """Milliseconds: the median for 0.5, else the nearest rank."""
        ordered = sorted(self.ttft_s)
        if not ordered:
            return float("nan")
        if q == 0.5:
            return statistics.median(ordered) * 1000
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    @property
    def rate(self) -> float:
        return statistics.median(self.tokens_per_s) if self.tokens_per_s else float("nan")


Answer = Callable[[int], Awaitable[tuple[float, int, float]]]
"""Answer ``i`` (about manual ``i % MANUALS``): (seconds to the first piece, output tokens,
seconds in all)."""


async def drive(name: str, answer: Answer, concurrency: int) -> Timings:
    timings = Timings(name, concurrency)
    numbers = iter(range(1, 1_000_000))  # 0 was the warm-up's

    async def worker() -> None:
        for _ in range(ANSWERS[concurrency]):
            try:
                first, tokens, total = await answer(next(numbers))
            except Exception:
                timings.errors += 1
                continue
            timings.ttft_s.append(first)
            if total > 0:
                timings.tokens_per_s.append(tokens / total)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(
        f"  c={concurrency} {name:<22} TTFT p50 {timings.p(0.5):7.1f} ms p99 "
        f"{timings.p(0.99):7.1f} ms  {timings.rate:5.1f} tokens/s  errors {timings.errors}",
        flush=True,
    )
    return timings


def question(i: int) -> str:
    return f"How long does the Nova {i % MANUALS:02d} battery last?"


def in_process(model: str, prompts: list[list[dict[str, str]]]) -> Answer:
    """The anchor: llama.cpp in this process, one call at a time (a lock, like the server's)."""
    from llama_cpp import Llama  # type: ignore[import-not-found,unused-ignore]

    llm = Llama(model_path=model, n_ctx=2048, n_threads=N_THREADS, verbose=False)
    lock = threading.Lock()

    def blocking(i: int) -> tuple[float, int, float]:
        chat: Any = prompts[i % MANUALS]  # llama_cpp's TypedDict messages: the same dicts
        start = time.perf_counter()  # the wait for the lock counts, as the server's queue does
        with lock:
            first = 0.0
            tokens = 0
            stream: Any = llm.create_chat_completion(
                messages=chat, max_tokens=MAX_TOKENS, temperature=0, stream=True
            )
            for chunk in stream:
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = first or time.perf_counter() - start
                    tokens += 1
            return first, tokens, time.perf_counter() - start

    async def answer(i: int) -> tuple[float, int, float]:
        return await asyncio.to_thread(blocking, i)

    return answer


def over_http(client: httpx.AsyncClient, prompts: list[list[dict[str, str]]], model: str) -> Answer:
    """The llama.cpp server's streamed chat completion."""

    async def answer(i: int) -> tuple[float, int, float]:
        payload = {
            "model": model,
            "messages": prompts[i % MANUALS],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "stream": True,
        }
        start = time.perf_counter()
        first = 0.0
        tokens = 0
        async with client.stream("POST", "/v1/chat/completions", json=payload) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                data = line.removeprefix("data: ")
                if not line.startswith("data: ") or data == "[DONE]":
                    continue
                choices = orjson.loads(data).get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    first = first or time.perf_counter() - start
                    tokens += 1
        return first, tokens, time.perf_counter() - start

    return answer


def chatbot_stream(client: httpx.AsyncClient, documents: list[str]) -> Answer:
    """POST /v1/chat streamed: the first ``delta`` event; tokens from the generation metrics
    are not per answer, so output tokens are counted as the deltas (one per server chunk)."""

    async def answer(i: int) -> tuple[float, int, float]:
        filters = {"document_id": documents[i % MANUALS]}
        body = {"question": question(i), "filters": filters, "stream": True}
        start = time.perf_counter()
        first = 0.0
        tokens = 0
        async with client.stream("POST", "/v1/chat", json=body) as response:
            response.raise_for_status()
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "delta":
                    first = first or time.perf_counter() - start
                    tokens += 1
        return first, tokens, time.perf_counter() - start

    return answer


async def upload_manual(client: httpx.AsyncClient, n: int) -> tuple[str, list[Passage]]:
    """Manual ``n`` through POST /v1/documents; its id and its pages as passages."""
    pages = manual_pages(n)
    name = f"nova-{n:02d}.pdf"
    files = {"file": (name, make_pdf(pages), "application/pdf")}
    response = await client.post("/v1/documents", files=files)
    response.raise_for_status()
    url = response.json()["status_url"]
    for _ in range(1200):
        status = (await client.get(url)).json()
        if status["status"] != "processing":
            break
        await asyncio.sleep(0.1)
    if status["status"] != "ready":
        raise RuntimeError(f"{name}: {status['status']}")
    passages = [
        Passage(source="documents", text=text, score=0.5, document=name, page=page)
        for page, text in enumerate(pages, start=1)
    ]
    return str(status["id"]), passages


def _ratios(results: list[Timings]) -> str:
    lines = ["### Ratios (TTFT p50 against the in-process anchor)", ""]
    for concurrency in CONCURRENCY:
        row = {t.name: t for t in results if t.concurrency == concurrency}
        anchor = row["anchor: in process"].p(0.5)
        for name in ("llama.cpp server", "chatbot /v1/chat"):
            lines.append(
                f"- c={concurrency}: {name} / anchor = {row[name].p(0.5) / anchor:.2f}x "
                f"(tokens/s {row[name].rate / row['anchor: in process'].rate:.2f}x)"
            )
    return "\n".join(lines)


def _table(results: list[Timings]) -> str:
    lines = [
        "| variant | concurrency | TTFT p50 ms | TTFT p99 ms | tokens/s p50 | answers | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in results:
        lines.append(
            f"| {t.name} | {t.concurrency} | {t.p(0.5):.0f} | {t.p(0.99):.0f} | {t.rate:.1f} "
            f"| {len(t.ttft_s)} | {t.errors} |"
        )
    return "\n".join(lines)


async def run(ctx: BenchContext) -> str:
    settings = ctx.settings.model_copy(update={"llm": True, "llm_threads": N_THREADS})
    server = LlamaServer(settings)
    started = time.perf_counter()
    server.start()
    server.wait_ready(time.monotonic() + settings.llm_startup_timeout)
    print(f"  llama.cpp server ready in {time.perf_counter() - started:.1f} s", flush=True)
    chatbot = ServiceProcess(
        settings,
        "chatbot-llm",
        app="services.chatbot.app:create_app",
        port=free_port(),
        port_setting="chatbot_port",
        env={
            **chatbot_env(settings),
            "CHATBOT_CACHE_ENABLED": "false",
            "CHATBOT_LLM_MAX_TOKENS": str(MAX_TOKENS),
            # the queue of 4 answers at a time on one server fits in the deadline
            "CHATBOT_LLM_TIMEOUT_S": "600",
        },
    )
    try:
        chatbot.start()
        chatbot.wait_ready(time.monotonic() + settings.service_startup_timeout)
        async with (
            httpx.AsyncClient(base_url=chatbot.url, timeout=600.0) as bot,
            httpx.AsyncClient(base_url=settings.llm_url.removesuffix("/v1"), timeout=600) as llm,
        ):
            documents: list[str] = []
            prompts: list[list[dict[str, str]]] = []
            for n in range(MANUALS):
                document_id, passages = await upload_manual(bot, n)
                documents.append(document_id)
                prompts.append(build_prompt(question(n), passages, []).messages)
            model = str(model_file(settings))
            variants = {
                "anchor: in process": in_process(model, prompts),
                "llama.cpp server": over_http(llm, prompts, settings.llm_alias),
                "chatbot /v1/chat": chatbot_stream(bot, documents),
            }
            for answer in variants.values():  # warm-up: one answer each
                await answer(0)
            results = [
                await drive(name, answer, concurrency)
                for concurrency in CONCURRENCY
                for name, answer in variants.items()
            ]
    finally:
        chatbot.stop()
        server.stop()
    setup = "\n".join(
        [
            when_and_where(),
            f"- model: {model_file(settings).name} (llama-cpp-python 0.3.36, portable build: "
            f"GGML_NATIVE=OFF, AVX2/FMA/F16C), n_ctx 2048, {N_THREADS} threads, at most "
            f"{MAX_TOKENS} tokens, temperature 0",
            f"- {MANUALS} uploaded 3-page manuals; answer i is about manual i mod {MANUALS}, so no "
            "prompt repeats the one before (llama.cpp would reuse its evaluated prefix); anchor "
            "and server get the chatbot's prompt over that manual's pages (about 200 tokens "
            "of text); "
            f"{ANSWERS[1]} answers at concurrency 1, {ANSWERS[4]} per worker at 4, after one "
            "warm-up answer each",
            "- the server computes one answer at a time (llama_cpp.server's lock), the anchor too "
            "(a lock around one Llama); the chatbot queues with CHATBOT_LLM_CONCURRENCY=1; so at "
            "concurrency 4 the TTFT includes the wait for the answers ahead",
            "- tokens/s: output pieces (one per streamed chunk, about a token) over the answer's "
            "whole time; the chatbot's TTFT includes embedding and retrieval",
        ]
    )
    return (
        "## Chatbot generation: local LLM (llama.cpp) streamed, against llama.cpp in process\n\n"
        f"{setup}\n\n{_table(results)}\n\n{_ratios(results)}"
    )


SUITE = Suite(name="chatbot-llm", components=("postgres", "nats", "triton"), run=run)
