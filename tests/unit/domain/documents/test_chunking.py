"""The chunker: sentence boundaries, size limit, overlap, offsets."""

from __future__ import annotations

import pytest

from services.domain.documents.chunking import chunk_text, normalise, sentence_spans


def _sentences(n: int) -> str:
    return " ".join(f"Sentence number {i} says something about item {i}." for i in range(n))


def test_sentences_split_on_end_marks_but_not_inside_numbers() -> None:
    text = "The kettle costs $4.99 today. Is it blue? Yes! It weighs 1.5 kg."
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "The kettle costs $4.99 today.",
        "Is it blue?",
        "Yes!",
        "It weighs 1.5 kg.",
    ]


def test_offsets_point_at_the_chunk_text_and_chunks_respect_the_limit() -> None:
    text = _sentences(40)
    chunks = chunk_text(text, max_chars=300, overlap_chars=80)
    assert len(chunks) > 5
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert len(chunk.text) <= 300
        assert chunk.text.endswith(".")  # never cut inside a sentence


def test_consecutive_chunks_overlap_by_whole_sentences_and_cover_everything() -> None:
    text = _sentences(30)
    chunks = chunk_text(text, max_chars=300, overlap_chars=80)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.char_start < before.char_end  # overlap
        assert after.char_start > before.char_start  # progress
        assert text[after.char_start : before.char_end].endswith(".")
    covered = {i for c in chunks for i in range(c.char_start, c.char_end)}
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_no_overlap_when_asked() -> None:
    chunks = chunk_text(_sentences(20), max_chars=200, overlap_chars=0)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.char_start >= before.char_end


def test_a_sentence_longer_than_a_chunk_is_cut_at_words() -> None:
    long = "word " * 300 + "end."
    chunks = chunk_text(long, max_chars=100, overlap_chars=20)
    assert all(len(c.text) <= 100 for c in chunks)
    assert all(not c.text.startswith(" ") and not c.text.endswith(" ") for c in chunks)
    assert chunks[-1].text.endswith("end.")


def test_short_text_is_one_chunk_and_blank_text_none() -> None:
    assert [c.text for c in chunk_text("Just one line.")] == ["Just one line."]
    assert chunk_text("   \n ") == []


def test_normalise_joins_layout_line_breaks_but_keeps_paragraphs() -> None:
    assert (
        normalise("A line\nbroken  here.\n\n\nNext   para.") == "A line broken here.\n\nNext para."
    )


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_text("x.", max_chars=100, overlap_chars=100)
