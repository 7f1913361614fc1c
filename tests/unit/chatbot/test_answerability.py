"""Answerability: a question is answered only from statements about its subject that say what
it asks; the rest is "I do not know"."""

from __future__ import annotations

import pytest

from services.chatbot.answerability import Assessment, assess, identifiers, subject, units
from services.chatbot.compose import Passage, compose_from

KETTLE = Passage(
    source="documents",
    text=(
        "Zephyr kettle K42: user manual The Zephyr kettle K42 comes with a manufacturer warranty"
        " of 24 months. Without accessories the Zephyr kettle K42 weighs 1.4 kilograms. Read all"
        " safety instructions and place it on a stable, level surface."
    ),
    score=0.6,
    document="zephyr.pdf",
    page=1,
    chunk_id="1",
)
LAMP = Passage(
    source="documents",
    text="The Orion desk lamp B7 comes with a manufacturer warranty of 12 months.",
    score=0.5,
    document="orion.pdf",
    page=2,
    chunk_id="2",
)
ROW = Passage(
    source="products",
    text="Sonix headphones X100. Brand: Sonix. Category: Audio. Price: 59.90 USD. Great bass.",
    score=0.7,
    product_id="P1",
    chunk_id="3",
)


def _assess(question: str, passages: list[Passage], similarity: float | None = None) -> Assessment:
    draft = subject(question, passages)
    sims = None if similarity is None else [similarity] * len(draft.units)
    return assess(draft, sims, min_support=0.3)


def test_identifiers_are_codes_and_figures() -> None:
    assert identifiers("Is the K42 1,200 W or 3.4 kg? Model zx-9.") == {"k42", "1200", "3.4", "9"}


def test_a_catalogue_row_is_one_statement_up_to_its_price() -> None:
    assert units(ROW) == [
        "Sonix headphones X100. Brand: Sonix. Category: Audio. Price: 59.90 USD.",
        "Great bass.",
    ]


def test_a_supported_question_is_answered_from_its_subject() -> None:
    verdict = _assess("How long is the warranty on the Zephyr kettle K42?", [LAMP, KETTLE])
    assert verdict.answerable
    assert "24 months" in verdict.evidence[0].text
    assert {e.passage for e in verdict.evidence} == {1}  # the lamp is not the subject


def test_a_code_no_source_holds_is_refused() -> None:
    verdict = _assess("How long is the warranty on the Zephyr kettle Q512?", [KETTLE, LAMP])
    assert (verdict.answerable, verdict.check) == (False, "identifier")
    assert "q512" in verdict.reason


def test_a_property_no_statement_mentions_is_refused() -> None:
    # "level" is in a filler sentence, but not in one about the K42
    verdict = _assess("What is the noise level of the Zephyr kettle K42 in decibels?", [KETTLE])
    assert (verdict.answerable, verdict.check) == (False, "unsupported")
    assert "decibel" in verdict.reason and "noise" in verdict.reason


@pytest.mark.parametrize(("similarity", "answerable"), [(0.45, True), (0.2, False)])
def test_without_an_asked_word_the_similarity_decides(similarity: float, answerable: bool) -> None:
    question = "What does the Zephyr kettle K42 tip the scales at?"
    assert _assess(question, [KETTLE], similarity).answerable is answerable


def test_the_subjects_words_are_not_what_is_asked() -> None:
    draft = subject("How heavy is the Zephyr kettle K42?", [KETTLE])
    assert draft.subject_terms == {"zephyr", "kettle"}
    assert draft.asked == {"heavy"}
    assert draft.masked_question == "How heavy is the"


def test_composed_answer_cites_only_where_its_sentences_come_from() -> None:
    verdict = _assess("How long is the warranty on the Zephyr kettle K42?", [LAMP, KETTLE])
    composed = compose_from(verdict.evidence, [LAMP, KETTLE], max_sentences=2)
    assert "24 months" in composed.answer and "12 months" not in composed.answer
    assert [c.chunk_id for c in composed.citations] == ["1"]


def test_a_second_fact_from_another_passage_joins_when_it_adds_what_is_asked() -> None:
    other = Passage(
        source="documents",
        text="At full power the Zephyr kettle K42 draws 2000 watts.",
        score=0.4,
        document="zephyr.pdf",
        page=1,
        chunk_id="4",
    )
    question = "How long is the warranty on the Zephyr kettle K42, and how many watts does it draw?"
    verdict = _assess(question, [KETTLE, other])
    composed = compose_from(verdict.evidence, [KETTLE, other], max_sentences=2)
    assert "24 months" in composed.answer and "2000 watts" in composed.answer
    assert {c.chunk_id for c in composed.citations} == {"1", "4"}


def test_a_product_question_answers_with_the_row_and_its_price() -> None:
    verdict = _assess("How much does the Sonix X100 cost?", [ROW])
    assert verdict.answerable
    composed = compose_from(verdict.evidence, [ROW], max_sentences=2)
    assert "59.90 USD" in composed.answer
