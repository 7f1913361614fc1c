"""Suite `chatbot-retrieval`: embedding throughput on Triton vs in-process ONNX Runtime, and
vector search latency over 100k chunks in pgvector (HNSW vs exact).

Embeddings: the same texts in the same batches (product texts of the synthetic catalogue),
through :class:`services.domain.documents.embeddings.Embedder` (Triton, two model instances,
two calls in flight) and through two in-process ONNX Runtime sessions of one thread each run
side by side (the same CPU as Triton's two instances); pooling is the same code in both.

Retrieval: 100,000 chunks in the real ``chunks`` table: ``REAL_CHUNKS`` carry real embeddings of
product texts, the rest random unit vectors (embedding 100k texts would take most of an hour on
2 cores). Queries are real embeddings of questions about the real ones; each goes through
``search_chunks`` (HNSW, ef_search 100) and, as the anchor, the same query as an exact scan.
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
from models.chatbot.corpus import catalogue_questions
from models.classifier.data import generate_catalogue
from services.common.triton import TritonClient
from services.domain.documents.embeddings import EMBEDDING_DIM, Embedder, OnnxEmbedder, Vectors
from services.domain.documents.store import (
    EF_SEARCH,
    apply_documents_schema,
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


async def _load_chunks(pool: asyncpg.Pool, real: Vectors, texts: Sequence[str]) -> uuid.UUID:
    """One bench document with CHUNKS chunks (real vectors first), written by COPY, then the
    HNSW index rebuilt (building once is faster than growing it row by row)."""
    rng = np.random.default_rng(2024)
    bulk = rng.normal(size=(CHUNKS - len(real), EMBEDDING_DIM)).astype(np.float32)
    bulk /= np.linalg.norm(bulk, axis=1, keepdims=True)
    vectors = np.concatenate([real, bulk])
    document_id = uuid.uuid4()
    buffer = io.StringIO()
    for index, vector in enumerate(vectors):
        text = texts[index] if index < len(texts) else f"random chunk {index}"
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
        await conn.execute("analyze chunks")
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
        print(f"  loaded {CHUNKS:,} chunks and built the HNSW index in {load_s:.0f} s", flush=True)
        for vector in queries[:20]:  # warm-up
            await search_chunks(pool, vector, k=K)
        hnsw_ms: list[float] = []
        exact_ms: list[float] = []
        overlap = 0
        found = 0
        ids = {p.product_id: i for i, p in enumerate(products)}
        first_chunk = await pool.fetchval(
            "select min(id) from chunks where document_id = $1", document_id
        )
        for question, vector in zip(questions, queries, strict=True):
            t0 = time.perf_counter()
            hits = await search_chunks(pool, vector, k=K)
            t1 = time.perf_counter()
            exact = await _exact(pool, vector, K)
            t2 = time.perf_counter()
            hnsw_ms.append((t1 - t0) * 1000)
            exact_ms.append((t2 - t1) * 1000)
            overlap += len({h.chunk_id for h in hits} & set(exact))
            found += first_chunk + ids[question.product_id] in {h.chunk_id for h in hits}
        await pool.execute("delete from documents where id = $1", document_id)
    finally:
        await pool.close()
    ann_recall = overlap / (K * len(questions))
    p50, p99 = _percentile(hnsw_ms, 50), _percentile(hnsw_ms, 99)
    e50, e99 = _percentile(exact_ms, 50), _percentile(exact_ms, 99)
    print(f"  search: HNSW p50 {p50:.2f} ms p99 {p99:.2f} ms; exact p50 {e50:.1f} ms", flush=True)
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
                    "product texts and the rest random unit vectors (not embedded: too slow on "
                    f"this machine); {len(questions)} real question embeddings, top {K}, "
                    f"sequential; HNSW (m 16, ef_construction 64, ef_search {EF_SEARCH}) through "
                    "`search_chunks` (join with documents, iterative scan) vs an exact scan",
                    f"- loading the chunks (COPY) and building the index: {load_s:.0f} s",
                ]
            ),
            "| embeddings | texts/s |\n|---|---:|\n"
            f"| Triton gRPC (`Embedder`) | {triton_rate:,.0f} |\n"
            f"| in-process ONNX Runtime | {local_rate:,.0f} |",
            f"Ratio Triton / in-process: **{ratio:.2f}x**.",
            "| search (k=5) | p50 ms | p99 ms |\n|---|---:|---:|\n"
            f"| HNSW (`search_chunks`) | {p50:.2f} | {p99:.2f} |\n"
            f"| exact scan | {e50:.1f} | {e99:.1f} |",
            f"HNSW recall@5 against the exact scan: {ann_recall:.3f}; the product asked about "
            f"was in the top 5 for {found / len(questions):.3f} of the questions.",
        ]
    )


SUITE = Suite(name="chatbot-retrieval", components=("postgres", "triton"), run=run)
