"""``modelfleet eval chatbot``: retrieval quality per retriever, and the quality of the answers.

The evaluation sets are generated (``models.chatbot.corpus``), nothing is downloaded:

- today's set: PDF manuals of invented products whose every fact sentence is known by file and
  page (one question per fact), and questions naming products of the catalogue by title;
- the hard set (:func:`models.chatbot.corpus.hard_questions`, from the same manuals and
  catalogue): products named by their model number only, catalogue model codes, numbers with
  units and rare terms (which product weighs 3.4 kilograms?), paraphrases far from the
  manual's words (naming the product, or describing it: "the guarantee on the smoothie
  maker", no word in common with the manual), two facts in one question, and questions no
  source answers. It is split by
  seed into ``hard-dev`` (look at it while tuning retrieval) and ``hard-test`` (report it).

The manuals (``eval-manual-NN.pdf``) and the catalogue are ingested first (idempotent), then
every answerable question is searched over the WHOLE corpus (no filter) by each retriever
(vector, full text, hybrid). A hit is relevant when it is the product asked about, or a chunk
of the right file and page that contains the fact's sentence; a two-fact question counts at the
rank where both facts have been found.

With ``chatbot_url``, each question also goes to ``POST /v1/chat`` (whatever retrieval and
generation the chatbot runs): answer accuracy (the answer contains every expected value),
citation accuracy (the right source is among the citations), citation precision (the share of
citations whose chunk holds the fact, or that are the right product) and refusal accuracy (a
question no source answers gets no citation: "I do not know"), and with a generator (an LLM
mode) the share of generated answers that passed validation (the others were replaced by the
extractive answer; services/chatbot/validation.py).

    report = await run_eval(settings=IngestSettings(), say=print)
    report.retrievers["hybrid"]["hard-test"].recall_at_5
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import httpx

from models.chatbot.corpus import (
    HARD_KINDS,
    Fact,
    HardQuestion,
    ProductQuestion,
    catalogue_questions,
    generate_manuals,
    hard_questions,
)
from services.common.db import create_pool
from services.common.triton import TritonClient
from services.domain.documents.embeddings import Embedder
from services.domain.documents.ingest import ingest_pdf, ingest_products
from services.domain.documents.store import (
    RETRIEVALS,
    ChunkHit,
    Retrieval,
    apply_documents_schema,
    search_chunks,
)
from services.jobs.ingest import IngestSettings, Say, load_products, unique_products

SEARCH_K: Final = 10
"""Depth of each search (MRR counts ranks up to here)."""
CHAT_TIMEOUT_S: Final = 30.0
SETS: Final = ("today", "hard-dev", "hard-test")
"""The question sets, in report order."""
DEFAULT_RETRIEVAL: Final[Retrieval] = "hybrid"
"""The retriever of :attr:`EvalReport.overall` (the chatbot's default)."""


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question and what answers it.

    ``fact`` (and ``also``, the other facts of a two-fact question) or ``product_id`` are the
    sources that answer it; neither: no source does (the right answer is a refusal).
    ``answers``: strings a right answer contains (None: the fact's own answer).
    """

    text: str
    kind: str
    product_id: str | None = None
    fact: Fact | None = None
    also: tuple[Fact, ...] = ()
    answers: tuple[str, ...] | None = None
    split: str = "today"

    @property
    def facts(self) -> tuple[Fact, ...]:
        return () if self.fact is None else (self.fact, *self.also)

    @property
    def answerable(self) -> bool:
        return self.fact is not None or self.product_id is not None

    @property
    def expected(self) -> tuple[str, ...]:
        """What a right answer's text contains (all of it); empty: not checked."""
        if self.answers is not None:
            return self.answers
        return (self.fact.answer,) if self.fact is not None else ()

    def covers(self, hit: ChunkHit, fact: Fact) -> bool:
        """Is ``hit`` a chunk of ``fact``'s file and page holding its sentence?"""
        return (
            hit.source == "pdf"
            and hit.external_id == fact.file
            and hit.page == fact.page
            and fact.sentence in hit.text
        )

    def relevant(self, hit: ChunkHit) -> bool:
        """Does this retrieved chunk answer (a part of) the question?"""
        if self.fact is not None:
            return any(self.covers(hit, fact) for fact in self.facts)
        return self.product_id is not None and (
            hit.source == "product" and hit.external_id == self.product_id
        )

    def cited(self, citation: dict[str, Any]) -> bool:
        """Does this citation of a /v1/chat answer point at the right source (file and page,
        or product)?"""
        if self.fact is not None:
            return any(
                citation.get("document") == fact.file and citation.get("page") == fact.page
                for fact in self.facts
            )
        return self.product_id is not None and citation.get("product_id") == self.product_id

    def cites_fact(self, citation: dict[str, Any], chunk_text: str | None) -> bool:
        """Is this citation a source that contains the fact (its chunk holds a fact's sentence,
        on the right file and page), or the right product?"""
        if self.fact is not None:
            return chunk_text is not None and any(
                citation.get("document") == fact.file
                and citation.get("page") == fact.page
                and fact.sentence in chunk_text
                for fact in self.facts
            )
        return self.cited(citation)


@dataclass(frozen=True, slots=True)
class Scores:
    """Retrieval figures of a set of questions."""

    questions: int
    recall_at_1: float
    recall_at_5: float
    mrr: float


@dataclass(frozen=True, slots=True)
class AnswerScores:
    """Figures of the answers /v1/chat delivered for a set of questions (None: none asked)."""

    asked: int
    errors: int
    answer_accuracy: float | None
    citation_accuracy: float | None
    citation_precision: float | None
    refusal_accuracy: float | None
    false_refusals: float | None
    """Share of answerable questions the chatbot refused."""
    validated: float | None = None
    """Share of generated answers (an LLM mode) that passed validation; None: none generated."""


@dataclass
class EvalReport:
    """Retrieval figures per retriever and set (and per hard kind), answers per set.

    ``overall`` / ``by_kind``: today's set with the :data:`DEFAULT_RETRIEVAL` retriever.
    """

    overall: Scores
    by_kind: dict[str, Scores]
    retrievers: dict[str, dict[str, Scores]] = field(default_factory=dict)
    """retriever -> set (:data:`SETS`) -> scores."""
    hard_kinds: dict[str, dict[str, Scores]] = field(default_factory=dict)
    """retriever -> hard kind -> scores (both splits)."""
    answers: dict[str, AnswerScores] = field(default_factory=dict)
    """set -> figures of the chatbot's answers."""
    citation_accuracy: float | None = None
    answer_accuracy: float | None = None
    chat_errors: int = 0
    misses: list[str] = field(default_factory=list)


def first_relevant_rank(question: Question, hits: Sequence[ChunkHit]) -> int | None:
    """1-based rank of the first relevant hit (a two-fact question: the rank at which both
    facts have been found), or None."""
    facts = question.facts
    if len(facts) > 1:
        ranks = [
            next((r for r, hit in enumerate(hits, start=1) if question.covers(hit, f)), None)
            for f in facts
        ]
        return None if None in ranks else max(r for r in ranks if r is not None)
    for rank, hit in enumerate(hits, start=1):
        if question.relevant(hit):
            return rank
    return None


def score(ranks: Sequence[int | None]) -> Scores:
    """recall@1, recall@5 and MRR of the first-relevant ranks of some questions."""
    n = len(ranks)
    if n == 0:
        return Scores(0, 0.0, 0.0, 0.0)
    return Scores(
        questions=n,
        recall_at_1=sum(1 for r in ranks if r is not None and r <= 1) / n,
        recall_at_5=sum(1 for r in ranks if r is not None and r <= 5) / n,
        mrr=sum(1.0 / r for r in ranks if r is not None) / n,
    )


def build_questions(
    facts: Sequence[Fact], product_questions: Sequence[ProductQuestion]
) -> list[Question]:
    """Today's set: one question per manual fact, plus the catalogue questions."""
    return [
        *(Question(f.question, "pdf", fact=f) for f in facts),
        *(Question(q.question, "product", product_id=q.product_id) for q in product_questions),
    ]


def hard_set(questions: Sequence[HardQuestion]) -> list[Question]:
    """The hard set as evaluation questions (split "hard-dev" / "hard-test")."""
    return [
        Question(
            q.question,
            q.kind,
            product_id=q.product_id,
            fact=q.facts[0] if q.facts else None,
            also=q.facts[1:],
            answers=q.answers,
            split=f"hard-{q.split}",
        )
        for q in questions
    ]


def retrieval_scores(
    questions: Sequence[Question], ranks: Sequence[int | None]
) -> tuple[dict[str, Scores], dict[str, Scores]]:
    """Scores per set and per hard kind of the answerable questions' ranks."""
    pairs = [(q, r) for q, r in zip(questions, ranks, strict=True) if q.answerable]
    by_set = {name: score([r for q, r in pairs if q.split == name]) for name in SETS}
    by_kind = {
        kind: score([r for q, r in pairs if q.kind == kind and q.split != "today"])
        for kind in HARD_KINDS
        if kind != "no-answer"
    }
    return by_set, by_kind


async def run_eval(
    *,
    settings: IngestSettings,
    files: int = 4,
    products_per_file: int = 4,
    product_questions: int = 100,
    hard_per_kind: int = 40,
    seed: int = 7,
    chatbot_url: str | None = None,
    chat_sets: Sequence[str] = SETS,
    chat_concurrency: int = 4,
    chat_timeout_s: float = CHAT_TIMEOUT_S,
    say: Say,
) -> EvalReport:
    """Generate and ingest the evaluation corpus, ask every question, return the figures.

    ``chat_sets``: the sets whose questions go to ``/v1/chat`` (all by default; a local LLM
    answers one question at a time, so its evaluation may ask fewer), ``chat_concurrency``
    questions at a time, each within ``chat_timeout_s``.
    """
    corpus = generate_manuals(files=files, products_per_file=products_per_file, seed=seed)
    products, _ = unique_products(load_products(settings))  # a repeated id: its last row
    questions = [
        *build_questions(
            corpus.facts, catalogue_questions(products, count=product_questions, seed=seed)
        ),
        *hard_set(hard_questions(corpus.facts, products, per_kind=hard_per_kind, seed=seed)),
    ]
    pool = await create_pool(settings)
    triton = TritonClient.from_settings(settings)
    report = EvalReport(overall=score([]), by_kind={})
    try:
        await apply_documents_schema(pool)
        embedder = Embedder.from_settings(settings, triton=triton)
        summary = await ingest_products(pool, embedder, products)
        say(f"catalogue: {summary.total} products ({summary.unchanged} already ingested)")
        for name, data in corpus.files.items():
            result = await ingest_pdf(pool, embedder, name, data)
            say(f"{name}: {result.status} ({result.pages} pages, {result.chunks} chunks)")
        vectors = await embedder.embed([q.text for q in questions])
        for retrieval in RETRIEVALS:
            ranks: list[int | None] = []
            for question, vector in zip(questions, vectors, strict=True):
                if not question.answerable:
                    ranks.append(None)
                    continue
                hits = await search_chunks(
                    pool, vector, k=SEARCH_K, text=question.text, retrieval=retrieval
                )
                rank = first_relevant_rank(question, hits)
                ranks.append(rank)
                if retrieval == DEFAULT_RETRIEVAL and (rank is None or rank > 5):
                    report.misses.append(
                        f"{question.split} {question.kind}: {question.text} (rank {rank or '>10'})"
                    )
            by_set, by_kind = retrieval_scores(questions, ranks)
            report.retrievers[retrieval] = by_set
            report.hard_kinds[retrieval] = by_kind
            if retrieval == DEFAULT_RETRIEVAL:
                today = [
                    (q, r) for q, r in zip(questions, ranks, strict=True) if q.split == "today"
                ]
                report.overall = score([r for _, r in today])
                report.by_kind = {
                    kind: score([r for q, r in today if q.kind == kind])
                    for kind in ("pdf", "product")
                }
        if chatbot_url:
            asked = [q for q in questions if q.split in chat_sets]
            await _ask_chatbot(
                chatbot_url,
                asked,
                report,
                pool,
                concurrency=chat_concurrency,
                timeout_s=chat_timeout_s,
            )
    finally:
        await triton.close()
        await pool.close()
    return report


@dataclass(frozen=True, slots=True)
class _Outcome:
    question: Question
    body: dict[str, Any] | None  # None: the request failed


async def _chunk_texts(pool: asyncpg.Pool, outcomes: Sequence[_Outcome]) -> dict[str, str]:
    """The text of every cited chunk, by chunk id."""
    ids = {
        int(c["chunk_id"])
        for o in outcomes
        if o.body is not None
        for c in o.body.get("citations", [])
        if c.get("chunk_id")
    }
    rows = await pool.fetch("select id, text from chunks where id = any($1::bigint[])", list(ids))
    return {str(row["id"]): str(row["text"]) for row in rows}


def answer_scores(outcomes: Sequence[_Outcome], chunk_texts: dict[str, str]) -> AnswerScores:
    """The figures of some answers (see the module doc)."""
    done = [o for o in outcomes if o.body is not None]
    answerable = [o for o in done if o.question.answerable]
    unanswerable = [o for o in done if not o.question.answerable]

    def citations(o: _Outcome) -> list[dict[str, Any]]:
        assert o.body is not None
        return list(o.body.get("citations", []))

    def share(hits: int, total: int) -> float | None:
        return hits / total if total else None

    verdicts = [
        o.body["validation"] for o in done if o.body is not None and o.body.get("validation")
    ]
    checked = [o for o in answerable if o.question.expected]
    right = sum(
        all(
            value.lower() in str(o.body.get("answer", "")).lower()  # type: ignore[union-attr]
            for value in o.question.expected
        )
        for o in checked
    )
    cited = [c for o in answerable for c in citations(o)]
    precise = sum(
        o.question.cites_fact(c, chunk_texts.get(str(c.get("chunk_id"))))
        for o in answerable
        for c in citations(o)
    )
    return AnswerScores(
        asked=len(outcomes),
        errors=len(outcomes) - len(done),
        answer_accuracy=share(right, len(checked)),
        citation_accuracy=share(
            sum(any(o.question.cited(c) for c in citations(o)) for o in answerable),
            len(answerable),
        ),
        citation_precision=share(precise, len(cited)),
        refusal_accuracy=share(sum(not citations(o) for o in unanswerable), len(unanswerable)),
        false_refusals=share(sum(not citations(o) for o in answerable), len(answerable)),
        validated=share(sum(bool(v.get("passed")) for v in verdicts), len(verdicts)),
    )


async def _ask_chatbot(
    url: str,
    questions: Sequence[Question],
    report: EvalReport,
    pool: asyncpg.Pool,
    *,
    concurrency: int,
    timeout_s: float,
) -> None:
    """Every question to ``POST /v1/chat``, ``concurrency`` at a time; the figures per set
    asked."""
    limit = asyncio.Semaphore(concurrency)

    async def ask(client: httpx.AsyncClient, question: Question) -> _Outcome:
        async with limit:
            try:
                response = await client.post("/v1/chat", json={"question": question.text})
                response.raise_for_status()
                return _Outcome(question, dict(response.json()))
            except (httpx.HTTPError, ValueError):
                return _Outcome(question, None)

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as client:
        outcomes = await asyncio.gather(*(ask(client, q) for q in questions))
    texts = await _chunk_texts(pool, outcomes)
    asked = {o.question.split for o in outcomes}
    report.answers = {
        name: answer_scores([o for o in outcomes if o.question.split == name], texts)
        for name in SETS
        if name in asked
    }
    report.chat_errors = sum(a.errors for a in report.answers.values())
    today = report.answers.get("today")
    if today is not None:
        report.citation_accuracy = today.citation_accuracy
        report.answer_accuracy = today.answer_accuracy
