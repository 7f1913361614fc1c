"""Benchmark: POST /v1/chat in extractive mode, at concurrency 1 and 8, against its anchor.

The corpus: generated PDF manuals (uploaded through POST /v1/documents, like a user) and a
synthetic product catalogue (``ingest_products``). Variants, each in the same run:

1. ``anchor: embed+search`` - the retrieval work alone, in the benchmark process: the question
   embedded on Triton (:class:`Embedder`) and the nearest chunks searched in pgvector,
2. ``chat: retrieval`` - document questions, each one new (so the answer cache misses),
3. ``chat: facts`` - product-fact questions answered from SQL, each one new,
4. ``chat: cache hit`` - a small set of questions asked again and again.

Closed loop, p50/p99 and requests/s, and the ratio of the retrieval p50 to the anchor's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import orjson
from fpdf import FPDF

from bench.loadgen import RunResult, run_async
from bench.rawhttp import RawHttpConnection
from bench.suite import BenchContext, Suite, latency_table, print_run, when_and_where
from services.common.nats import connect
from services.common.triton import TritonClient
from services.domain.documents.corpus import bump_generation
from services.domain.documents.embeddings import Embedder
from services.domain.documents.ingest import Product, ingest_products
from services.domain.documents.store import search_chunks

CONCURRENCY = (1, 8)
MANUALS = 12
PRODUCTS = 500
PRODUCTS_SEED = 11
CACHED_QUESTIONS = 20


def manual_pages(n: int) -> list[str]:
    """Three pages of an invented manual with facts that differ per manual."""
    name = f"Nova {n:02d}"
    return [
        f"{name} user guide. Thank you for buying the {name} portable speaker. Keep this guide.",
        f"Battery. The {name} battery lasts {8 + n} hours at half volume. A full charge takes "
        f"{2 + n % 3} hours with the supplied cable. The speaker is rated IPX{4 + n % 4}.",
        f"Warranty. The {name} warranty covers {1 + n % 3} years from purchase. Pairing: hold "
        f"the button for {3 + n % 5} seconds until the light blinks blue.",
    ]


def make_pdf(pages: list[str]) -> bytes:
    """A real PDF with one paragraph of text per page (fpdf2); the tests use it too."""
    pdf = FPDF()
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def catalogue(rows: int, seed: int) -> list[Product]:
    """Synthetic products (the classifier's catalogue generator, no images)."""
    from models.classifier.data import generate_catalogue

    frame = generate_catalogue(rows, seed=seed, images=False)
    return [
        Product(
            product_id=str(r.product_id),
            title=str(r.title),
            description=str(r.description),
            brand=str(r.brand),
            price=float(r.price),
            category_path=str(r.category_path),
        )
        for r in frame.itertuples(index=False)
    ]


async def load_corpus(ctx: BenchContext, base_url: str) -> int:
    """Upload the manuals (waiting until ingested), ingest the catalogue; chunks in the store."""
    settings = ctx.settings
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as client:
        for n in range(MANUALS):
            response = await client.post(
                "/v1/documents",
                files={"file": (f"nova-{n:02d}.pdf", make_pdf(manual_pages(n)), "application/pdf")},
            )
            response.raise_for_status()
            url = response.json()["status_url"]
            for _ in range(1200):  # at most 2 minutes per manual
                status = (await client.get(url)).json()["status"]
                if status != "processing":
                    break
                await asyncio.sleep(0.1)
            if status != "ready":
                raise RuntimeError(f"nova-{n:02d}.pdf: {status}")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    triton = TritonClient(settings.triton_grpc_url, timeout_s=30.0)
    try:
        await ingest_products(pool, Embedder(triton), catalogue(PRODUCTS, PRODUCTS_SEED))
        chunks = int(await pool.fetchval("select count(*) from chunks"))
    finally:
        await triton.close()
        await pool.close()
    nc = await connect(settings.nats_url, name="bench-chatbot")
    try:
        await bump_generation(nc.jetstream())
    finally:
        await nc.close()
    return chunks


def retrieval_question(worker: int, i: int) -> str:
    n = (worker * 7 + i) % MANUALS
    topic = ("How long does the battery of the Nova {n:02d} last", "What does the Nova {n:02d}"
             " warranty cover", "How do I pair the Nova {n:02d}")[i % 3]  # fmt: skip
    return f"{topic.format(n=n)}? (run {worker}-{i})"


def facts_question(worker: int, i: int) -> str:
    what = ("laptop", "headphones", "speaker", "blender", "monitor")[(worker + i) % 5]
    return f"cheapest {what} under ${100 + (i % 20) * 50} (run {worker}-{i})"


CACHED = [f"How long does the battery of the Nova {n:02d} last?" for n in range(MANUALS)] + [
    f"How do I pair the Nova {n:02d}?" for n in range(CACHED_QUESTIONS - MANUALS)
]


def cached_question(worker: int, i: int) -> str:
    return CACHED[(worker + i) % len(CACHED)]


async def bench_chat(
    name: str, host: str, port: int, question: Any, *, concurrency: int, ctx: BenchContext
) -> RunResult:
    connections = [RawHttpConnection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.connect() for c in connections))

    async def call(worker: int, i: int) -> None:
        body = orjson.dumps({"question": question(worker, i)})
        status, _ = await connections[worker].request("POST", "/v1/chat", body)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    try:
        return await run_async(
            name, call, concurrency=concurrency, duration_s=ctx.duration_s, warmup_s=ctx.warmup_s
        )
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def bench_anchor(ctx: BenchContext, *, concurrency: int) -> RunResult:
    settings = ctx.settings
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=concurrency)
    triton = TritonClient(settings.triton_grpc_url, timeout_s=10.0)
    embedder = Embedder(triton)

    async def call(worker: int, i: int) -> None:
        vectors = await embedder.embed([retrieval_question(worker, i)])
        await search_chunks(pool, vectors[0], k=5)

    try:
        return await run_async(
            "anchor: embed+search",
            call,
            concurrency=concurrency,
            duration_s=ctx.duration_s,
            warmup_s=ctx.warmup_s,
        )
    finally:
        await triton.close()
        await pool.close()


