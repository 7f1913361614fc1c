"""Answer generation, pluggable by ``CHATBOT_GENERATION``: extractive, an LLM on Triton, or an
OpenAI-compatible endpoint.

- ``extractive`` (default): no model; :func:`services.chatbot.compose.compose_answer`.
- ``triton``: a Triton model with a ``text_input`` BYTES input and a ``text_output`` BYTES output
  (shape [1], ``max_batch_size: 0``), as the vLLM backend and TensorRT-LLM's ensemble expose them;
  the token limit goes in ``CHATBOT_LLM_TRITON_MAX_TOKENS_INPUT`` (INT32, TensorRT-LLM's
  ``max_tokens``; empty for vLLM). A leading echo of the prompt is stripped.
- ``openai``: ``POST {CHATBOT_OPENAI_BASE_URL}/chat/completions`` (any OpenAI-compatible server:
  vLLM, llama.cpp, TGI, OpenAI itself) with ``Authorization: Bearer CHATBOT_OPENAI_API_KEY``.

Both remote modes get the same prompt (:func:`build_prompt`): numbered sources and the last turns
of the conversation. At most ``CHATBOT_LLM_CONCURRENCY`` generations run at once per process; the
others wait in a queue (the local llama.cpp server computes one answer at a time, so a wait here
is the same wait, measured and cancellable). Every call has the deadline ``CHATBOT_LLM_TIMEOUT_S``
(queue wait included) and is measured (``modelfleet_chatbot_llm_duration_seconds``, the shared
dependency histogram, and per model by :class:`GenerationClock`: queue time, time to first
token, time per output token, tokens/s, tokens in and out). A stream whose consumer stops (the
client went away) closes its HTTP call, and llama.cpp's server stops generating. Errors leave
as the shared tree: unreachable/5xx/429 -> :class:`LlmUnavailable` (503), deadline ->
DependencyTimeout (504), another refusal -> DependencyFailed (502).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import numpy as np
import orjson

from services.chatbot import metrics
from services.chatbot.compose import Passage
from services.chatbot.settings import ChatbotSettings
from services.common.errors import DependencyError, DependencyFailed, DependencyTimeout
from services.common.metrics import observe_dependency
from services.common.triton import TritonClient

SYSTEM_PROMPT = (
    "You answer questions about a product catalogue and uploaded documents. Use only the "
    "numbered sources below; cite them as [n] after each statement. If the sources do not "
    "contain the answer, say that you do not know."
)

_TOKEN = re.compile(r"\w+|[^\w\s]")


class LlmUnavailable(DependencyError):
    """The LLM endpoint cannot be reached now, is overloaded or failed on its side."""

    type_slug = "llm-unavailable"
    title = "Language model unavailable"
    dependency = "llm"


def count_tokens(text: str) -> int:
    """Tokens of a text when the generator does not report them: words and punctuation marks."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Prompt:
    """What a generator is asked: chat messages, and the same flattened into one text."""

    messages: list[dict[str, str]]
    text: str


@dataclass(frozen=True)
class Generated:
    text: str
    tokens_in: int
    tokens_out: int


def build_prompt(question: str, passages: list[Passage], history: list[Turn]) -> Prompt:
    """System rules + numbered sources, earlier turns, then the question."""
    lines = []
    for n, passage in enumerate(passages, start=1):
        where = (
            f"product {passage.product_id}"
            if passage.product_id
            else f"{passage.document or 'document'}, page {passage.page}"
        )
        lines.append(f"[{n}] ({where}) {passage.text}")
    sources = "\n".join(lines) or "(no sources found)"
    system = f"{SYSTEM_PROMPT}\n\nSources:\n{sources}"
    messages = [{"role": "system", "content": system}]
    messages += [{"role": t.role, "content": t.content} for t in history]
    messages.append({"role": "user", "content": question})
    text = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages) + "\n\nASSISTANT:"
    return Prompt(messages=messages, text=text)


