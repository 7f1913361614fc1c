"""The checks a generated answer passes before the user gets it (services/chatbot/validation)."""

from __future__ import annotations

import pytest

from services.chatbot.compose import Passage
from services.chatbot.validation import validate

PASSAGES = [
    Passage(
        source="documents",
        text="The Zephyr 3000 kettle boils one litre of water in 95 seconds.",
        score=0.8,
    ),
    Passage(source="documents", text="The warranty covers two years. Price: 1,200 EUR.", score=0.5),
]


def test_an_answer_resting_on_its_cited_source_passes() -> None:
    verdict = validate("It boils a litre in 95 seconds [1].", PASSAGES, min_term_share=0.5)
    assert (verdict.passed, verdict.check) == (True, "")


def test_thousands_separators_do_not_matter() -> None:
    assert validate("It costs 1200 EUR [2].", PASSAGES, min_term_share=0.5).passed


@pytest.mark.parametrize(
    ("answer", "check"),
    [
        ("   ", "empty"),
        ("It boils a litre in 95 seconds.", "uncited"),
        ("It boils a litre in 95 seconds [3].", "unknown_source"),
        ("It boils a litre in 90 seconds [1].", "figure"),
        # the figure is in a source, but not in the one the answer cites
        ("The warranty covers 95 seconds [2].", "figure"),
        ("Bananas grow on tall trees in tropical gardens [1].", "terms"),
        ("gemma gemma gemma gemma [1] [1] [1]", "terms"),
    ],
)
def test_each_check_rejects_what_it_is_for(answer: str, check: str) -> None:
    verdict = validate(answer, PASSAGES, min_term_share=0.5)
    assert (verdict.passed, verdict.check) == (False, check)
    assert verdict.reason


def test_the_term_share_is_a_setting() -> None:
    answer = "It boils a litre quickly and quietly [1]."
    assert not validate(answer, PASSAGES, min_term_share=0.9).passed
    assert validate(answer, PASSAGES, min_term_share=0.3).passed


def test_an_answer_citing_another_subject_than_the_question_names_fails() -> None:
    question = "How fast does the Zephyr 3000 kettle boil water?"
    assert validate("In 95 seconds [1].", PASSAGES, min_term_share=0.5, question=question).passed
    verdict = validate(
        "In 95 seconds [1].",
        PASSAGES,
        min_term_share=0.5,
        question="How fast does the Zephyr 4000 kettle boil water?",
    )
    assert (verdict.passed, verdict.check) == (False, "subject")
    assert "4000" in verdict.reason
