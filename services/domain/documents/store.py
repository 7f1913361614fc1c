"""SQL of documents, chunks and products: the schema, chunk search, the chunk write path.

Tables (``migrations/``): ``documents`` (one row per PDF or product, unique ``(source,
external_id)``, ``content_hash``, ``status``), ``chunks`` (text, offsets, page, ``vector(384)``
with an HNSW cosine index, ``tsv``: the text's ``tsvector`` with a GIN index) and ``products``
(the catalogue, for SQL facts). A process that reads or writes them applies the schema once at
start:

    await apply_documents_schema(pool)
    hits = await search_chunks(pool, query_vector, k=5, text=question, retrieval="hybrid")
    hits[0].title, hits[0].page, hits[0].text, hits[0].score  # score = cosine similarity

Retrieval (:data:`Retrieval`): ``vector`` (HNSW, cosine), ``fulltext`` (the question's rarer
lexemes against ``tsv``, ranked by the sum of their IDF from ``chunk_lexemes``, the document
frequencies a trigger keeps, then ``ts_rank``) or ``hybrid``: both rankings, :data:`CANDIDATES`
deep, fused by weighted reciprocal rank fusion (:func:`rrf`, k = :data:`RRF_K`), in ONE
statement (:func:`build_search`: CTEs for each ranking and the fusion).

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
Retrieval = Literal["hybrid", "vector", "fulltext"]
RETRIEVALS: Final[tuple[Retrieval, ...]] = ("hybrid", "vector", "fulltext")
RRF_K: Final = 60
"""Reciprocal rank fusion: a chunk scores sum(weight / (RRF_K + rank)) over the rankings it is
in (weight 1 for the vector ranking, :data:`TEXT_RRF_WEIGHT` for the text ranking)."""
TEXT_RRF_WEIGHT: Final = 1.5
"""Weight of the text ranking in the fusion: its first match outscores the vector ranking's
first chunk instead of tying with it (decision 51)."""
CANDIDATES: Final = 20
"""Depth of each ranking before the fusion (decision 51)."""
TEXT_MATCHES: Final = 200
"""Full-text matches (heaviest first) that ``ts_rank`` orders further: bounds its work."""
MAX_LEXEME_SHARE: Final = 0.2
"""A lexeme of the question held by more than this share of the chunks is left out of the
full-text query (unless none of the question's lexemes is rarer): decision 51."""
ESSENTIAL_POSTINGS: Final = 1000
"""Max-score pruning: the rarest lexemes whose postings (chunks holding them) add up to at most
this find the full-text candidates; the commoner ones only weigh them (decision 51)."""
DIGIT_WEIGHT: Final = 2
"""Factor of the IDF of a lexeme with a digit (a code or a figure): decision 51."""
MIN_TEXT_COVERAGE: Final = 0.4
"""Hybrid: the full-text matches join the fusion only when the best holds this share of the
question's weight, like Elasticsearch's ``minimum_should_match`` (decision 51)."""
TEXT_SEARCH_CONFIG: Final = "english"
"""The text search configuration of ``chunks.tsv`` (migration 0002; decision 51): the query
must be parsed with the same one."""


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
    """Cosine similarity to the query vector, whichever ranking found the chunk."""
    fused: float = 0.0
    """Reciprocal rank fusion score (the order of the hits)."""
    vector_rank: int | None = None
    """1-based rank in the vector ranking (None: not in its top :data:`CANDIDATES`)."""
    text_rank: int | None = None
    """1-based rank in the full-text ranking (None: not matched, or not in its top)."""


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


def rrf(
    rankings: Sequence[Sequence[int]],
    *,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of rankings (ids, best first): (id, score) best first.

    An id scores ``sum(weight / (k + rank))`` over the rankings it is in (rank 1-based; every
    weight 1 unless ``weights``, one per ranking); ties go to the smaller id. The SQL of
    :func:`build_search` computes the same with weights (1, :data:`TEXT_RRF_WEIGHT`) for the
    (vector, text) rankings (the tests hold them equal); this is its reference.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


class _Params:
    """Positional parameters of a statement being built: ``add(value, "uuid")`` -> "$3::uuid"."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


_HIT_COLUMNS = (
    "c.id as chunk_id, c.document_id, d.source, d.external_id, d.title, c.page, c.char_start, "
    "c.char_end, c.text"
)


def build_search(
    retrieval: Retrieval,
    *,
    vector: str,
    text: str | None,
    k: int,
    source: Source | None = None,
    document_id: uuid.UUID | None = None,
    candidates: int = CANDIDATES,
) -> tuple[str, list[Any]]:
    """The one statement of a chunk search and its parameters.

    ``vector`` is the query's pgvector literal, ``text`` the question (full text and hybrid).
    CTEs: ``vector_ranked`` (HNSW order, ``candidates`` deep; without a filter each source is
    searched on its own and the two merged by distance, see :func:`search_chunks`),
    ``text_query`` (the question's lexemes, how many chunks hold each (``chunk_lexemes``,
    migration 0003) and their BM25 IDF, doubled for a lexeme with a digit), ``text_terms``
    (those held by at most :data:`MAX_LEXEME_SHARE` of the chunks, else the rarest),
    ``text_candidates`` and ``text_pruned`` (max-score pruning: the chunks holding the rarest
    terms, up to :data:`ESSENTIAL_POSTINGS` postings, and whether they are provably the best),
    ``text_matches`` (those candidates, or else the chunks holding any term, one GIN lookup per
    term; weighed by the sum of the IDF of the terms they hold; the :data:`TEXT_MATCHES`
    heaviest),
    ``text_ranked`` (by weight, then ``ts_rank``; hybrid: only the matches of the best
    weight, and none when that weight is under :data:`MIN_TEXT_COVERAGE` of the question's;
    see decision 51), ``fused`` (weighted RRF over the rankings there are, the best
    ``k``); then the hits
    with their cosine score. Filters apply inside every ranking.
    """
    if retrieval not in RETRIEVALS:
        raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}")
    if retrieval != "vector" and not (text and text.strip()):
        raise ValueError(f"{retrieval} retrieval needs the question's text")
    params = _Params()
    vec = params.add(vector, "vector")
    conditions: list[str] = []
    if source is not None:
        conditions.append(f"d.source = {params.add(source, 'text')}")
    if document_id is not None:
        conditions.append(f"c.document_id = {params.add(document_id, 'uuid')}")
    depth = params.add(candidates, "int")
    ctes: list[str] = []
    ranked: list[tuple[str, str]] = []  # (cte, rank column it fills)
    if retrieval in ("vector", "hybrid"):
        # The uncorrelated EXISTS is a one-time filter: a source without documents is not
        # searched at all (its iterative HNSW scan would read hnsw.max_scan_tuples for nothing;
        # seen: 21,000 tuples, 137 ms of a 167 ms search over 100,000 chunks).
        per_source = (
            [
                [f"d.source = '{each}'", f"exists (select from documents where source = '{each}')"]
                for each in SOURCES
            ]
            if not conditions
            else [conditions]
        )
        for n, where in enumerate(per_source):
            ctes.append(
                f"vector_{n} as (\n"
                f"    select c.id, c.embedding <=> {vec} as distance\n"
                "    from chunks c join documents d on d.id = c.document_id\n"
                f"    where {' and '.join(where)}\n"
                f"    order by c.embedding <=> {vec} limit {depth}\n)"
            )
        union = " union all ".join(f"select * from vector_{n}" for n in range(len(per_source)))
        ctes.append(
            "vector_ranked as (\n"
            "    select id, row_number() over (order by distance, id) as rank\n"
            f"    from ({union}) hits order by distance, id limit {depth}\n)"
        )
        ranked.append(("vector_ranked", "vector_rank"))
    if retrieval in ("fulltext", "hybrid"):
        words = params.add(text, "text")
        join = " join documents d on d.id = c.document_id" if source is not None else ""
        # IDF (BM25's, never negative), rounded so that equal sets of lexemes weigh exactly the
        # same whatever the order of the sum; '' is the count of all chunks (migration 0003).
        ctes.append(
            "text_query as (\n"
            "    select q.lexeme, quote_literal(q.lexeme)::tsquery as query, t.total,\n"
            "           coalesce(l.chunks, 0) as held,\n"
            "           round((ln(1 + (t.total - coalesce(l.chunks, 0) + 0.5)"
            " / (coalesce(l.chunks, 0) + 0.5))\n"
            f"                  * case when q.lexeme ~ '[0-9]' then {DIGIT_WEIGHT} else 1 end"
            ")::numeric, 6) as idf\n"
            f"    from unnest(tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', {words})))"
            " as q (lexeme)\n"
            "    cross join (select coalesce(max(chunks), 0) as total from chunk_lexemes"
            " where lexeme = '') t\n"
            "    left join chunk_lexemes l on l.lexeme = q.lexeme\n"
            ")"
        )
        # A lexeme in a large share of the chunks costs the most to match and tells the least.
        # Rarest first: ``before``, the postings of the rarer lexemes; ``rest``, the IDF of the
        # commoner ones (the most a chunk holding none of the rarer lexemes can weigh).
        ctes.append(
            "text_terms as (\n"
            "    select query, idf, held,\n"
            "           coalesce(sum(held) over rarer, 0) as before,\n"
            "           coalesce(sum(idf) over commoner, 0) as rest\n"
            "    from text_query\n"
            f"    where held <= {MAX_LEXEME_SHARE} * total"
            " or held = (select min(held) from text_query)\n"
            "    window rarer as (order by held, lexeme rows between unbounded preceding"
            " and 1 preceding),\n"
            "           commoner as (order by held, lexeme rows between 1 following"
            " and unbounded following)\n"
            ")"
        )
        # Candidates (max-score pruning): the chunks holding one of the rarest lexemes, up to
        # at most ESSENTIAL_POSTINGS postings, weighed over every term (none: no candidates).
        # When enough of them (hybrid: one; alone: the ranking's depth) outweigh ``rest``, no
        # other chunk can rank among them and the commoner lexemes' postings are never read;
        # otherwise every term's postings are (the same matches, more work).
        matching = " and ".join(["c.tsv @@ t.query", *conditions])
        need = "1" if retrieval == "hybrid" else depth
        ctes.append(
            "text_candidates as (\n"
            "    select c.id, (select sum(t.idf) from text_terms t where c.tsv @@ t.query)"
            " as weight\n"
            "    from (\n"
            "        select distinct m.id\n"
            f"        from text_terms t cross join lateral (\n"
            f"            select c.id from chunks c{join} where {matching}\n"
            f"        ) m where t.before + t.held <= {ESSENTIAL_POSTINGS}\n"
            "    ) k join chunks c on c.id = k.id\n"
            ")"
        )
        ctes.append(
            "text_pruned as (\n"
            "    select count(*) filter (where weight > (\n"
            "        select coalesce(min(rest), 0) from text_terms\n"
            f"        where before + held <= {ESSENTIAL_POSTINGS}\n"
            f"    )) >= {need} as exact\n"
            "    from text_candidates\n"
            ")"
        )
        ctes.append(
            "text_matches as (\n"
            "    select id, weight from text_candidates where (select exact from text_pruned)\n"
            "    union all\n"
            "    select m.id, sum(t.idf) as weight\n"
            "    from text_terms t cross join lateral (\n"
            f"        select c.id from chunks c{join} where {matching}\n"
            "    ) m\n"
            "    where not (select exact from text_pruned)\n"
            "    group by m.id\n"
            f"    order by weight desc, id limit {TEXT_MATCHES}\n"
            ")"
        )
        # Fused, only the matches of the best weight count (the others would add agreement
        # with the vector ranking on the question's commoner words), and only when the best
        # holds MIN_TEXT_COVERAGE of the question's weight (the IDF of every term): a weaker
        # match says the question's own words are not in the corpus, and the vector ranking
        # alone decides (decision 51). Alone, every match counts.
        best_only = (
            "where m.weight = m.best"
            f" and m.best >= {MIN_TEXT_COVERAGE} * (select sum(idf) from text_terms)"
            if retrieval == "hybrid"
            else ""
        )
        relevance = (
            "ts_rank(c.tsv, (select string_agg(query::text, ' | ')::tsquery from text_terms))"
        )
        ctes.append(
            "text_ranked as (\n"
            "    select m.id,\n"
            f"           row_number() over (order by m.weight desc, {relevance} desc, m.id)"
            " as rank\n"
            "    from (select id, weight, max(weight) over () as best from text_matches) m\n"
            f"    join chunks c on c.id = m.id {best_only}\n"
            f"    order by rank limit {depth}\n)"
        )
        ranked.append(("text_ranked", "text_rank"))
    columns = [name for _, name in ranked]
    weights = {"vector_rank": 1.0, "text_rank": TEXT_RRF_WEIGHT}
    parts = [
        f"select id, rank, {weights[column]}::float8, "
        + ", ".join("rank" if name == column else "null::bigint" for name in columns)
        + f" from {cte}"
        for cte, column in ranked
    ]
    ranks = "\n        union all\n        ".join(parts)
    names = ", ".join(["id", "rank", "weight", *columns])
    ctes.append(
        "fused as (\n"
        f"    select id, sum(weight / ({RRF_K} + rank)) as fused, "
        + ", ".join(f"min({name}) as {name}" for name in columns)
        + "\n"
        f"    from (\n        {ranks}\n    ) ranks ({names})\n"
        f"    group by id order by fused desc, id limit {params.add(k, 'int')}\n)"
    )
    rank_columns = "".join(f", f.{name}::int" for name in columns)
    sql = (
        "with "
        + ",\n".join(ctes)
        + f"\nselect {_HIT_COLUMNS}, 1 - (c.embedding <=> {vec}) as score, f.fused{rank_columns}\n"
        "from fused f join chunks c on c.id = f.id join documents d on d.id = c.document_id\n"
        "order by f.fused desc, c.id"
    )
    return sql, params.values


async def search_chunks(
    pool: asyncpg.Pool,
    query_embedding: npt.NDArray[np.floating[Any]],
    *,
    k: int,
    text: str | None = None,
    retrieval: Retrieval = "vector",
    source: Source | None = None,
    document_id: uuid.UUID | None = None,
    candidates: int = CANDIDATES,
    timeout_s: float = SEARCH_TIMEOUT_S,
) -> list[ChunkHit]:
    """The best ``k`` chunks for a query, best first (see :func:`build_search`).

    ``retrieval`` "vector" orders by cosine distance (HNSW), "fulltext" by the full-text rank
    of ``text``, "hybrid" by reciprocal rank fusion of both; every hit carries its cosine
    ``score`` and its ranks. ``source`` ('product' or 'pdf') and ``document_id`` filter every
    ranking; an iterative index scan keeps a filtered vector search from coming back short.
    Without a filter each source is searched on its own and the hits merged by distance: the
    thousands of short, alike product texts otherwise hold the graph search in their region
    and a few PDF pages can be missed even when they are the nearest (seen: a page at cosine
    0.62 missed at ef_search 100 for products at 0.28).
    """
    if not 1 <= k <= 100:
        raise InvalidInput("k must be between 1 and 100")
    if source is not None and source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}")
    if retrieval not in RETRIEVALS:
        raise InvalidInput(f"retrieval must be one of {', '.join(RETRIEVALS)}")
    if retrieval != "vector" and not (text and text.strip()):
        raise InvalidInput(f"{retrieval} retrieval needs the question's text")
    sql, args = build_search(
        retrieval,
        vector=vector_literal(np.asarray(query_embedding)),
        text=text,
        k=k,
        source=source,
        document_id=document_id,
        candidates=max(k, candidates),
    )
    async with database_errors("search_chunks"), pool.acquire() as conn, conn.transaction():
        if retrieval != "fulltext":
            await conn.execute(
                f"set local hnsw.ef_search = {max(EF_SEARCH, k, candidates)}; "
                "set local hnsw.iterative_scan = relaxed_order",
                timeout=timeout_s,
            )
        rows = await conn.fetch(sql, *args, timeout=timeout_s)
    return [ChunkHit(**dict(row)) for row in rows]


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
