"""Embeddings on the real Triton, ingestion into the real Postgres + pgvector, retrieval.

Every test uses its own file names / product ids (uuid), so tests do not see each other's data
in the session's database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import numpy as np
import pytest
import pytest_asyncio
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from models.chatbot.corpus import generate_manuals
from services.common.triton import TritonClient
from services.domain.documents import store
from services.domain.documents.embeddings import Embedder, OnnxEmbedder
from services.domain.documents.ingest import PRODUCT_BATCH, Product, ingest_pdf, ingest_products
from services.domain.documents.pdf import EncryptedDocument, InvalidDocument
from services.domain.documents.store import (
    ChunkHit,
    Retrieval,
    Source,
    apply_documents_schema,
    find_document,
    search_chunks,
)
from services.jobs.ingest import IngestSettings, run_ingest
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import service_settings

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def embedder(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[Embedder]:
    triton = TritonClient(stack_settings.triton_grpc_url, timeout_s=30.0)
    yield Embedder(triton, batch_size=16, timeout_s=30.0)
    await triton.close()


@pytest_asyncio.fixture
async def pool(db: asyncpg.Pool) -> asyncpg.Pool:
    await apply_documents_schema(db)
    return db


def _pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def _name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}.pdf"


async def _chunks(pool: asyncpg.Pool, name: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "select c.id, c.page, c.text from chunks c join documents d on d.id = c.document_id "
        "where d.source = 'pdf' and d.external_id = $1 order by c.chunk_index",
        name,
    )


async def test_embeddings_on_triton_equal_in_process_onnx_runtime(embedder: Embedder) -> None:
    texts = [
        "short",
        "How long is the warranty on the Zephyr blender?",
        "A full charge of the Orion desk lamp battery lasts about 12 hours. " * 6,
        "word " * 400,  # truncated to 256 tokens
        *(f"Product number {i} is a {'very ' * (i % 7)}good kettle." for i in range(37)),
    ]
    on_triton = await embedder.embed(texts)
    in_process = OnnxEmbedder(batch_size=16).embed_sync(texts)
    assert on_triton.shape == (len(texts), 384) and on_triton.dtype == np.float32
    assert np.abs(on_triton - in_process).max() <= 1e-4
    # Concurrent calls of different lengths (Triton batches them; shapes differ per request).
    parts = await asyncio.gather(*(embedder.embed(texts[i : i + 3]) for i in range(0, 12, 3)))
    assert np.abs(np.concatenate(parts) - in_process[:12]).max() <= 1e-4


async def test_the_same_pdf_twice_changes_nothing(pool: asyncpg.Pool, embedder: Embedder) -> None:
    name, data = _name(), _pdf("The Quillon kettle boils one litre in 97 seconds.", "Page two.")
    first = await ingest_pdf(pool, embedder, name, data)
    assert (first.status, first.pages) == ("created", 2) and first.chunks == 2
    before = await _chunks(pool, name)
    stamp = await pool.fetchval("select updated_at from documents where id = $1", first.document_id)

    again = await ingest_pdf(pool, embedder, name, data)

    assert (again.status, again.document_id, again.chunks) == ("unchanged", first.document_id, 2)
    assert await _chunks(pool, name) == before  # same rows, same ids
    assert stamp == await pool.fetchval(
        "select updated_at from documents where id = $1", first.document_id
    )


async def test_a_changed_pdf_replaces_its_chunks(pool: asyncpg.Pool, embedder: Embedder) -> None:
    name = _name()
    first = await ingest_pdf(pool, embedder, name, _pdf("The Zorbulax fan has 3 speeds."))
    old_ids = {row["id"] for row in await _chunks(pool, name)}

    second = await ingest_pdf(
        pool, embedder, name, _pdf("The Zorbulax fan has 5 speeds.", "It is sold in amber.")
    )

    assert (second.status, second.document_id, second.pages) == ("updated", first.document_id, 2)
    rows = await _chunks(pool, name)
    assert {row["id"] for row in rows}.isdisjoint(old_ids)
    assert [row["page"] for row in rows] == [1, 2]
    assert "5 speeds" in rows[0]["text"] and not any("3 speeds" in r["text"] for r in rows)
    document = await find_document(pool, "pdf", name)
    assert document is not None and (document.status, document.page_count) == ("ready", 2)
    assert document.chunk_count == 2
    # Unfiltered, over everything stored: the new chunk answers, the old text is gone.
    (question,) = await embedder.embed(["How many speeds does the Zorbulax fan have?"])
    best = (await search_chunks(pool, question, k=3))[0]
    assert (best.external_id, best.page) == (name, 1) and "5 speeds" in best.text


def _encrypted(data: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not a pdf at all", InvalidDocument),
        (b"%PDF-1.7\n" + b"\x00\x01garbage" * 200, InvalidDocument),
        (_encrypted(_pdf("Secret facts.")), EncryptedDocument),
    ],
    ids=["not-pdf", "garbage", "encrypted"],
)
async def test_bad_pdfs_raise_and_store_nothing(
    pool: asyncpg.Pool, embedder: Embedder, data: bytes, error: type[Exception]
) -> None:
    name = _name()
    with pytest.raises(error):
        await ingest_pdf(pool, embedder, name, data)
    assert await find_document(pool, "pdf", name) is None
    assert await _chunks(pool, name) == []


async def test_search_returns_the_chunk_that_states_the_fact(
    pool: asyncpg.Pool, embedder: Embedder
) -> None:
    corpus = generate_manuals(files=1, products_per_file=2, seed=11, prefix=f"t{uuid.uuid4().hex}")
    ((name, data),) = corpus.files.items()
    result = await ingest_pdf(pool, embedder, name, data)
    facts = corpus.facts[::3]
    vectors = await embedder.embed([fact.question for fact in facts])
    for fact, vector in zip(facts, vectors, strict=True):
        hits = await search_chunks(pool, vector, k=5, document_id=result.document_id)
        assert hits and all(h.document_id == result.document_id for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        best = hits[0]
        assert (best.page, best.external_id, best.source) == (fact.page, name, "pdf"), fact
        assert any(fact.sentence in hit.text for hit in hits[:3]), fact
        assert best.char_end - best.char_start == len(best.text)
    only_products = await search_chunks(pool, vectors[0], k=5, source="product")
    assert all(h.source == "product" for h in only_products)


async def test_an_unfiltered_search_merges_each_source_best_first(
    pool: asyncpg.Pool, embedder: Embedder
) -> None:
    """Without a filter the answer is the best of each source's own search, merged by score:
    the PDF page stating the fact comes first however many product texts are near it."""
    corpus = generate_manuals(files=1, products_per_file=2, seed=12, prefix=f"m{uuid.uuid4().hex}")
    ((name, data),) = corpus.files.items()
    await ingest_pdf(pool, embedder, name, data)
    fact = corpus.facts[0]
    (vector,) = await embedder.embed([fact.question])
    merged = await search_chunks(pool, vector, k=5)
    each = [
        hit
        for source in ("product", "pdf")
        for hit in await search_chunks(pool, vector, k=5, source=source)  # type: ignore[arg-type]
    ]
    expected = sorted(each, key=lambda hit: hit.score, reverse=True)[:5]
    assert [h.chunk_id for h in merged] == [h.chunk_id for h in expected]
    assert (merged[0].external_id, merged[0].page) == (name, fact.page)


def _codes() -> tuple[str, list[str]]:
    """A model number and four others made of the same digits (never equal to it)."""
    digits = random.sample("123456789", 5)
    swaps = [(3, 4), (1, 2), (0, 1), (2, 3)]
    others = []
    for i, j in swaps:
        swapped = list(digits)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        others.append("K" + "".join(swapped))
    return "K" + "".join(digits), others


async def test_a_model_number_is_found_by_full_text_and_hybrid_but_not_first_by_vector(
    pool: asyncpg.Pool, embedder: Embedder
) -> None:
    """Four pages on the warranty of models with look-alike numbers, one page on the model
    asked about in other words: the dense retriever prefers the look-alikes, the full text
    matches the number exactly, and the fusion keeps the exact match first."""
    code, look_alikes = _codes()
    decoys = [
        f"Warranty of the {other}. What is the warranty of the {other}? "
        f"The warranty of the {other} lasts {years} years."
        for other, years in zip(look_alikes, ("two", "three", "four", "five"), strict=True)
    ]
    target = (
        f"Service notes for model {code}. Spare parts are replaced free of charge for 36 months."
    )
    name = _name()
    result = await ingest_pdf(pool, embedder, name, _pdf(*decoys, target))
    question = f"What is the warranty of the {code}?"
    (vector,) = await embedder.embed([question])

    async def search(
        retrieval: Retrieval, source: Source | None = None, document: uuid.UUID | None = None
    ) -> list[ChunkHit]:
        return await search_chunks(
            pool, vector, k=5, text=question, retrieval=retrieval, source=source,
            document_id=document,
        )  # fmt: skip

    async def pages(
        retrieval: Retrieval, source: Source | None = None, document: uuid.UUID | None = None
    ) -> list[int | None]:
        hits = await search(retrieval, source, document)
        return [h.page if h.external_id == name else None for h in hits]

    mine = result.document_id
    by_vector = await pages("vector", document=mine)
    assert set(by_vector) == {1, 2, 3, 4, 5}
    assert by_vector.index(5) > 0  # the look-alikes come first
    assert (await pages("fulltext", document=mine))[0] == 5
    assert (await pages("hybrid", document=mine))[0] == 5
    hit = (await search("hybrid", document=mine))[0]
    assert (hit.text_rank, hit.vector_rank) == (1, by_vector.index(5) + 1)
    cosine = next(h.score for h in await search("vector", document=mine) if h.page == 5)
    assert hit.score == pytest.approx(cosine)  # the score stays the cosine similarity
    # Over every PDF the number is still found first; the filters hold in every retriever.
    modes: tuple[Retrieval, ...] = ("vector", "fulltext", "hybrid")
    for retrieval in modes[1:]:
        assert (await pages(retrieval, source="pdf"))[0] == 5, retrieval
    charger = Product(f"C{code}", f"Charger for model {code}", "", "Testline", 9.0, "A > B > C")
    await ingest_products(pool, embedder, [charger])
    for retrieval in modes:
        products = await search(retrieval, source="product")
        assert products and all(h.source == "product" for h in products), retrieval
        if retrieval != "vector":
            assert products[0].external_id == charger.product_id, retrieval
        assert await pages(retrieval, document=uuid.uuid4()) == [], retrieval


def _word() -> str:
    """An invented word of letters only (its own lexeme, in no other chunk)."""
    return "zq" + "".join(random.choices("bcdfghjklmnpqrstvwxz", k=10))


async def _lexeme(pool: asyncpg.Pool, word: str) -> str:
    lexeme: str = await pool.fetchval(
        "select (tsvector_to_array(to_tsvector('english', $1)))[1]", word
    )
    return lexeme


async def _held(pool: asyncpg.Pool, lexeme: str) -> int:
    return int(
        await pool.fetchval(
            "select coalesce(max(chunks), 0) from chunk_lexemes where lexeme = $1", lexeme
        )
    )


async def _assert_frequencies_are_exact(pool: asyncpg.Pool) -> None:
    """chunk_lexemes holds, for every lexeme, the chunks whose tsv has it (and under '' all
    chunks): compared with ts_stat over the chunks in one snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        wrong = await conn.fetch(
            "select coalesce(l.lexeme, s.word) as lexeme, l.chunks, s.ndoc "
            "from chunk_lexemes l full join ts_stat('select tsv from chunks') s "
            "on s.word = l.lexeme "
            "where coalesce(l.lexeme, s.word) <> '' "
            "and coalesce(l.chunks, 0) <> coalesce(s.ndoc, 0)"
        )
        total = await conn.fetchval("select chunks from chunk_lexemes where lexeme = ''")
        assert total == await conn.fetchval("select count(*) from chunks")
    assert [tuple(row) for row in wrong] == []


