"""Ingestion: PDFs and catalogue products -> chunks -> embeddings -> pgvector, idempotently.

Idempotent by content hash (:func:`services.domain.documents.pdf.text_hash`): a document whose
hash matches the stored one, and is ready, is left alone (no write at all); a changed one gets
its chunks replaced in ONE transaction (readers see the old chunks or the new ones, never a mix);
a new one is created. A bad PDF raises before anything is written.

    result = await ingest_pdf(pool, embedder, "manual.pdf", data)   # IngestResult
    result.status in ("created", "updated", "unchanged")

    summary = await ingest_products(pool, embedder, products)       # ProductIngestSummary

For ``POST /v1/documents`` (answer 202 at once, embed in the background):

    parsed = await asyncio.to_thread(parse_pdf, name, data)   # 422 on a bad PDF
    document_id, todo = await begin_pdf(pool, parsed)         # row exists, status "processing"
    if todo: background(ingest_parsed(pool, embedder, parsed))  # -> "ready" or "failed"
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

import asyncpg

from services.common.db import database_errors
from services.common.errors import ModelfleetError
from services.domain.documents.chunking import chunk_text
from services.domain.documents.embeddings import TextEmbedder, Vectors
from services.domain.documents.pdf import ParsedPdf, parse_pdf, text_hash
from services.domain.documents.store import (
    ChunkRow,
    Conn,
    Source,
    find_document,
    mark_failed,
    mark_processing,
    replace_chunks,
)

WRITE_TIMEOUT_S: Final = 60.0
"""Deadline of one ingestion statement (a document's chunks can be thousands of rows)."""
PRODUCT_BATCH: Final = 256
"""Products embedded and written per transaction."""

Outcome = Literal["created", "updated", "unchanged"]
Progress = Callable[[int], None]
"""Called with the number of items just finished (a progress bar's ``update``)."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one document's ingestion did."""

    document_id: uuid.UUID
    source: Source
    external_id: str
    status: Outcome
    chunks: int
    pages: int | None = None


def plan(
    existing: Mapping[str, tuple[str, str]], incoming: Mapping[str, str]
) -> dict[str, Outcome]:
    """Decide per key: ``existing`` maps key -> (content hash, status), ``incoming`` key -> hash.

    Unchanged only when the hash is equal AND the stored document is ready (a failed or
    interrupted ingestion is done again).
    """
    decisions: dict[str, Outcome] = {}
    for key, content_hash in incoming.items():
        stored = existing.get(key)
        if stored is None:
            decisions[key] = "created"
        elif stored == (content_hash, "ready"):
            decisions[key] = "unchanged"
        else:
            decisions[key] = "updated"
    return decisions


async def _existing(
    pool: asyncpg.Pool, source: Source, keys: Sequence[str]
) -> dict[str, tuple[str, str]]:
    async with database_errors("documents_hashes"):
        rows = await pool.fetch(
            "select external_id, content_hash, status from documents "
            "where source = $1 and external_id = any($2::text[])",
            source,
            list(keys),
            timeout=WRITE_TIMEOUT_S,
        )
    return {row["external_id"]: (row["content_hash"], row["status"]) for row in rows}


# -- PDFs ----------------------------------------------------------------------------------
def pdf_chunks(parsed: ParsedPdf) -> list[tuple[int, int, int, str]]:
    """(page, char_start, char_end, text) of every chunk of a parsed PDF, pages 1-based."""
    return [
        (number, chunk.char_start, chunk.char_end, chunk.text)
        for number, page in enumerate(parsed.pages, start=1)
        for chunk in chunk_text(page)
    ]


async def begin_pdf(pool: asyncpg.Pool, parsed: ParsedPdf) -> tuple[uuid.UUID, bool]:
    """The document's id and whether it needs ingesting (False: same content, already ready).

    When it does, the row exists afterwards with status ``processing`` (a status URL can show
    it); its old chunks, if any, stay searchable until :func:`ingest_parsed` replaces them.
    """
    existing = await _existing(pool, "pdf", [parsed.name])
    if plan(existing, {parsed.name: parsed.content_hash})[parsed.name] == "unchanged":
        stored = await find_document(pool, "pdf", parsed.name)
        if stored is not None:
            return stored.id, False
    async with database_errors("begin_document"), pool.acquire() as conn:
        document_id = await mark_processing(
            conn,
            source="pdf",
            external_id=parsed.name,
            title=parsed.title,
            timeout_s=WRITE_TIMEOUT_S,
        )
    return document_id, True


async def ingest_parsed(
    pool: asyncpg.Pool,
    embedder: TextEmbedder,
    parsed: ParsedPdf,
    *,
    progress: Progress | None = None,
) -> IngestResult:
    """Embed and store a parsed PDF (see :func:`begin_pdf`); the document ends ``ready``, or
    ``failed`` with the reason when embedding or writing fails (the error is re-raised)."""
    existing = await _existing(pool, "pdf", [parsed.name])
    outcome = plan(existing, {parsed.name: parsed.content_hash})[parsed.name]
    document_id, todo = await begin_pdf(pool, parsed)
    if not todo:
        stored = await find_document(pool, "pdf", parsed.name)
        chunks = stored.chunk_count if stored is not None else 0
        return IngestResult(document_id, "pdf", parsed.name, "unchanged", chunks, parsed.page_count)
    pieces = pdf_chunks(parsed)
    try:
        vectors = await embedder.embed([text for *_, text in pieces])
        rows = [
            ChunkRow(page, index, start, end, text, vectors[index])
            for index, (page, start, end, text) in enumerate(pieces)
        ]
        async with database_errors("replace_chunks"), pool.acquire() as conn:
            async with conn.transaction():
                await _lock_document(conn, document_id)
                await replace_chunks(
                    conn,
                    document_id,
                    title=parsed.title,
                    content_hash=parsed.content_hash,
                    page_count=parsed.page_count,
                    chunks=rows,
                    timeout_s=WRITE_TIMEOUT_S,
                )
    except (ModelfleetError, asyncpg.PostgresError) as exc:
        await mark_failed(pool, document_id, f"{type(exc).__name__}: {exc}", timeout_s=10.0)
        raise
    if progress is not None:
        progress(1)
    return IngestResult(document_id, "pdf", parsed.name, outcome, len(rows), parsed.page_count)


async def _lock_document(conn: Conn, document_id: uuid.UUID) -> None:
    """Serialise concurrent ingestions of one document (the row lock lasts the transaction)."""
    await conn.execute(
        "select 1 from documents where id = $1 for update", document_id, timeout=WRITE_TIMEOUT_S
    )


async def ingest_pdf(
    pool: asyncpg.Pool,
    embedder: TextEmbedder,
    name: str,
    data: bytes,
    *,
    progress: Progress | None = None,
) -> IngestResult:
    """Parse (in a thread), chunk, embed and store one PDF. A bad or encrypted file raises
    :class:`~services.domain.documents.pdf.InvalidDocument` before anything is written."""
    parsed = await asyncio.to_thread(parse_pdf, name, data)
    return await ingest_parsed(pool, embedder, parsed, progress=progress)


# -- products ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Product:
    """One catalogue product, as the ``products`` table holds it."""

    product_id: str
    title: str
    description: str
    brand: str
    price: float
    category_path: str
    currency: str = "USD"

    @property
    def category(self) -> str:
        """The leaf of the category path."""
        return self.category_path.rsplit(">", 1)[-1].strip()

    def text(self) -> str:
        """The text a product's one chunk embeds (and the chatbot quotes)."""
        return (
            f"{self.title}. Brand: {self.brand}. Category: {self.category_path}. "
            f"Price: {self.price:.2f} {self.currency}. {self.description}"
        ).strip()

    def content_hash(self) -> str:
        return text_hash(self.text())


@dataclass(frozen=True, slots=True)
class ProductIngestSummary:
    """Counts of one ``ingest_products`` call."""

    created: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


_UPSERT_PRODUCT = """
insert into products (product_id, title, description, brand, price, currency, category,
                      category_path)
values ($1, $2, $3, $4, $5, $6, $7, $8)
on conflict (product_id) do update set
    title = excluded.title, description = excluded.description, brand = excluded.brand,
    price = excluded.price, currency = excluded.currency, category = excluded.category,
    category_path = excluded.category_path, updated_at = now()
where (products.title, products.description, products.brand, products.price, products.currency,
       products.category_path)
   is distinct from (excluded.title, excluded.description, excluded.brand, excluded.price,
       excluded.currency, excluded.category_path)
"""


async def ingest_products(
    pool: asyncpg.Pool,
    embedder: TextEmbedder,
    products: Sequence[Product],
    *,
    batch_size: int = PRODUCT_BATCH,
    progress: Progress | None = None,
) -> ProductIngestSummary:
    """Upsert products into ``products`` and their one chunk each into ``documents``/``chunks``.

    Unchanged products (same text hash, ready) are not embedded or written; each batch of
    changed/new ones is written in one transaction.
    """
    counts: dict[Outcome, int] = {"created": 0, "updated": 0, "unchanged": 0}
    for start in range(0, len(products), batch_size):
        batch = {p.product_id: p for p in products[start : start + batch_size]}
        existing = await _existing(pool, "product", list(batch))
        decisions = plan(existing, {key: p.content_hash() for key, p in batch.items()})
        todo = [batch[key] for key, outcome in decisions.items() if outcome != "unchanged"]
        for outcome in decisions.values():
            counts[outcome] += 1
        if todo:
            vectors = await embedder.embed([p.text() for p in todo])
            await _write_products(pool, todo, vectors)
        if progress is not None:
            progress(len(batch))
    return ProductIngestSummary(counts["created"], counts["updated"], counts["unchanged"])


async def _write_products(
    pool: asyncpg.Pool, products: Sequence[Product], vectors: Vectors
) -> None:
    async with database_errors("write_products"), pool.acquire() as conn:
        async with conn.transaction():
            await conn.executemany(
                _UPSERT_PRODUCT,
                [
                    (
                        p.product_id,
                        p.title,
                        p.description,
                        p.brand,
                        Decimal(f"{p.price:.2f}"),
                        p.currency,
                        p.category,
                        p.category_path,
                    )
                    for p in products
                ],
                timeout=WRITE_TIMEOUT_S,
            )
            for product, vector in zip(products, vectors, strict=True):
                document_id = await mark_processing(
                    conn,
                    source="product",
                    external_id=product.product_id,
                    title=product.title,
                    timeout_s=WRITE_TIMEOUT_S,
                )
                text = product.text()
                await replace_chunks(
                    conn,
                    document_id,
                    title=product.title,
                    content_hash=product.content_hash(),
                    page_count=None,
                    chunks=[ChunkRow(None, 0, 0, len(text), text, vector)],
                    timeout_s=WRITE_TIMEOUT_S,
                )
