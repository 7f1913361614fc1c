"""How a question becomes an answer: cache, product facts from SQL, or retrieval + generation.

    answerer = Answerer(settings=..., pool=..., embedder=..., search=..., generator=None,
                        cache=cache)
    body = await answerer.answer(ChatRequest(question="cheapest laptop under $500"), user="ip")

Order: the conversation is loaded (404 when unknown); the answer cache is asked (unless an LLM
would see earlier turns); a product-fact question (:mod:`services.chatbot.intent`) is answered
from the products table; anything else is embedded, the nearest chunks are retrieved (filters:
source, document id), the ones scoring at least ``CHATBOT_MIN_SCORE`` are the sources, and the
extractive composer or the configured LLM writes the answer with ``[n]`` citations. Both turns
are stored in one transaction; the body is cached.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import asyncpg
import orjson

from services.chatbot import metrics
from services.chatbot.cache import AnswerCache, cache_key
from services.chatbot.compose import Citation, Passage, cite_passages, compose_answer
from services.chatbot.facts import FactAnswer, answer_fact, load_vocabulary
from services.chatbot.generation import Generator, Turn, build_prompt, count_tokens
from services.chatbot.intent import Vocabulary, parse
from services.chatbot.schemas import ChatRequest
from services.chatbot.settings import ChatbotSettings
from services.common.db import database_errors
from services.common.embeddings import TextEmbedder
from services.common.errors import InvalidInput, NotFound
from services.common.logging import request_id_var

#: (query vector, k, source "products"/"documents"/None, document id or None) -> passages.
Search = Callable[[Any, int, str | None, uuid.UUID | None], Awaitable[list[Passage]]]

#: A new conversation (or a touch of an existing one) and its two new messages: one round trip.
_STORE_TURNS = """
with conversation as (
    insert into chat_conversations (id, user_id) values ($1, $2)
    on conflict (id) do update set updated_at = now()
    returning id
)
insert into chat_messages (conversation_id, role, content, citations, answered_by, request_id)
select conversation.id, turn.role, turn.content, turn.citations::jsonb, turn.answered_by,
       turn.request_id
