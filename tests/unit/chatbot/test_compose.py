"""The extractive composer picks the sentence that answers and cites where it comes from."""

from __future__ import annotations

from services.chatbot.compose import Passage, cite_passages, compose_answer, sentences

MANUAL = Passage(
    source="documents",
    text=(
        "The X100 ships with a charger and a cable. The battery lasts 14 hours on one charge. "
        "Charging takes about two hours."
    ),
    score=0.71,
    document_id="d1",
    document="x100-manual.pdf",
    page=3,
    chunk_id="11",
)
WARRANTY = Passage(
    source="documents",
    text="The warranty covers two years from purchase. Keep the receipt.",
    score=0.52,
    document_id="d1",
    document="x100-manual.pdf",
    page=7,
    chunk_id="19",
)
PRODUCT = Passage(
    source="products",
    text="Sonix X100 wireless headphones. Noise cancelling, 40mm drivers.",
    score=0.44,
    product_id="P-0042",
    document="Sonix X100",
    chunk_id="3",
)


def test_best_sentence_answers_and_cites_its_page() -> None:
    composed = compose_answer(
        "How long does the battery last?", [WARRANTY, MANUAL, PRODUCT], max_sentences=1
    )
    assert composed.answer == "The battery lasts 14 hours on one charge. [1]"
    [citation] = composed.citations
    assert (citation.document, citation.page, citation.n) == ("x100-manual.pdf", 3, 1)
    assert citation.quote == "The battery lasts 14 hours on one charge."
    assert citation.score == 0.71


def test_two_sentences_from_two_passages_get_two_marks() -> None:
    composed = compose_answer(
        "How long does the battery last and what does the warranty cover?",
        [MANUAL, WARRANTY],
        max_sentences=2,
    )
    assert "[1]" in composed.answer and "[2]" in composed.answer
    assert [c.page for c in composed.citations] == [3, 7]


def test_product_passage_cites_the_product_id() -> None:
    composed = compose_answer("noise cancelling headphones", [PRODUCT], max_sentences=1)
    assert composed.citations[0].product_id == "P-0042"
    assert composed.citations[0].source == "products"


def test_no_passages_no_answer() -> None:
    composed = compose_answer("anything", [], max_sentences=2)
    assert (composed.answer, composed.citations) == ("", [])


def test_no_shared_word_falls_back_to_the_best_passage() -> None:
    composed = compose_answer("zzz qqq", [MANUAL], max_sentences=2)
    assert composed.answer.startswith("The X100 ships with a charger")


def test_cite_passages_quotes_each_passages_best_sentence() -> None:
    citations = cite_passages("When does charging finish?", [MANUAL, WARRANTY])
    assert [c.n for c in citations] == [1, 2]
    assert citations[0].quote == "Charging takes about two hours."


def test_sentences_split_on_the_chunkers_boundaries() -> None:
    assert sentences("One two. Three four!  Five?") == ["One two.", "Three four!", "Five?"]
