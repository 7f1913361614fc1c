"""The chatbot evaluation's scoring: relevance of a hit, ranks, recall@k and MRR."""

from __future__ import annotations

import uuid

import pytest

from models.chatbot.corpus import Fact, catalogue_questions, generate_manuals
from services.domain.documents.ingest import Product
from services.domain.documents.store import ChunkHit
from services.jobs.chatbot_eval import Question, build_questions, first_relevant_rank, score

FACT = Fact("m.pdf", 2, "The kettle weighs 1.2 kilograms.", "How heavy is the kettle?", "1.2")


def _hit(source: str, external_id: str, page: int | None, text: str) -> ChunkHit:
    return ChunkHit(1, uuid.uuid4(), source, external_id, "t", page, 0, len(text), text, 0.5)


def test_a_pdf_hit_counts_only_on_the_right_file_page_and_text() -> None:
    question = Question(FACT.question, "pdf", fact=FACT)
    text = "Intro. The kettle weighs 1.2 kilograms. More."
    assert question.relevant(_hit("pdf", "m.pdf", 2, text))
    assert not question.relevant(_hit("pdf", "m.pdf", 1, text))
    assert not question.relevant(_hit("pdf", "other.pdf", 2, text))
    assert not question.relevant(_hit("pdf", "m.pdf", 2, "The kettle weighs a lot."))
    assert question.cited({"document": "m.pdf", "page": 2})
    assert not question.cited({"document": "m.pdf", "page": 3})


def test_ranks_and_scores() -> None:
    question = Question("price of P1?", "product", product_id="P1")
    hits = [_hit("product", "P9", None, "x"), _hit("product", "P1", None, "y")]
    assert first_relevant_rank(question, hits) == 2
    assert first_relevant_rank(question, hits[:1]) is None
    scores = score([1, 2, None, 6])
    assert scores.questions == 4
    assert scores.recall_at_1 == pytest.approx(0.25)
    assert scores.recall_at_5 == pytest.approx(0.5)
    assert scores.mrr == pytest.approx((1 + 1 / 2 + 1 / 6) / 4)


def test_generated_set_is_reproducible_and_every_fact_is_on_its_page() -> None:
    corpus = generate_manuals(files=2, products_per_file=2, seed=3)
    again = generate_manuals(files=2, products_per_file=2, seed=3)
    assert corpus.facts == again.facts and set(corpus.files) == {
        "eval-manual-01.pdf",
        "eval-manual-02.pdf",
    }
    assert len(corpus.facts) == 2 * 2 * 9
    titles = [(f"P{i}", f"Gadget {i}") for i in range(10)] + [("DUP1", "Same"), ("DUP2", "same")]
    products = [Product(pid, title, "", "B", 1.0, "A > B > C") for pid, title in titles]
    asked = catalogue_questions(products, count=20, seed=1)
    assert len(asked) == 10 and not {q.product_id for q in asked} & {"DUP1", "DUP2"}
    questions = build_questions(corpus.facts, asked)
    assert [q.kind for q in questions].count("pdf") == 36
