"""Suite `chatbot-retrieval`: embedding throughput on Triton vs in-process ONNX Runtime, and
vector search latency over 100k chunks in pgvector (HNSW vs exact).

Embeddings: the same texts in the same batches (product texts of the synthetic catalogue),
through :class:`services.domain.documents.embeddings.Embedder` (Triton, two model instances,
two calls in flight) and through two in-process ONNX Runtime sessions of one thread each run
side by side (the same CPU as Triton's two instances); pooling is the same code in both.

Retrieval: 100,000 chunks in the real ``chunks`` table: ``REAL_CHUNKS`` carry real embeddings of
product texts, the rest random unit vectors (embedding 100k texts would take most of an hour on
2 cores) with realistic text: manual-like paragraphs of generated products (the evaluation
corpus's fact and filler sentences), so full text matches as many chunks as it would on real
manuals. Queries are real embeddings (and the text) of questions about the real ones; each goes
through ``search_chunks`` as vector (HNSW, ef_search 100; the anchor), full text (GIN) and
hybrid (both, reciprocal rank fusion, one statement), and as an exact vector scan (ANN recall).
One hybrid query's ``EXPLAIN ANALYZE`` is printed and summarised in the section.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Sequence

import asyncpg
import numpy as np

from bench.suite import BenchContext, Suite, when_and_where
from models.chatbot.corpus import BRANDS, FILLER, NOUNS, _facts_of, catalogue_questions
from models.classifier.data import generate_catalogue
from services.common.triton import TritonClient
from services.domain.documents.embeddings import EMBEDDING_DIM, Embedder, OnnxEmbedder, Vectors
from services.domain.documents.store import (
    CANDIDATES,
    EF_SEARCH,
    ESSENTIAL_POSTINGS,
    MAX_LEXEME_SHARE,
    MIN_TEXT_COVERAGE,
    RRF_K,
    TEXT_RRF_WEIGHT,
    TEXT_SEARCH_CONFIG,
    Retrieval,
    apply_documents_schema,
    build_search,
    search_chunks,
    vector_literal,
)
from services.jobs.ingest import catalogue_products

TEXTS = 1024
"""Texts embedded per throughput run."""
BATCH = 32
CHUNKS = 100_000
REAL_CHUNKS = 2_000
QUERIES = 300
K = 5


def _percentile(samples_ms: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ms), q))


async def _embed_triton(ctx: BenchContext, texts: Sequence[str]) -> tuple[float, Vectors]:
    client = TritonClient(ctx.settings.triton_grpc_url, timeout_s=60.0)
    try:
        embedder = Embedder(client, batch_size=BATCH, timeout_s=60.0, max_in_flight=2)
        await embedder.embed(texts[:BATCH])  # warm-up
        started = time.perf_counter()
        vectors = await embedder.embed(texts)
        return len(texts) / (time.perf_counter() - started), vectors
    finally:
        await client.close()


async def _embed_in_process(texts: Sequence[str]) -> tuple[float, Vectors]:
    """Two single-thread sessions, batches alternating between them, run concurrently."""
    sessions = [OnnxEmbedder(batch_size=BATCH, threads=1) for _ in range(2)]
    sessions[0].embed_sync(texts[:BATCH])  # warm-up
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]

    def run(worker: int) -> list[tuple[int, Vectors]]:
        return [
            (i, sessions[worker].embed_sync(batch))
            for i, batch in enumerate(batches)
            if i % 2 == worker
        ]

    started = time.perf_counter()
    parts = await asyncio.gather(*(asyncio.to_thread(run, w) for w in range(2)))
    seconds = time.perf_counter() - started
    ordered = sorted((pair for part in parts for pair in part), key=lambda pair: pair[0])
    return len(texts) / seconds, np.concatenate([vectors for _, vectors in ordered])


def manual_texts(count: int, seed: int = 2024) -> list[str]:
    """``count`` manual-like chunk texts: a generated product's fact sentences and filler."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(count):
        brand, noun = BRANDS[int(rng.integers(len(BRANDS)))], NOUNS[int(rng.integers(len(NOUNS)))]
        item = f"{brand} {noun} {chr(65 + int(rng.integers(26)))}{int(rng.integers(2, 999))}"
        facts = [sentence for _, sentence, _, _ in _facts_of(item, rng)[:4]]
        filler = [str(s) for s in rng.choice(FILLER, size=2, replace=False)]
        out.append(" ".join([*facts[:2], filler[0], *facts[2:], filler[1]]))
    return out