class GenerationClock:
    """The timeline of one generation, observed into the per-model metrics: created when asked,
    :meth:`started` when a slot is free, :meth:`piece` per piece of text, :meth:`ended` with the
    token counts."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.asked = time.perf_counter()
        self.start = self.asked
        self.first: float | None = None

    def started(self) -> None:
        self.start = time.perf_counter()
        metrics.LLM_QUEUE.labels(self.model).observe(self.start - self.asked)

    def piece(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            metrics.LLM_TTFT.labels(self.model).observe(self.first - self.start)

    def ended(self, generated: Generated, *, streamed: bool) -> None:
        end = time.perf_counter()
        if self.first is None:  # not streamed (or nothing came): the first token came with all
            self.first = end
            metrics.LLM_TTFT.labels(self.model).observe(end - self.start)
        if streamed and generated.tokens_out >= 2:
            per_token = (end - self.first) / (generated.tokens_out - 1)
            metrics.LLM_TPOT.labels(self.model).observe(per_token)
        if end > self.start and generated.tokens_out:
            metrics.LLM_TOKENS_PER_S.labels(self.model).observe(
                generated.tokens_out / (end - self.start)
            )
        metrics.LLM_TOKENS.labels(self.model, "in").inc(generated.tokens_in)
        metrics.LLM_TOKENS.labels(self.model, "out").inc(generated.tokens_out)


class Generator(Protocol):
    """A remote generator: one prompt in, one answer out (deadline and metrics inside).

    ``stream`` yields the answer's text in pieces as they come, then the whole
    :class:`Generated` (tokens included) as its last item.
    """

    mode: str
    model: str

    async def generate(self, prompt: Prompt) -> Generated: ...

    def stream(self, prompt: Prompt) -> AsyncGenerator[str | Generated, None]: ...

    async def close(self) -> None: ...


class TritonGenerator:
    """An LLM served by Triton (text_input -> text_output), on the process's Triton client."""

    mode = "triton"

    def __init__(self, triton: TritonClient, settings: ChatbotSettings) -> None:
        self.triton = triton
        self.model = settings.llm_triton_model
        self.max_tokens_input = settings.llm_triton_max_tokens_input
        self.max_tokens = settings.llm_max_tokens
        self.timeout_s = settings.llm_timeout_s
        self._slots = asyncio.Semaphore(settings.llm_concurrency)

    async def generate(self, prompt: Prompt) -> Generated:
        clock = GenerationClock(self.model)
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._slots:
                    clock.started()
                    generated = await self._generate(prompt)
        except TimeoutError as exc:
            raise DependencyTimeout("the LLM did not answer in time") from exc
        clock.ended(generated, streamed=False)
        return generated

    async def _generate(self, prompt: Prompt) -> Generated:
        inputs: dict[str, Any] = {
            "text_input": np.array([prompt.text.encode("utf-8")], dtype=np.object_)
        }
        if self.max_tokens_input:
            inputs[self.max_tokens_input] = np.array([self.max_tokens], dtype=np.int32)
        start = time.perf_counter()
        outcome = "ok"
        try:
            result = await self.triton.infer(
                self.model, inputs, outputs=["text_output"], timeout_s=self.timeout_s
            )
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            metrics.LLM_LATENCY.labels(self.mode, outcome).observe(time.perf_counter() - start)
        raw = result.outputs["text_output"].reshape(-1)
        value = raw[0] if raw.size else b""
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        text = text.removeprefix(prompt.text).strip()
        return Generated(
            text=text, tokens_in=count_tokens(prompt.text), tokens_out=count_tokens(text)
        )

    async def stream(self, prompt: Prompt) -> AsyncGenerator[str | Generated, None]:
        """One piece: the model is called once (a decoupled streaming model is not used)."""
        generated = await self.generate(prompt)
        yield generated.text
        yield generated

    async def close(self) -> None:  # the Triton client belongs to the app
        return None


