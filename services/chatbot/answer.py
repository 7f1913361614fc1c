"""How a question becomes an answer: cache, product facts from SQL, or retrieval + generation.

    answerer = Answerer(settings=..., pool=..., embedder=..., search=..., generator=None,
                        cache=cache)
    body = await answerer.answer(ChatRequest(question="cheapest laptop under $500"), user="ip")

Order: the conversation is loaded (404 when unknown); the answer cache is asked (unless an LLM
would see earlier turns); a product-fact question (:mod:`services.chatbot.intent`) is answered
from the products table; anything else is embedded, the best chunks are retrieved
(``CHATBOT_RETRIEVAL``: hybrid vector + full text by default; filters: source, document id), the
ones whose cosine score is at least ``CHATBOT_MIN_SCORE`` are the sources. A question they do
not answer (:mod:`services.chatbot.answerability`: a code or figure of it in no statement, or
its subject's statements not saying what it asks) is answered "I do not know" with no
citations (``refusal``), before any LLM; otherwise the extractive composer (its statements'
passages cited) or the configured LLM (given the subject's passages) writes the answer with
``[n]`` citations. A generated
answer is checked (:mod:`services.chatbot.validation`; ``CHATBOT_VALIDATE_ANSWERS``): one that
fails is replaced by the extractive answer, marked in ``validation`` (the failed check, why, and
the rejected text) and counted; a validated one cites the sources it marks. Both turns are
stored in one transaction; the body is cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import asyncpg
import orjson

from services.chatbot import metrics
from services.chatbot.answerability import Assessment, assess, similarities, subject
from services.chatbot.cache import AnswerCache, cache_key
from services.chatbot.compose import (
    Citation,
    Passage,
    cite_passages,
    compose_answer,
    compose_from,
)
from services.chatbot.facts import FactAnswer, answer_fact, load_vocabulary
from services.chatbot.generation import (
    Generated,
    Generator,
    Prompt,
    Turn,
    build_prompt,
    count_tokens,
)
from services.chatbot.intent import Vocabulary, parse
from services.chatbot.schemas import ChatRequest
from services.chatbot.settings import ChatbotSettings
from services.chatbot.validation import validate
from services.common.db import database_errors
from services.common.errors import InvalidInput, ModelfleetError, NotFound
from services.common.logging import request_id_var
from services.domain.documents.embeddings import TextEmbedder

#: (query vector, question, k, source "products"/"documents"/None, document id or None)
#: -> passages, best first.
Search = Callable[[Any, str, int, str | None, uuid.UUID | None], Awaitable[list[Passage]]]

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
#: The answer to a question no source answers (the reason follows it).
I_DO_NOT_KNOW = "I do not know"
_MARK = re.compile(r"\[(\d+)\]")
VOCABULARY_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class Pending:
    """A retrieval answer whose text an LLM still has to write: the prompt, and the body
    without ``answer`` (citations and scores are known before the LLM runs)."""

    request: ChatRequest
    user: str
    conversation_id: uuid.UUID
    key: str | None
    start: float
    prompt: Prompt
    body: dict[str, Any]
    passages: tuple[Passage, ...] = ()
    assessment: Assessment | None = None


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
        plan = await self.plan(request, user=user)
        if isinstance(plan, Pending):
            return await self.generate(plan)
        return plan

    async def generate(self, pending: Pending) -> dict[str, Any]:
        """The body of a :class:`Pending` answer, generated in one piece (not streamed)."""
        assert self.generator is not None
        try:
            generated = await self.generator.generate(pending.prompt)
        except ModelfleetError:
            metrics.LLM_ANSWERS.labels(self.generator.model, "error", "").inc()
            raise
        return await self.finish(pending, generated)

    async def plan(self, request: ChatRequest, *, user: str) -> dict[str, Any] | Pending:
        """Everything up to the LLM: a finished body (cache, facts, extractive), or the
        :class:`Pending` retrieval answer an LLM still has to write. Client errors and
        dependency failures are raised here, before any response is started."""
        start = time.perf_counter()
        question = request.question
        if len(question) > self.settings.max_question_chars:
            raise InvalidInput(
                f"question is longer than {self.settings.max_question_chars} characters",
                extra={
                    "errors": [
                        {
                            "field": "question",
                            "in": "body",
                            "message": "too long",
                            "type": "string_too_long",
                        }
                    ]
                },
            )
        history = await self._history(request.conversation_id)
        conversation_id = request.conversation_id or uuid.uuid4()
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
                hit = {**cached, "cached": True, "conversation_id": str(conversation_id)}
                await self._store(conversation_id, request, hit, user=user)
                metrics.REQUEST_LATENCY.labels("cache", self.mode).observe(
                    time.perf_counter() - start
                )
                return hit
        pending = Pending(
            request=request,
            user=user,
            conversation_id=conversation_id,
            key=key,
            start=start,
            prompt=Prompt(messages=[], text=""),
            body={},
        )
        facts = await self._facts(request, generation)
        if facts is not None:
            return await self._complete(pending, facts)
        return await self._retrieve(pending, history)

    async def finish(self, pending: Pending, generated: Generated) -> dict[str, Any]:
        """The body of a :class:`Pending` answer once its LLM text is there."""
        metrics.TOKENS.labels(self.mode, "in").inc(generated.tokens_in)
        metrics.TOKENS.labels(self.mode, "out").inc(generated.tokens_out)
        return await self._complete(pending, self._checked(pending, generated.text))

    def _checked(self, pending: Pending, text: str) -> dict[str, Any]:
        """The body with the generated ``text`` when it passes validation, else with the
        extractive answer and the verdict (see module doc)."""
        assert self.generator is not None
        model = self.generator.model
        body = {**pending.body, "answer": text or NOTHING_FOUND}
        if not self.settings.validate_answers:
            metrics.LLM_ANSWERS.labels(model, "unchecked", "").inc()
            return body
        passages = list(pending.passages)
        verdict = validate(
            text,
            passages,
            min_term_share=self.settings.validation_min_term_share,
            question=pending.request.question,
        )
        if verdict.passed:
            metrics.LLM_ANSWERS.labels(model, "passed", "").inc()
            marks = {int(m) for m in _MARK.findall(text)}
            cited = [c for c in body["citations"] if c["n"] in marks]
            return {**body, "citations": cited, "validation": {"passed": True}}
        metrics.LLM_ANSWERS.labels(model, "failed", verdict.check).inc()
        if pending.assessment is None:  # CHATBOT_REFUSE_UNANSWERABLE=false
            composed = compose_answer(
                pending.request.question, passages, max_sentences=self.settings.answer_sentences
            )
        else:
            composed = compose_from(
                pending.assessment.evidence,
                passages,
                max_sentences=self.settings.answer_sentences,
            )
        return {
            **body,
            "answer": composed.answer or NOTHING_FOUND,
            "citations": [_citation_body(c) for c in composed.citations],
            "generation": "extractive",
            "validation": {
                "passed": False,
                "check": verdict.check,
                "reason": verdict.reason,
                "rejected": text,
            },
        }

    async def stream(self, pending: Pending) -> AsyncGenerator[tuple[str, Any], None]:
        """SSE events of a :class:`Pending` answer as the LLM writes it: ``meta`` (citations
        and scores), ``delta`` pieces, then ``done`` with the whole body: the validated answer,
        or the extractive one that replaced it (``validation.passed`` false; the deltas were
        the rejected text). A consumer that stops (the client went away) cancels the
        generation: counted ``cancelled``."""
        assert self.generator is not None
        model = self.generator.model
        yield (
            "meta",
            {**pending.body, "cached": False, "conversation_id": str(pending.conversation_id)},
        )
        generated: Generated | None = None
        try:
            async with contextlib.aclosing(self.generator.stream(pending.prompt)) as pieces:
                async for item in pieces:
                    if isinstance(item, Generated):
                        generated = item
                    else:
                        yield "delta", {"text": item}
        except (asyncio.CancelledError, GeneratorExit):
            metrics.LLM_ANSWERS.labels(model, "cancelled", "").inc()
            raise
        except ModelfleetError:
            metrics.LLM_ANSWERS.labels(model, "error", "").inc()
            raise
        assert generated is not None, "a generator's stream ends with its Generated"
        yield "done", await self.finish(pending, generated)

    async def _complete(self, pending: Pending, body: dict[str, Any]) -> dict[str, Any]:
        """Metrics, cache, conversation turns; the response body."""
        metrics.SOURCE_MATCHES.observe(len(body["citations"]))
        metrics.RESPONSE_CHARS.labels(body["generation"]).observe(len(body["answer"]))
        if pending.key is not None and self.cache is not None:
            await self.cache.put(pending.key, body)
        body = {**body, "cached": False, "conversation_id": str(pending.conversation_id)}
        await self._store(pending.conversation_id, pending.request, body, user=pending.user)
        metrics.REQUEST_LATENCY.labels(body["answered_by"], self.mode).observe(
            time.perf_counter() - pending.start
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

    async def _retrieve(self, pending: Pending, history: list[Turn]) -> dict[str, Any] | Pending:
        request = pending.request
        k = request.top_k or self.settings.top_k
        with metrics.EMBEDDING_LATENCY.time():
            vectors = await self.embedder.embed([request.question])
        with metrics.VECTOR_SEARCH_LATENCY.time():
            hits = await self.search(
                vectors[0], request.question, k, request.filters.source, request.filters.document_id
            )
        sources = [hit for hit in hits if hit.score >= self.settings.min_score]
        body: dict[str, Any] = {
            "answered_by": "retrieval",
            "generation": self.mode,
            "retrieved": [
                {name: v for name, v in asdict(hit).items() if name != "text" and v is not None}
                for hit in hits
            ],
            "count": None,
            "groups": None,
        }
        if not self.settings.refuse_unanswerable:
            return await self._unchecked(pending, body, sources, history)
        assessment = await self._assess(request.question, sources)
        if not assessment.answerable:
            metrics.REFUSALS.labels(assessment.check).inc()
            body["answer"] = (
                NOTHING_FOUND
                if assessment.check == "no_sources"
                else f"{I_DO_NOT_KNOW}: {assessment.reason}."
            )
            body["citations"] = []
            body["generation"] = "extractive"
            body["refusal"] = {"check": assessment.check, "reason": assessment.reason}
            return await self._complete(pending, body)
        if self.generator is None:
            composed = compose_from(
                assessment.evidence, sources, max_sentences=self.settings.answer_sentences
            )
            metrics.PROMPT_CHARS.labels("extractive").observe(len(request.question))
            metrics.TOKENS.labels(self.mode, "in").inc(count_tokens(request.question))
            metrics.TOKENS.labels(self.mode, "out").inc(count_tokens(composed.answer))
            body["answer"] = composed.answer or NOTHING_FOUND
            body["citations"] = [_citation_body(c) for c in composed.citations]
            return await self._complete(pending, body)
        # The model sees the passages that hold the question's subject, best evidence first.
        order = list(dict.fromkeys(e.passage for e in assessment.evidence))
        given = [sources[i] for i in order] or sources
        renumbered = replace(
            assessment,
            evidence=[replace(e, passage=order.index(e.passage)) for e in assessment.evidence],
        )
        prompt = build_prompt(request.question, given, history)
        metrics.PROMPT_CHARS.labels(self.mode).observe(len(prompt.text))
        body["citations"] = [_citation_body(c) for c in cite_passages(request.question, given)]
        return replace(
            pending, prompt=prompt, body=body, passages=tuple(given), assessment=renumbered
        )

    async def _unchecked(
        self,
        pending: Pending,
        body: dict[str, Any],
        sources: list[Passage],
        history: list[Turn],
    ) -> dict[str, Any] | Pending:
        """``CHATBOT_REFUSE_UNANSWERABLE=false``: whatever retrieval brings is answered (the
        best matching sentences of every source; an LLM sees every source)."""
        question = pending.request.question
        if self.generator is None:
            composed = compose_answer(
                question, sources, max_sentences=self.settings.answer_sentences
            )
            body["answer"] = composed.answer or NOTHING_FOUND
            body["citations"] = [_citation_body(c) for c in composed.citations]
            return await self._complete(pending, body)
        prompt = build_prompt(question, sources, history)
        metrics.PROMPT_CHARS.labels(self.mode).observe(len(prompt.text))
        body["citations"] = [_citation_body(c) for c in cite_passages(question, sources)]
        return replace(pending, prompt=prompt, body=body, passages=tuple(sources))

    async def _assess(self, question: str, sources: list[Passage]) -> Assessment:
        """Is the question answered by the sources (services/chatbot/answerability.py)? The
        question and the subject's statements are embedded only when something specific is
        asked (their similarity is the support of a statement without an asked word)."""
        if not sources:
            return Assessment(answerable=False, check="no_sources", reason="nothing retrieved")
        draft = subject(question, sources)
        scores = None
        if draft.units and draft.asked:
            texts = [draft.masked_question, *draft.masked_units()]
            with metrics.EMBEDDING_LATENCY.time():
                vectors = await self.embedder.embed([t or "." for t in texts])
            scores = similarities(vectors)
        return assess(draft, scores, min_support=self.settings.min_support)

    async def _store(
        self,
        conversation_id: uuid.UUID,
        request: ChatRequest,
        body: dict[str, Any],
        *,
        user: str,
    ) -> None:
        """Both turns of the exchange (and a new conversation), in one statement."""
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