async def _load_chunks(pool: asyncpg.Pool, real: Vectors, texts: Sequence[str]) -> uuid.UUID:
    """One bench document with CHUNKS chunks (real vectors first), written by COPY, then the
    HNSW and GIN indexes rebuilt (building once is faster than growing them row by row)."""
    rng = np.random.default_rng(2024)
    bulk = rng.normal(size=(CHUNKS - len(real), EMBEDDING_DIM)).astype(np.float32)
    bulk /= np.linalg.norm(bulk, axis=1, keepdims=True)
    vectors = np.concatenate([real, bulk])
    filler = manual_texts(CHUNKS - len(texts))
    document_id = uuid.uuid4()
    buffer = io.StringIO()
    for index, vector in enumerate(vectors):
        text = texts[index] if index < len(texts) else filler[index - len(texts)]
        text = text.replace("\\", " ").replace("\t", " ").replace("\n", " ")
        buffer.write(f"{document_id}\t{index}\t0\t{len(text)}\t{text}\t{vector_literal(vector)}\n")
    async with pool.acquire() as conn:
        await conn.execute(
            "insert into documents (id, source, external_id, title, content_hash, status) "
            "values ($1, 'pdf', $2, 'bench chunks', '', 'ready')",
            document_id,
            f"bench-{document_id}.pdf",
        )
        await conn.execute("drop index if exists chunks_embedding_hnsw")
        await conn.execute("drop index if exists chunks_tsv_gin")
        await conn.copy_to_table(
            "chunks",
            source=io.BytesIO(buffer.getvalue().encode()),
            columns=["document_id", "chunk_index", "char_start", "char_end", "text", "embedding"],
            timeout=600,
        )
        await conn.execute("set maintenance_work_mem = '512MB'")
        await conn.execute(
            "create index chunks_embedding_hnsw on chunks using hnsw (embedding vector_cosine_ops)",
            timeout=3600,
        )
        await conn.execute("create index chunks_tsv_gin on chunks using gin (tsv)", timeout=3600)
        await conn.execute("analyze chunks")
        await conn.execute("analyze documents")
    return document_id


async def _exact(pool: asyncpg.Pool, vector: Vectors, k: int) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("set local enable_indexscan = off")
        rows = await conn.fetch(
            "select id from chunks order by embedding <=> $1::vector limit $2",
            vector_literal(vector),
            k,
            timeout=60,
        )
    return [row["id"] for row in rows]


async def explain_hybrid(pool: asyncpg.Pool, vector: Vectors, question: str) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of one hybrid search, as ``search_chunks`` runs it."""
    sql, args = build_search("hybrid", vector=vector_literal(vector), text=question, k=K)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"set local hnsw.ef_search = {max(EF_SEARCH, CANDIDATES)}; "
            "set local hnsw.iterative_scan = relaxed_order"
        )
        rows = await conn.fetch(f"explain (analyze, buffers) {sql}", *args, timeout=60)
    return "\n".join(str(row[0]) for row in rows)


async def _kept_matches(pool: asyncpg.Pool, question: str) -> int:
    """Chunks holding a lexeme of ``question`` that the full-text search keeps (held by at most
    MAX_LEXEME_SHARE of the chunks, else the rarest; see ``build_search``)."""
    count: int = await pool.fetchval(
        "with q as (\n"
        "    select w.lexeme, coalesce(l.chunks, 0) as held, t.total\n"
        "    from unnest(tsvector_to_array(to_tsvector($2::regconfig, $1))) as w (lexeme)\n"
        "    cross join (select chunks as total from chunk_lexemes where lexeme = '') t\n"
        "    left join chunk_lexemes l on l.lexeme = w.lexeme\n"
        ")\n"
        "select count(*) from chunks where tsv @@ (\n"
        "    select string_agg(quote_literal(lexeme), ' | ')::tsquery from q\n"
        "    where held <= $3::float8 * total or held = (select min(held) from q)\n"
        ")",
        question,
        TEXT_SEARCH_CONFIG,
        MAX_LEXEME_SHARE,
    )
    return count


def plan_summary(plan: str) -> list[str]:
    """The lines of a plan worth a reader's eye: index scans, the fusion, the totals."""
    keep = ("Index Scan", "Bitmap", "Execution Time", "Planning Time", "HashAggregate", "CTE ")
    return [line.strip() for line in plan.splitlines() if any(word in line for word in keep)]