def _ratios(results: list[RunResult]) -> str:
    by = {(r.name, r.concurrency): r for r in results}
    lines = []
    for c in CONCURRENCY:
        anchor, chat = by[("anchor: embed+search", c)], by[("chat: retrieval", c)]
        lines.append(
            f"- c={c}: chat retrieval p50 / anchor p50 = {chat.p50_ms / anchor.p50_ms:.2f}x "
            f"({chat.p50_ms:.1f} ms vs {anchor.p50_ms:.1f} ms); cache hit p50 "
            f"{by[('chat: cache hit', c)].p50_ms:.1f} ms; facts p50 "
            f"{by[('chat: facts', c)].p50_ms:.1f} ms"
        )
    return "\n".join(lines)


async def run(ctx: BenchContext) -> str:
    settings = ctx.settings
    host, port = settings.host, settings.chatbot_port
    started = time.perf_counter()
    chunks = await load_corpus(ctx, f"http://{host}:{port}")
    print(f"  corpus loaded: {chunks} chunks in {time.perf_counter() - started:.1f} s", flush=True)
    results: list[RunResult] = []
    for concurrency in CONCURRENCY:
        runs = [
            await bench_anchor(ctx, concurrency=concurrency),
            await bench_chat(
                "chat: retrieval", host, port, retrieval_question, concurrency=concurrency, ctx=ctx
            ),  # fmt: skip
            await bench_chat(
                "chat: facts", host, port, facts_question, concurrency=concurrency, ctx=ctx
            ),  # fmt: skip
            await bench_chat(
                "chat: cache hit", host, port, cached_question, concurrency=concurrency, ctx=ctx
            ),  # fmt: skip
        ]
        for result in runs:
            print_run(result)
            results.append(result)
    setup = "\n".join(
        [
            when_and_where(),
            f"- corpus: {MANUALS} generated 3-page PDF manuals (uploaded through POST "
            f"/v1/documents) + {PRODUCTS} synthetic products = {chunks} chunks (pgvector HNSW); "
            "all-MiniLM-L6-v2 int8 on Triton 2.51 (Python backend, ONNX Runtime)",
            "- chatbot: 1 uvicorn worker, CHATBOT_GENERATION=extractive, top_k 5, answer cache "
            "on (JetStream KV); retrieval and facts questions are each new (cache misses)",
            f"- closed loop, {ctx.duration_s:g} s measured after {ctx.warmup_s:g} s warm-up per "
            "run; minimal keep-alive HTTP client, one connection per worker",
        ]
    )
    return (
        "## chatbot: POST /v1/chat (extractive)\n\n"
        f"{setup}\n\n{latency_table(results)}\n\n{_ratios(results)}"
    )


SUITE = Suite(name="chatbot", components=("postgres", "nats", "triton", "chatbot"), run=run)
