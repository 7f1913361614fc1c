"""Retrieval as the chatbot sees it: the shared chunk search, its hits as :class:`Passage`.

The API speaks of sources ``products`` and ``documents``; the documents store calls them
``product`` and ``pdf``. A product hit cites its product id, a PDF hit its document and page.

    search = chunk_search(pool, retrieval="hybrid", timeout_s=2.0)
    passages = await search(vector, "How long is the warranty?", 5, "documents", None)
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.chatbot.answer import Search
from services.chatbot.compose import Passage
from services.domain.documents.store import ChunkHit, Retrieval, Source, search_chunks

STORE_SOURCE: dict[str, Source] = {"products": "product", "documents": "pdf"}


def passage_of(hit: ChunkHit) -> Passage:
    """A search hit as a passage to cite."""
    if hit.source == "product":
        return Passage(
            source="products",
            text=hit.text,
            score=float(hit.score),
            product_id=hit.external_id,
            document=hit.title,
            chunk_id=str(hit.chunk_id),
        )
    return Passage(
        source="documents",
        text=hit.text,
        score=float(hit.score),
        document_id=str(hit.document_id),
        document=hit.external_id,
        page=hit.page,
        chunk_id=str(hit.chunk_id),
    )


def chunk_search(pool: asyncpg.Pool, *, retrieval: Retrieval, timeout_s: float) -> Search:
    """The :data:`Search` of the answerer, on the shared chunk search (``retrieval``: hybrid,
    vector or fulltext; ``CHATBOT_RETRIEVAL``)."""

    async def search(
        vector: Any, question: str, k: int, source: str | None, document_id: uuid.UUID | None
    ) -> list[Passage]:
        hits = await search_chunks(
            pool,
            vector,
            k=k,
            text=question,
            retrieval=retrieval,
            source=STORE_SOURCE[source] if source else None,
            document_id=document_id,
            timeout_s=timeout_s,
        )
        return [passage_of(hit) for hit in hits]

    return search