class OpenAIGenerator:
    """Any OpenAI-compatible ``/chat/completions`` endpoint."""

    mode = "openai"

    def __init__(self, settings: ChatbotSettings) -> None:
        headers = {}
        key = settings.openai_api_key.get_secret_value()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.model = settings.openai_model
        self.max_tokens = settings.llm_max_tokens
        self.timeout_s = settings.llm_timeout_s
        self._slots = asyncio.Semaphore(settings.llm_concurrency)
        self._client = httpx.AsyncClient(
            base_url=settings.openai_base_url.rstrip("/") + "/",
            headers=headers,
            timeout=settings.llm_timeout_s,
        )

    async def generate(self, prompt: Prompt) -> Generated:
        clock = GenerationClock(self.model)
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._slots:
                    clock.started()
                    generated = await self._generate(prompt)
        except TimeoutError as exc:
            raise DependencyTimeout("the LLM endpoint did not answer in time") from exc
        clock.ended(generated, streamed=False)
        return generated

    async def _generate(self, prompt: Prompt) -> Generated:
        payload = {
            "model": self.model,
            "messages": prompt.messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        start = time.perf_counter()
        outcome = "ok"
        try:
            with observe_dependency("llm", "chat_completions"):
                try:
                    response = await self._client.post("chat/completions", json=payload)
                except httpx.HTTPError as exc:
                    raise _translate(exc) from exc
            body = self._checked(response)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            metrics.LLM_LATENCY.labels(self.mode, outcome).observe(time.perf_counter() - start)
        try:
            text = str(body["choices"][0]["message"]["content"] or "").strip()
        except (KeyError, IndexError, TypeError) as exc:
            raise DependencyFailed("the LLM endpoint answered without choices[0].message") from exc
        usage = body.get("usage") or {}
        return Generated(
            text=text,
            tokens_in=int(usage.get("prompt_tokens") or count_tokens(prompt.text)),
            tokens_out=int(usage.get("completion_tokens") or count_tokens(text)),
        )

    async def stream(self, prompt: Prompt) -> AsyncGenerator[str | Generated, None]:
        """``"stream": true``: the endpoint's SSE chunks' ``delta.content`` as they arrive; the
        whole call (first byte to last) within the deadline."""
        payload = {
            "model": self.model,
            "messages": prompt.messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        parts: list[str] = []
        usage: dict[str, Any] = {}
        clock = GenerationClock(self.model)
        start = time.perf_counter()
        outcome = "ok"
        try:
            async with asyncio.timeout(self.timeout_s), self._slots:
                clock.started()
                with observe_dependency("llm", "chat_completions_stream"):
                    try:
                        async with self._client.stream(
                            "POST", "chat/completions", json=payload
                        ) as response:
                            if response.status_code >= 400:
                                await response.aread()
                                self._checked(response)
                            async for line in response.aiter_lines():
                                data = line.removeprefix("data:").strip()
                                if not line.startswith("data:") or not data:
                                    continue
                                if data == "[DONE]":
                                    break
                                chunk = _chunk(data)
                                usage = chunk.get("usage") or usage
                                for choice in chunk.get("choices") or []:
                                    piece = (choice.get("delta") or {}).get("content")
                                    if piece:
                                        clock.piece()
                                        parts.append(piece)
                                        yield piece
                    except httpx.HTTPError as exc:
                        raise _translate(exc) from exc
        except TimeoutError as exc:
            outcome = "DependencyTimeout"
            raise DependencyTimeout("the LLM endpoint did not finish in time") from exc
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            metrics.LLM_LATENCY.labels(self.mode, outcome).observe(time.perf_counter() - start)
        text = "".join(parts).strip()
        generated = Generated(
            text=text,
            tokens_in=int(usage.get("prompt_tokens") or count_tokens(prompt.text)),
            # without usage, one streamed piece per token (llama.cpp's server sends one each)
            tokens_out=int(usage.get("completion_tokens") or len(parts)),
        )
        clock.ended(generated, streamed=True)
        yield generated

    @staticmethod
    def _checked(response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 429 or response.status_code >= 500:
            raise LlmUnavailable(f"the LLM endpoint answered {response.status_code}")
        if response.status_code >= 400:
            raise DependencyFailed(f"the LLM endpoint refused the request: {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise DependencyFailed("the LLM endpoint answered with invalid JSON") from exc
        return body

    async def close(self) -> None:
        await self._client.aclose()


def _chunk(data: str) -> dict[str, Any]:
    """One streamed chunk (JSON object) of a chat completion."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DependencyFailed("the LLM endpoint streamed invalid JSON") from exc
    if not isinstance(chunk, dict):
        raise DependencyFailed("the LLM endpoint streamed a chunk that is not an object")
    return chunk


def _translate(exc: httpx.HTTPError) -> Exception:
    """An httpx error of an LLM call as the shared tree."""
    if isinstance(exc, httpx.TimeoutException):
        return DependencyTimeout("the LLM endpoint did not answer in time")
    return LlmUnavailable(f"cannot reach the LLM endpoint: {type(exc).__name__}")


def create_generator(settings: ChatbotSettings, triton: TritonClient) -> Generator | None:
    """The remote generator the settings select; None for extractive answers."""
    if settings.generation == "triton":
        return TritonGenerator(triton, settings)
    if settings.generation == "openai":
        return OpenAIGenerator(settings)
    return None