from conversation, (values
    (1, 'user', $3::text, '[]', null::text, null::text),
    (2, 'assistant', $4::text, $5::text, $6::text, $7::text)
) as turn (n, role, content, citations, answered_by, request_id)
order by turn.n
"""
NOTHING_FOUND = "I could not find anything about that in the catalogue or the documents."
VOCABULARY_MAX_AGE_S = 60.0


class VocabularyCache:
    """The catalogue's brands and categories, re-read when the corpus generation changes and
    at least every ``max_age_s`` seconds."""

    def __init__(self, pool: asyncpg.Pool, *, timeout_s: float, max_age_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s
        self._value = Vocabulary()
        self._loaded_at = float("-inf")
        self._generation: str | None = None

    async def get(self, generation: str | None) -> Vocabulary:
        stale = time.monotonic() - self._loaded_at > self._max_age_s
        if stale or (generation is not None and generation != self._generation):
            self._value = await load_vocabulary(self._pool, timeout_s=self._timeout_s)
            self._loaded_at = time.monotonic()
            self._generation = generation
        return self._value


def _citation_body(citation: Citation) -> dict[str, Any]:
    return {k: v for k, v in asdict(citation).items() if v is not None}


def _fact_citations(fact: FactAnswer) -> list[dict[str, Any]]:
    return [
        {
            "n": n,
            "source": "products",
            "quote": f"{row.title} | {row.brand} | {row.category} | {row.price:.2f} {row.currency}",
            "score": 1.0,
            "product_id": row.product_id,
        }
        for n, row in enumerate(fact.rows, start=1)
    ]


class Answerer:
    """Answers questions (see module doc); one per process, shared by every request."""

    def __init__(
        self,
        *,
        settings: ChatbotSettings,
        pool: asyncpg.Pool,
        embedder: TextEmbedder,
        search: Search,
        generator: Generator | None,
        cache: AnswerCache | None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.embedder = embedder
        self.search = search
        self.generator = generator
        self.cache = cache
        self.vocabulary = VocabularyCache(
            pool, timeout_s=settings.database_timeout_s, max_age_s=VOCABULARY_MAX_AGE_S
        )

    @property
    def mode(self) -> str:
        return self.generator.mode if self.generator else "extractive"

    async def answer(self, request: ChatRequest, *, user: str) -> dict[str, Any]:
        """The response body of POST /v1/chat (see :class:`schemas.ChatResponse`)."""
        start = time.perf_counter()
        question = request.question
        if len(question) > self.settings.max_question_chars:
            raise InvalidInput(
                f"question is longer than {self.settings.max_question_chars} characters",
                extra={"errors": [{"field": "question", "in": "body", "message": "too long"}]},
            )
        history = await self._history(request.conversation_id)
        filters = {
            "source": request.filters.source,
            "document_id": str(request.filters.document_id or "") or None,
            "top_k": request.top_k,
        }
        generation = await self.cache.generation() if self.cache is not None else None
        key = None
        if generation is not None and not (self.generator and history):
            key = cache_key(question, filters=filters, mode=self.mode, generation=generation)
            cached = await self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                hit = {**cached, "cached": True}
                hit["conversation_id"] = await self._store(request, hit, user=user)
                metrics.REQUEST_LATENCY.labels("cache", self.mode).observe(
                    time.perf_counter() - start
                )
                return hit
        body = await self._facts(request, generation) or await self._retrieve_and_generate(
            request, history
        )
        metrics.SOURCE_MATCHES.observe(len(body["citations"]))
        metrics.RESPONSE_CHARS.labels(body["generation"]).observe(len(body["answer"]))
        if key is not None and self.cache is not None:
            await self.cache.put(key, body)
        body = {**body, "cached": False}
        body["conversation_id"] = await self._store(request, body, user=user)
        metrics.REQUEST_LATENCY.labels(body["answered_by"], self.mode).observe(
            time.perf_counter() - start
        )
        return body

    async def _history(self, conversation_id: uuid.UUID | None) -> list[Turn]:
        if conversation_id is None:
            return []
        async with database_errors("conversation_history"):
            exists = await self.pool.fetchval(
                "select true from chat_conversations where id = $1",
                conversation_id,
                timeout=self.settings.database_timeout_s,
            )
            if not exists:
                raise NotFound(f"no conversation {conversation_id}")
            rows = await self.pool.fetch(
                "select role, content from (select id, role, content from chat_messages"
                " where conversation_id = $1 order by id desc limit $2) t order by id",
                conversation_id,
                self.settings.history_turns * 2,
                timeout=self.settings.database_timeout_s,
            )
        return [Turn(role=str(r["role"]), content=str(r["content"])) for r in rows]

    async def _facts(self, request: ChatRequest, generation: str | None) -> dict[str, Any] | None:
        if request.filters.source == "documents" or request.filters.document_id is not None:
            return None
        query = parse(request.question, await self.vocabulary.get(generation))
        if query is None:
            return None
        with metrics.FACT_LATENCY.time():
            fact = await answer_fact(
                self.pool,
                query,
                limit=self.settings.fact_rows,
                timeout_s=self.settings.database_timeout_s,
            )
        citations = _fact_citations(fact)
        return {
            "answer": fact.answer,
            "answered_by": "facts",
            "generation": "sql",
            "citations": citations,
            "retrieved": [
                {"source": "products", "score": 1.0, "product_id": c["product_id"]}
                for c in citations
            ],
            "count": fact.count,
            "groups": fact.groups,
        }

    async def _retrieve_and_generate(
        self, request: ChatRequest, history: list[Turn]
    ) -> dict[str, Any]:
        k = request.top_k or self.settings.top_k
        with metrics.EMBEDDING_LATENCY.time():
            vectors = await self.embedder.embed([request.question])
        with metrics.VECTOR_SEARCH_LATENCY.time():
            hits = await self.search(
                vectors[0], k, request.filters.source, request.filters.document_id
            )
        sources = [hit for hit in hits if hit.score >= self.settings.min_score]
        retrieved = [
            {name: v for name, v in asdict(hit).items() if name != "text" and v is not None}
            for hit in hits
        ]
        if self.generator is None:
            composed = compose_answer(
                request.question, sources, max_sentences=self.settings.answer_sentences
            )
            answer, citations = composed.answer, composed.citations
            metrics.PROMPT_CHARS.labels("extractive").observe(len(request.question))
            tokens_in, tokens_out = count_tokens(request.question), count_tokens(answer)
        else:
            prompt = build_prompt(request.question, sources, history)
            metrics.PROMPT_CHARS.labels(self.mode).observe(len(prompt.text))
            generated = await self.generator.generate(prompt)
            answer, citations = generated.text, cite_passages(request.question, sources)
            tokens_in, tokens_out = generated.tokens_in, generated.tokens_out
        metrics.TOKENS.labels(self.mode, "in").inc(tokens_in)
        metrics.TOKENS.labels(self.mode, "out").inc(tokens_out)
        return {
            "answer": answer or NOTHING_FOUND,
            "answered_by": "retrieval",
            "generation": self.mode,
            "citations": [_citation_body(c) for c in citations],
            "retrieved": retrieved,
            "count": None,
            "groups": None,
        }

    async def _store(self, request: ChatRequest, body: dict[str, Any], *, user: str) -> str:
        """Both turns of the exchange (and a new conversation), in one statement; its id."""
        conversation_id = request.conversation_id or uuid.uuid4()
        async with database_errors("store_turns"):
            await self.pool.execute(
                _STORE_TURNS,
                conversation_id,
                user,
                request.question,
                body["answer"],
                orjson.dumps(body["citations"]).decode(),
                "cache" if body.get("cached") else body["answered_by"],
                request_id_var.get(),
                timeout=self.settings.database_timeout_s,
            )
        return str(conversation_id)
