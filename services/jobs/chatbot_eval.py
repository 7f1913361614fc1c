"""``modelfleet eval chatbot``: retrieval quality (recall@1, recall@5, MRR) and citation accuracy.

The evaluation set is generated (``models.chatbot.corpus``): PDF manuals of invented products
whose every fact sentence is known by file and page (one question per fact), and questions
naming products of the catalogue by title. The manuals (``eval-manual-NN.pdf``) and the
catalogue are ingested first (idempotent), then every question is embedded and searched over
the WHOLE corpus (no source filter). A hit is relevant when it is the product asked about, or
a chunk of the right file and page that contains the fact's sentence.

With ``chatbot_url``, each question also goes to ``POST /v1/chat``; citation accuracy is the
share of answers citing the right product, or the right file and page.

    report = await run_eval(settings=IngestSettings(), say=print)
    report.overall.recall_at_5
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from models.chatbot.corpus import Fact, ProductQuestion, catalogue_questions, generate_manuals
from services.common.db import create_pool
from services.common.triton import TritonClient
from services.domain.documents.embeddings import Embedder
from services.domain.documents.ingest import ingest_pdf, ingest_products
from services.domain.documents.store import ChunkHit, apply_documents_schema, search_chunks
from services.jobs.ingest import IngestSettings, Say, load_products, unique_products

SEARCH_K: Final = 10
"""Depth of each search (MRR counts ranks up to here)."""
CHAT_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question and what answers it."""

    text: str
    kind: str  # "pdf" or "product"
    product_id: str | None = None
    fact: Fact | None = None

    def relevant(self, hit: ChunkHit) -> bool:
        """Does this retrieved chunk answer the question?"""
        if self.fact is not None:
            return (
                hit.source == "pdf"
                and hit.external_id == self.fact.file
                and hit.page == self.fact.page
                and self.fact.sentence in hit.text
            )
        return hit.source == "product" and hit.external_id == self.product_id

    def cited(self, citation: dict[str, Any]) -> bool:
        """Does this citation of a /v1/chat answer point at the right source?"""
        if self.fact is not None:
            return bool(
                citation.get("document") == self.fact.file
                and citation.get("page") == self.fact.page
            )
        return bool(citation.get("product_id") == self.product_id)


@dataclass(frozen=True, slots=True)
class Scores:
    """Retrieval figures of a set of questions."""

    questions: int
    recall_at_1: float
    recall_at_5: float
    mrr: float


@dataclass
class EvalReport:
    """Figures overall and per kind; citation accuracy when the chatbot was asked."""

    overall: Scores
    by_kind: dict[str, Scores]
    citation_accuracy: float | None = None
    answer_accuracy: float | None = None
    chat_errors: int = 0
    misses: list[str] = field(default_factory=list)


def first_relevant_rank(question: Question, hits: Sequence[ChunkHit]) -> int | None:
    """1-based rank of the first relevant hit, or None."""
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
    """The evaluation set: one question per manual fact, plus the catalogue questions."""
    return [
        *(Question(f.question, "pdf", fact=f) for f in facts),
        *(Question(q.question, "product", product_id=q.product_id) for q in product_questions),
    ]


async def run_eval(
    *,
    settings: IngestSettings,
    files: int = 4,
    products_per_file: int = 4,
    product_questions: int = 100,
    seed: int = 7,
    chatbot_url: str | None = None,
    say: Say,
) -> EvalReport:
    """Generate and ingest the evaluation corpus, ask every question, return the figures."""
    corpus = generate_manuals(files=files, products_per_file=products_per_file, seed=seed)
    products, _ = unique_products(load_products(settings))  # a repeated id: its last row
    questions = build_questions(
        corpus.facts, catalogue_questions(products, count=product_questions, seed=seed)
    )
    pool = await create_pool(settings)
    triton = TritonClient.from_settings(settings)
    try:
        await apply_documents_schema(pool)
        embedder = Embedder.from_settings(settings, triton=triton)
        summary = await ingest_products(pool, embedder, products)
        say(f"catalogue: {summary.total} products ({summary.unchanged} already ingested)")
        for name, data in corpus.files.items():
            result = await ingest_pdf(pool, embedder, name, data)
            say(f"{name}: {result.status} ({result.pages} pages, {result.chunks} chunks)")
        vectors = await embedder.embed([q.text for q in questions])
        ranks: list[int | None] = []
        misses: list[str] = []
        for question, vector in zip(questions, vectors, strict=True):
            hits = await search_chunks(pool, vector, k=SEARCH_K)
            rank = first_relevant_rank(question, hits)
            ranks.append(rank)
            if rank is None or rank > 5:
                misses.append(f"{question.kind}: {question.text} (rank {rank or '>10'})")
    finally:
        await triton.close()
        await pool.close()
    report = EvalReport(
        overall=score(ranks),
        by_kind={
            kind: score([r for q, r in zip(questions, ranks, strict=True) if q.kind == kind])
            for kind in ("pdf", "product")
        },
        misses=misses,
    )
    if chatbot_url:
        await _ask_chatbot(chatbot_url, questions, report)
    return report


async def _ask_chatbot(url: str, questions: Sequence[Question], report: EvalReport) -> None:
    """Citation accuracy (right source cited) and answer accuracy (manual facts: the answer
    text contains the fact's value) of ``POST /v1/chat``, four questions at a time."""
    limit = asyncio.Semaphore(4)
    outcomes: list[tuple[bool, bool | None] | None] = []

    async def ask(client: httpx.AsyncClient, question: Question) -> None:
        async with limit:
            try:
                response = await client.post("/v1/chat", json={"question": question.text})
                response.raise_for_status()
                body = response.json()
            except (httpx.HTTPError, ValueError):
                outcomes.append(None)
                return
        cited = any(question.cited(c) for c in body.get("citations", []))
        answered = None
        if question.fact is not None:
            answered = question.fact.answer.lower() in str(body.get("answer", "")).lower()
        outcomes.append((cited, answered))

    async with httpx.AsyncClient(base_url=url, timeout=CHAT_TIMEOUT_S) as client:
        await asyncio.gather(*(ask(client, q) for q in questions))
    answered = [o for o in outcomes if o is not None]
    report.chat_errors = len(outcomes) - len(answered)
    if answered:
        report.citation_accuracy = sum(1 for cited, _ in answered if cited) / len(answered)
        facts = [a for _, a in answered if a is not None]
        report.answer_accuracy = sum(facts) / len(facts) if facts else None