async def test_document_frequencies_follow_every_write_of_chunks(
    pool: asyncpg.Pool, embedder: Embedder
) -> None:
    """The triggers of migration 0003 keep chunk_lexemes exact through creations, concurrent
    ingestions (no deadlock), replacements and a document deleted with its chunks."""
    word = _word()
    lexeme = await _lexeme(pool, word)
    name = _name()
    await ingest_pdf(
        pool, embedder, name, _pdf(f"The {word} valve.", f"Clean the {word} often.", "Unrelated.")
    )
    assert await _held(pool, lexeme) == 2
    await _assert_frequencies_are_exact(pool)

    others = [_name(), _name()]
    await asyncio.gather(
        *(
            ingest_pdf(pool, embedder, other, _pdf(f"A {word} spare for {other}.", f"{word}."))
            for other in others
        )
    )
    assert await _held(pool, lexeme) == 2 + 4

    await ingest_pdf(pool, embedder, name, _pdf(f"The {word} valve, revised.", "Nothing else."))
    assert await _held(pool, lexeme) == 1 + 4
    await pool.execute(
        "delete from documents where source = 'pdf' and external_id = any($1::text[])", others
    )
    assert await _held(pool, lexeme) == 1
    await _assert_frequencies_are_exact(pool)


async def test_full_text_weighs_the_rarer_word_of_the_question(
    pool: asyncpg.Pool, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pages each hold one of the question's two words: the page of the word fewer chunks
    hold comes first (IDF), in full text and in hybrid (the text ranking's first outweighs the
    vector ranking's); pruned by max score or not, the same hits."""
    common, rare = _word(), _word()
    pages = [
        f"Notes on the {common} bracket.",
        f"More notes on the {common} bracket.",
        f"The {common} bracket again.",
        f"Notes on the {rare} hinge.",
    ]
    result = await ingest_pdf(pool, embedder, _name(), _pdf(*pages))
    question = f"The {common} or the {rare}?"  # the rarer word holds half of it
    (vector,) = await embedder.embed([question])
    modes: tuple[Retrieval, ...] = ("fulltext", "hybrid")
    for retrieval in modes:
        hits = await search_chunks(
            pool, vector, k=4, text=question, retrieval=retrieval, document_id=result.document_id
        )
        assert (hits[0].page, hits[0].text_rank) == (4, 1), retrieval
        if retrieval == "fulltext":  # alone, every match is ranked, the rarer word's first
            assert sorted(h.page or 0 for h in hits) == [1, 2, 3, 4]
        for budget in (0, 10**9):  # candidates from the rarest lexeme only / from every one
            monkeypatch.setattr(store, "ESSENTIAL_POSTINGS", budget)
            again = await search_chunks(
                pool, vector, k=4, text=question, retrieval=retrieval,
                document_id=result.document_id,
            )  # fmt: skip
            assert [(h.chunk_id, h.text_rank) for h in again] == [
                (h.chunk_id, h.text_rank) for h in hits
            ], (retrieval, budget)
        monkeypatch.undo()


async def test_hybrid_leaves_out_a_text_match_holding_little_of_the_question(
    pool: asyncpg.Pool, embedder: Embedder
) -> None:
    """A question in words the corpus does not have (a paraphrase): the only full-text match
    holds one word of four, under MIN_TEXT_COVERAGE of the question's weight, so hybrid ranks
    as the vector ranking does; the same word with one unknown word beside it is enough."""
    known = _word()
    pages = [f"Notes on the {known} bracket.", "The hinge is made of brushed steel."]
    result = await ingest_pdf(pool, embedder, _name(), _pdf(*pages))

    async def search(question: str, retrieval: Retrieval) -> list[ChunkHit]:
        (vector,) = await embedder.embed([question])
        return await search_chunks(
            pool, vector, k=2, text=question, retrieval=retrieval, document_id=result.document_id
        )

    weak = f"Which {known} {_word()} {_word()} {_word()}?"
    assert (await search(weak, "fulltext"))[0].page == 1  # alone, full text still answers
    hybrid, vector = await search(weak, "hybrid"), await search(weak, "vector")
    assert [h.chunk_id for h in hybrid] == [h.chunk_id for h in vector]
    assert all(h.text_rank is None for h in hybrid)
    strong = f"Which {known} {_word()}?"
    hits = await search(strong, "hybrid")
    assert (hits[0].page, hits[0].text_rank) == (1, 1)


async def test_products_are_ingested_once_and_updated_when_they_change(
    pool: asyncpg.Pool, embedder: Embedder
) -> None:
    tag = uuid.uuid4().hex[:8]
    products = [
        Product(f"T{tag}-{i}", f"Testline gadget {tag} {i}", "A gadget.", "Testline", 10.0 + i,
                "Electronics > Gadgets > Testers")
        for i in range(3)
    ]  # fmt: skip
    first = await ingest_products(pool, embedder, products)
    assert (first.created, first.updated, first.unchanged) == (3, 0, 0)
    assert (await ingest_products(pool, embedder, products)).unchanged == 3

    cheaper = [*products[:2], dataclasses.replace(products[2], price=1.5)]
    third = await ingest_products(pool, embedder, cheaper)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 2)
    price = await pool.fetchval(
        "select price from products where product_id = $1", products[2].product_id
    )
    assert float(price) == 1.5
    text = await pool.fetchval(
        "select c.text from chunks c join documents d on d.id = c.document_id "
        "where d.source = 'product' and d.external_id = $1",
        products[2].product_id,
    )
    assert "1.50 USD" in text


async def test_ingest_job_reports_a_bad_file_and_ingests_the_rest(
    stack_settings: StackSettings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    good = _name()
    (tmp_path / good).write_bytes(_pdf("The Pellanic grinder has 40 settings."))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    settings = service_settings(IngestSettings, stack_settings, products=False)
    lines: list[str] = []
    report = await run_ingest(settings=settings, pdf_paths=[tmp_path], say=lines.append)
    assert [r.external_id for r in report.pdfs] == [good]
    assert [Path(name).name for name, _ in report.failures] == ["broken.pdf"]
    assert report.changed
    again = await run_ingest(settings=settings, pdf_paths=[tmp_path], say=lines.append)
    assert [r.status for r in again.pdfs] == ["unchanged"] and not again.changed


async def test_ingest_job_repeated_product_id_last_row_wins_and_a_rerun_writes_nothing(
    stack_settings: StackSettings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    # the repeat lies beyond one write batch (PRODUCT_BATCH rows), where it used to be written
    # twice per run (old row, then new), so that no run found the catalogue unchanged
    tag = uuid.uuid4().hex[:8]
    rows = [
        {"product_id": f"D{tag}-{i}", "title": f"Dupline kettle {tag} {i}", "brand": "Dupline",
         "price": 20.0 + i, "category_path": "Home > Kitchen > Kettles", "description": ""}
        for i in range(PRODUCT_BATCH + 20)
    ]  # fmt: skip
    repeat = {**rows[0], "title": f"Dupline kettle {tag} 0, new edition", "price": 99.0}
    catalogue = tmp_path / "catalogue.jsonl"
    catalogue.write_text("".join(json.dumps(r) + "\n" for r in [*rows, repeat]))
    settings = service_settings(
        IngestSettings, stack_settings, catalogue_path=str(catalogue), invalidate_cache=False
    )
    lines: list[str] = []
    report = await run_ingest(settings=settings, say=lines.append)
    assert report.repeated_products == [rows[0]["product_id"]]
    assert any("last row of each wins" in line and rows[0]["product_id"] in line for line in lines)
    assert report.products is not None
    assert (report.products.created, report.products.updated) == (len(rows), 0)
    stored = await pool.fetchrow(
        "select title, price from products where product_id = $1", rows[0]["product_id"]
    )
    assert (stored["title"], float(stored["price"])) == (repeat["title"], 99.0)
    again = await run_ingest(settings=settings, say=lines.append)
    assert again.products is not None
    assert (again.products.unchanged, again.products.updated) == (len(rows), 0)
    assert not again.changed


async def test_ingest_job_refuses_different_pdfs_of_one_name_and_ingests_copies_once(
    stack_settings: StackSettings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    clash, copied = _name(), _name()
    for folder, fact in (("a", "The Quellor mixer has 3 speeds."), ("b", "It has 9 speeds.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / clash).write_bytes(_pdf(fact))
    same = _pdf("The Vantor fan folds flat.")
    (tmp_path / "a" / copied).write_bytes(same)
    (tmp_path / "b" / copied).write_bytes(same)
    settings = service_settings(IngestSettings, stack_settings, products=False)
    lines: list[str] = []
    report = await run_ingest(settings=settings, pdf_paths=[tmp_path], say=lines.append)
    assert sorted(name for name, _ in report.failures) == [
        str(tmp_path / "a" / clash),
        str(tmp_path / "b" / clash),
    ]
    assert all("rename one" in why for _, why in report.failures)
    assert await find_document(pool, "pdf", clash) is None  # neither of them was written
    assert [(r.external_id, r.status) for r in report.pdfs] == [(copied, "created")]