async def run(ctx: BenchContext) -> str:
    settings = ctx.settings
    catalogue = await asyncio.to_thread(generate_catalogue, REAL_CHUNKS, seed=99, images=False)
    products = catalogue_products(catalogue)
    texts = [p.text() for p in products]

    triton_rate, on_triton = await _embed_triton(ctx, texts[:TEXTS])
    local_rate, in_process = await _embed_in_process(texts[:TEXTS])
    max_diff = float(np.abs(on_triton - in_process).max())
    ratio = triton_rate / local_rate
    print(
        f"  embeddings: Triton {triton_rate:,.0f} texts/s, in-process {local_rate:,.0f} texts/s "
        f"-> {ratio:.2f}x (max difference {max_diff:.1e})",
        flush=True,
    )

    client = TritonClient(settings.triton_grpc_url, timeout_s=120.0)
    try:
        embedder = Embedder(client, batch_size=BATCH, timeout_s=120.0)
        real = await embedder.embed(texts)
        questions = catalogue_questions(products, count=QUERIES, seed=5)
        queries = await embedder.embed([q.question for q in questions])
    finally:
        await client.close()

    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await apply_documents_schema(pool)
        started = time.perf_counter()
        document_id = await _load_chunks(pool, real, texts)
        load_s = time.perf_counter() - started
        print(f"  loaded {CHUNKS:,} chunks and built the indexes in {load_s:.0f} s", flush=True)
        modes: tuple[Retrieval, ...] = ("vector", "fulltext", "hybrid")
        for question, vector in zip(questions[:20], queries[:20], strict=True):  # warm-up
            for mode in modes:
                await search_chunks(pool, vector, k=K, text=question.question, retrieval=mode)
        latency: dict[str, list[float]] = {mode: [] for mode in modes}
        exact_ms: list[float] = []
        overlap = 0
        found: dict[str, int] = dict.fromkeys(modes, 0)
        ids = {p.product_id: i for i, p in enumerate(products)}
        first_chunk = await pool.fetchval(
            "select min(id) from chunks where document_id = $1", document_id
        )
        for question, vector in zip(questions, queries, strict=True):
            asked = first_chunk + ids[question.product_id]
            for mode in modes:
                t0 = time.perf_counter()
                hits = await search_chunks(
                    pool, vector, k=K, text=question.question, retrieval=mode
                )
                latency[mode].append((time.perf_counter() - t0) * 1000)
                found[mode] += asked in {h.chunk_id for h in hits}
                if mode == "vector":
                    t1 = time.perf_counter()
                    exact = await _exact(pool, vector, K)
                    exact_ms.append((time.perf_counter() - t1) * 1000)
                    overlap += len({h.chunk_id for h in hits} & set(exact))
        plan = await explain_hybrid(pool, queries[0], questions[0].question)
        print(f"  EXPLAIN ANALYZE of a hybrid search ({questions[0].question!r}):\n{plan}")
        matches = await pool.fetchval(
            "select count(*) from chunks where tsv @@ "
            f"replace(plainto_tsquery('{TEXT_SEARCH_CONFIG}', $1)::text, '&', '|')::tsquery",
            questions[0].question,
        )
        kept = await _kept_matches(pool, questions[0].question)
        await pool.execute("delete from documents where id = $1", document_id)
    finally:
        await pool.close()
    ann_recall = overlap / (K * len(questions))
    figures = {mode: (_percentile(ms, 50), _percentile(ms, 99)) for mode, ms in latency.items()}
    v50, v99 = figures["vector"]
    e50, e99 = _percentile(exact_ms, 50), _percentile(exact_ms, 99)
    for name, (p50, p99) in figures.items():
        print(
            f"  search {name}: p50 {p50:.2f} ms p99 {p99:.2f} ms "
            f"(x{p50 / v50:.2f} / x{p99 / v99:.2f} the vector anchor)",
            flush=True,
        )
    names = {
        "vector": "vector (HNSW; the anchor)",
        "fulltext": "full text (GIN, IDF from `chunk_lexemes`)",
        "hybrid": f"hybrid (both, weighted RRF k={RRF_K}, one statement)",
    }
    rows = "\n".join(
        f"| {names[name]} | {p50:.2f} | {p99:.2f} | {p50 / v50:.2f}x | {p99 / v99:.2f}x "
        f"| {found[name] / len(questions):.3f} |"
        for name, (p50, p99) in figures.items()
    )
    summary = "\n".join(f"    {line}" for line in plan_summary(plan))
    return "\n\n".join(
        [
            f"## Chatbot retrieval: embeddings on Triton, search in {CHUNKS:,} chunks",
            "\n".join(
                [
                    when_and_where(),
                    f"- embeddings: all-MiniLM-L6-v2 int8, {TEXTS:,} product texts of the "
                    f"synthetic catalogue in batches of {BATCH}; Triton: 2 model instances "
                    "(Python backend running ONNX Runtime, 1 thread each), 2 calls in flight; "
                    "in-process: 2 ONNX Runtime sessions of 1 thread, side by side; "
                    f"max difference of the vectors {max_diff:.1e}",
                    f"- search: {CHUNKS:,} chunks, {REAL_CHUNKS:,} with real embeddings of "
                    "product texts, the rest random unit vectors (not embedded: too slow on this "
                    "machine) with generated manual-like texts (fact and filler sentences of "
                    f"invented products); {len(questions)} real questions, top {K}, "
                    f"sequential, through `search_chunks`: vector (HNSW m 16, ef_construction 64, "
                    f"ef_search {EF_SEARCH}, per source, iterative scan), full text (GIN on the "
                    f"'{TEXT_SEARCH_CONFIG}' tsvector), hybrid (both rankings {CANDIDATES} deep, "
                    f"fused by RRF k={RRF_K}, the text ranking weighted {TEXT_RRF_WEIGHT} and "
                    f"fused only when its best match holds {MIN_TEXT_COVERAGE:.0%} of the "
                    "question's weight, one statement); "
                    f"full text leaves out the lexemes held by more than {MAX_LEXEME_SHARE:.0%} "
                    "of the chunks, weighs matches by IDF and prunes them by max score (the "
                    f"rarest lexemes, up to {ESSENTIAL_POSTINGS:,} postings, find the "
                    "candidates); an exact scan for the ANN recall",
                    f"- loading the chunks (COPY) and building the indexes: {load_s:.0f} s",
                ]
            ),
            "| embeddings | texts/s |\n|---|---:|\n"
            f"| Triton gRPC (`Embedder`) | {triton_rate:,.0f} |\n"
            f"| in-process ONNX Runtime | {local_rate:,.0f} |",
            f"Ratio Triton / in-process: **{ratio:.2f}x**.",
            "| search (k=5) | p50 ms | p99 ms | p50 / vector | p99 / vector | asked product in "
            "top 5 |\n|---|---:|---:|---:|---:|---:|\n"
            f"{rows}\n| exact vector scan | {e50:.1f} | {e99:.1f} | | | |",
            f"Hybrid p99 {figures['hybrid'][1]:.2f} ms (goal <= 25 ms): "
            f"**{figures['hybrid'][1] / v99:.2f}x** the vector p99 measured in the same run. "
            f"HNSW recall@5 against the exact scan: {ann_recall:.3f}.",
            f'`EXPLAIN (ANALYZE, BUFFERS)` of one hybrid search ("{questions[0].question}"; '
            f"its words match {matches:,} of the {CHUNKS:,} chunks, the lexemes full text keeps "
            f"{kept:,}), the lines that matter:\n\n"
            f"{summary}",
        ]
    )


SUITE = Suite(name="chatbot-retrieval", components=("postgres", "triton"), run=run)
