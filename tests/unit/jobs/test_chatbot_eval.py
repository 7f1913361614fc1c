"""The chatbot evaluation: relevance of a hit, ranks, recall@k and MRR, the hard set, the
answer figures."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from models.chatbot.corpus import (
    DESCRIPTIONS,
    HARD_KINDS,
    NOUNS,
    Fact,
    catalogue_questions,
    generate_manuals,
    hard_questions,
)
from services.domain.documents.ingest import Product
from services.domain.documents.store import ChunkHit
from services.jobs.chatbot_eval import (
    Question,
    _Outcome,
    answer_scores,
    build_questions,
    first_relevant_rank,
    retrieval_scores,
    score,
)

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


SECOND = Fact("m.pdf", 3, "The kettle is made in Cork.", "Where is the kettle made?", "Cork")


def test_a_two_fact_question_ranks_where_both_facts_are_found() -> None:
    question = Question("weight and factory?", "multi-fact", fact=FACT, also=(SECOND,))
    first = _hit("pdf", "m.pdf", 2, FACT.sentence)
    second = _hit("pdf", "m.pdf", 3, SECOND.sentence)
    other = _hit("pdf", "m.pdf", 1, "Filler.")
    assert first_relevant_rank(question, [first, other, second]) == 3
    assert first_relevant_rank(question, [second, first]) == 2
    assert first_relevant_rank(question, [first, other]) is None
    assert question.expected == (FACT.answer,)


def test_questions_without_a_source_are_left_out_of_the_retrieval_figures() -> None:
    answerable = Question("q1", "paraphrase", fact=FACT, split="hard-dev")
    refused = Question("q2", "no-answer", split="hard-dev")
    assert not refused.answerable and refused.expected == ()
    by_set, by_kind = retrieval_scores([answerable, refused], [1, None])
    assert by_set["hard-dev"].questions == 1 and by_set["hard-dev"].recall_at_1 == 1.0
    assert by_set["today"].questions == 0 and "no-answer" not in by_kind


def _products() -> list[Product]:
    rows = [
        ("Brickly 2024 Model Doll B292", "Brickly", 20.45),
        ("Brickly Doll B293", "Brickly", 20.45),
        ("Sonix Subwoofer X101", "Sonix", 103.11),
        ("Sonix Speaker", "Sonix", 99.0),
    ]
    return [
        Product(f"P{i}", title, "", brand, price, "A > B > C")
        for i, (title, brand, price) in enumerate(rows)
    ]


def test_the_hard_set_is_reproducible_split_and_asks_what_it_says() -> None:
    corpus = generate_manuals(files=2, products_per_file=4, seed=3)
    questions = hard_questions(corpus.facts, _products(), per_kind=8, seed=3)
    assert questions == hard_questions(corpus.facts, _products(), per_kind=8, seed=3)
    assert questions != hard_questions(corpus.facts, _products(), per_kind=8, seed=4)
    assert len({q.question.lower() for q in questions}) == len(questions)
    for kind in HARD_KINDS:
        splits = [q.split for q in questions if q.kind == kind]
        assert splits and abs(splits.count("dev") - splits.count("test")) <= 1, kind
    items = {f.item for f in corpus.facts}
    brands = {item.split()[0] for item in items}
    for q in questions:
        if q.kind == "model-number":
            (fact,) = q.facts
            assert f"model {fact.item.rsplit(' ', 1)[1]}" in q.question
            assert not any(brand in q.question for brand in brands)
        if q.kind == "no-answer":
            assert not q.answerable and not q.answers
        if q.kind == "multi-fact":
            assert len({f.topic for f in q.facts}) == 2 and len(q.answers) == 2
        if q.kind == "paraphrase-unnamed":
            # No word in common with the manual's sentence (the product's name included), and
            # one product only is the thing it describes.
            (fact,) = q.facts
            assert not _words(q.question) & _words(fact.sentence), q.question
            noun = fact.item.split(" ", 1)[1].rsplit(" ", 1)[0]
            assert DESCRIPTIONS[noun] in q.question
            assert sum(noun in item for item in items) == 1
        if q.kind == "number-unit" and q.facts:
            (fact,) = q.facts
            same = [f for f in corpus.facts if f.topic == fact.topic and f.answer == fact.answer]
            assert same == [fact] and q.answers == (fact.item,)
    # Catalogue codes: only a code no other product text has (B292 and B293 are both unique,
    # 20.45 is not a unique price).
    coded = {q.product_id for q in questions if q.kind == "catalogue-code"}
    assert coded <= {"P0", "P1", "P2"}
    assert not any("20.45" in q.question for q in questions)


def _words(text: str) -> set[str]:
    """The words of more than three letters, cut to five (a crude stem)."""
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}


def test_every_thing_of_the_manuals_has_a_description_in_other_words() -> None:
    assert set(DESCRIPTIONS) == set(NOUNS)
    for noun, description in DESCRIPTIONS.items():
        assert not _words(noun) & _words(description), noun


def _outcome(question: Question, answer: str, *citations: dict[str, Any]) -> Any:
    return _Outcome(question, {"answer": answer, "citations": list(citations)})


def test_answer_figures_accuracy_citation_precision_and_refusals() -> None:
    fact_q = Question(FACT.question, "pdf", fact=FACT)
    product_q = Question("price of P1?", "product", product_id="P1", answers=("9.99",))
    nothing = Question("noise level?", "no-answer")
    right = {"document": "m.pdf", "page": 2, "chunk_id": "1"}
    wrong_page = {"document": "m.pdf", "page": 1, "chunk_id": "2"}
    other_chunk = {"document": "m.pdf", "page": 2, "chunk_id": "3"}  # right page, not the fact
    outcomes = [
        _outcome(fact_q, "It weighs 1.2 kilograms. [1]", right, wrong_page, other_chunk),
        _outcome(product_q, "It costs 10 dollars. [1]", {"product_id": "P1"}),
        _outcome(nothing, "It is loud. [1]", wrong_page),
        _outcome(nothing, "I could not find anything."),
        _Outcome(fact_q, None),
    ]
    texts = {"1": f"Intro. {FACT.sentence}", "2": "Filler.", "3": "More filler of page 2."}
    scores = answer_scores(outcomes, texts)
    assert (scores.asked, scores.errors) == (5, 1)
    assert scores.answer_accuracy == pytest.approx(1 / 2)  # "1.2" yes, "9.99" no
    assert scores.citation_accuracy == 1.0
    # Neither the wrong page nor a chunk of the right page without the fact counts.
    assert scores.citation_precision == pytest.approx(2 / 4)
    assert scores.refusal_accuracy == pytest.approx(1 / 2)
    assert scores.false_refusals == 0.0
