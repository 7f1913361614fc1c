"""SQL of documents, chunks and products: the schema, vector search, the chunk write path.

Tables (``migrations/0001_documents_chunks_products.sql``): ``documents`` (one row per PDF or
product, unique ``(source, external_id)``, ``content_hash``, ``status``), ``chunks`` (text,
offsets, page, ``vector(384)`` with an HNSW cosine index) and ``products`` (the catalogue, for
SQL facts). A process that reads or writes them applies the schema once at start:

    await apply_documents_schema(pool)
    hits = await search_chunks(pool, query_vector, k=5, source="pdf")
    hits[0].title, hits[0].page, hits[0].text, hits[0].score  # score = cosine similarity

Vectors travel as pgvector's text form (``'[0.1,...]'::vector``): no codec to register on the
shared pool.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import asyncpg
import numpy as np
import numpy.typing as npt

from services.common.db import database_errors
from services.common.errors import InvalidInput
from services.common.migrations import apply_migrations
from services.domain.documents.embeddings import EMBEDDING_DIM

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
SCHEMA_SERVICE: Final = "documents"
"""The ``schema_migrations`` key of these tables (the chatbot's own tables use ``chatbot``)."""
Source = Literal["product", "pdf"]
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection, or one borrowed from a pool (``async with pool.acquire() as conn``)."""
Status = Literal["processing", "ready", "failed"]
SOURCES: Final[tuple[str, ...]] = ("product", "pdf")
EF_SEARCH: Final = 100
"""HNSW candidate list per search (pgvector's default is 40); with iterative scans a filtered
search still returns k rows."""
SEARCH_TIMEOUT_S: Final = 2.0


async def apply_documents_schema(pool: asyncpg.Pool) -> list[int]:
    """Apply the documents/chunks/products migrations (idempotent; safe with many replicas)."""
    return await apply_migrations(pool, service=SCHEMA_SERVICE, directory=MIGRATIONS)


def vector_literal(vector: npt.NDArray[np.floating[Any]]) -> str:
    """pgvector's text form of one vector: ``[x1,x2,...]``."""
    if vector.shape != (EMBEDDING_DIM,):
        raise ValueError(f"expected a vector of {EMBEDDING_DIM} values, got {vector.shape}")
    return "[" + ",".join(map(repr, vector.astype(np.float32).tolist())) + "]"


@dataclass(frozen=True, slots=True)
class ChunkHit:
    """One retrieved chunk, its document and its cosine similarity to the query."""

    chunk_id: int
    document_id: uuid.UUID
    source: str
    external_id: str
    title: str
    page: int | None
    char_start: int
    char_end: int
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One ``documents`` row (what a status URL shows)."""

    id: uuid.UUID
    source: str
    external_id: str
    title: str
    content_hash: str
    page_count: int | None
    status: str
    error: str | None
    chunk_count: int
    created_at: datetime
    updated_at: datetime


_SEARCH = """
select * from (
    select c.id as chunk_id, c.document_id, d.source, d.external_id, d.title, c.page,
           c.char_start, c.char_end, c.text, 1 - (c.embedding <=> $1::vector) as score
    from chunks c join documents d on d.id = c.document_id
    where ($2::text is null or d.source = $2) and ($3::uuid is null or c.document_id = $3)
    order by c.embedding <=> $1::vector
    limit $4
) hits order by score desc
"""


async def search_chunks(
    pool: asyncpg.Pool,
    query_embedding: npt.NDArray[np.floating[Any]],
    *,
    k: int,
    source: Source | None = None,
    document_id: uuid.UUID | None = None,
    timeout_s: float = SEARCH_TIMEOUT_S,
) -> list[ChunkHit]:
    """The ``k`` chunks nearest to ``query_embedding`` (cosine, HNSW), best first.

    ``source`` ('product' or 'pdf') and ``document_id`` filter; an iterative index scan keeps
    a filtered search from coming back short. Without a filter each source is searched on its
    own and the hits merged by score: the thousands of short, alike product texts otherwise
    hold the graph search in their region and a few PDF pages can be missed even when they
    are the nearest (seen: a page at cosine 0.62 missed at ef_search 100 for products at 0.28).
    """
    if not 1 <= k <= 100:
        raise InvalidInput("k must be between 1 and 100")
    if source is not None and source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}")
    literal = vector_literal(np.asarray(query_embedding))
    async with database_errors("search_chunks"), pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"set local hnsw.ef_search = {max(EF_SEARCH, k)}; "
            "set local hnsw.iterative_scan = relaxed_order",
            timeout=timeout_s,
        )
        sources: tuple[str | None, ...] = (
            SOURCES if source is None and document_id is None else (source,)
        )
        rows = [
            row
            for each in sources
            for row in await conn.fetch(_SEARCH, literal, each, document_id, k, timeout=timeout_s)
        ]
    rows.sort(key=lambda row: row["score"], reverse=True)
    return [ChunkHit(**dict(row)) for row in rows[:k]]


_DOCUMENT_COLUMNS = (
    "id, source, external_id, title, content_hash, page_count, status, error, chunk_count, "
    "created_at, updated_at"
)


async def get_document(
    pool: asyncpg.Pool, document_id: uuid.UUID, *, timeout_s: float = SEARCH_TIMEOUT_S
) -> DocumentInfo | None:
    """One document by id, or None."""
    async with database_errors("get_document"):
        row = await pool.fetchrow(
            f"select {_DOCUMENT_COLUMNS} from documents where id = $1",
            document_id,
            timeout=timeout_s,
        )
    return None if row is None else DocumentInfo(**dict(row))


async def find_document(
    pool: asyncpg.Pool, source: Source, external_id: str, *, timeout_s: float = SEARCH_TIMEOUT_S
) -> DocumentInfo | None:
    """One document by its natural key (source, external id), or None."""
    async with database_errors("find_document"):
        row = await pool.fetchrow(
            f"select {_DOCUMENT_COLUMNS} from documents where source = $1 and external_id = $2",
            source,
            external_id,
            timeout=timeout_s,
        )
    return None if row is None else DocumentInfo(**dict(row))


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk to write: where it comes from and its vector."""

    page: int | None
    chunk_index: int
    char_start: int
    char_end: int
    text: str
    embedding: npt.NDArray[np.float32]


async def mark_processing(
    conn: Conn,
    *,
    source: Source,
    external_id: str,
    title: str,
    timeout_s: float,
) -> uuid.UUID:
    """Create the document (status processing) or mark an existing one processing; its id.

    An existing document keeps its chunks and hash until :func:`replace_chunks` swaps them.
    """
    document_id: uuid.UUID = await conn.fetchval(
        "insert into documents (id, source, external_id, title, content_hash, status) "
        "values ($1, $2, $3, $4, '', 'processing') "
        "on conflict (source, external_id) do update "
        "set status = 'processing', error = null, updated_at = now() "
        "returning id",
        uuid.uuid4(),
        source,
        external_id,
        title,
        timeout=timeout_s,
    )
    return document_id


async def mark_failed(
    pool: asyncpg.Pool, document_id: uuid.UUID, error: str, *, timeout_s: float
) -> None:
    """Record why a document could not be ingested (its old chunks, if any, stay)."""
    async with database_errors("mark_document_failed"):
        await pool.execute(
            "update documents set status = 'failed', error = $2, updated_at = now() where id = $1",
            document_id,
            error[:2000],
            timeout=timeout_s,
        )


async def replace_chunks(
    conn: Conn,
    document_id: uuid.UUID,
    *,
    title: str,
    content_hash: str,
    page_count: int | None,
    chunks: Sequence[ChunkRow],
    timeout_s: float,
) -> None:
    """Swap a document's chunks and mark it ready. Call inside a transaction (one per doc)."""
    await conn.execute("delete from chunks where document_id = $1", document_id, timeout=timeout_s)
    if chunks:
        await conn.executemany(
            "insert into chunks (document_id, page, chunk_index, char_start, char_end, text, "
            "embedding) values ($1, $2, $3, $4, $5, $6, $7::vector)",
            [
                (
                    document_id,
                    c.page,
                    c.chunk_index,
                    c.char_start,
                    c.char_end,
                    c.text,
                    vector_literal(c.embedding),
                )
                for c in chunks
            ],
            timeout=timeout_s,
        )
    await conn.execute(
        "update documents set title = $2, content_hash = $3, page_count = $4, status = 'ready', "
        "error = null, chunk_count = $5, updated_at = now() where id = $1",
        document_id,
        title,
        content_hash,
        page_count,
        len(chunks),
        timeout=timeout_s,
    )
