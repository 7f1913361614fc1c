"""Extractive answers: the sentences of the retrieved passages that best match the question.

No language model: each passage is split into sentences, each sentence is scored by the share of
the question's content words it contains (crude singulars, stop words dropped) plus a little of
its passage's retrieval score, and the best ``max_sentences`` sentences (with at least one
question word, each scoring at least ``RELATIVE_FLOOR`` of the best) become the answer, each
followed by its citation mark ``[n]``. The same sentence scoring picks the quoted span of every
citation in the LLM modes.

The answerer composes with :func:`compose_from` instead: the statements
:mod:`services.chatbot.answerability` found about the question's subject, ranked by how well they
support it, and only the passages of the delivered statements cited. :func:`compose_answer` is
what ``CHATBOT_REFUSE_UNANSWERABLE=false`` answers with (every source, no refusal).

    composed = compose_answer("What is the battery life?", passages, max_sentences=2)
    composed.answer     # "The battery lasts 12 hours on a charge. [1]"
    composed.citations  # [Citation(n=1, document=..., page=3, quote="The battery lasts ...")]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.chatbot.intent import singular
from services.domain.documents.chunking import sentence_spans

#: Weight of the passage's retrieval score beside the sentence's word overlap (0..1 each).
PASSAGE_WEIGHT = 0.3
MAX_QUOTE_CHARS = 400
#: A sentence after the first joins the answer only when it scores at least this share of it.
RELATIVE_FLOOR = 0.6

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being "
    "do does did what which who whom whose when where why how this that these those it its "
    "i you we they he she me my your our their can could should would will shall may might "
    "there here than then so such not no yes about into over under any all some much many "
    "tell please me give show find know explain describe say says said".split()
)


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk, as the composer sees it."""

    source: str  # "documents" or "products"
    text: str
    score: float
    document_id: str | None = None
    document: str | None = None  # the document's name
    page: int | None = None
    product_id: str | None = None
    chunk_id: str | None = None


@dataclass(frozen=True)
class Citation:
    """Where a statement of the answer comes from, with the quoted span."""

    n: int
    source: str
    quote: str
    score: float
    document_id: str | None = None
    document: str | None = None
    page: int | None = None
    product_id: str | None = None
    chunk_id: str | None = None


class Supported(Protocol):
    """A statement of a passage and how well it supports the question
    (:class:`services.chatbot.answerability.Evidence`)."""

    @property
    def passage(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def lexical(self) -> float: ...
    @property
    def support(self) -> float: ...
    @property
    def terms(self) -> frozenset[str]: ...
    @property
    def asked_terms(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class ComposedAnswer:
    answer: str
    citations: list[Citation]


def content_words(text: str) -> set[str]:
    """Lower-case content words in singular form, stop words dropped."""
    return {singular(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


def sentences(text: str) -> list[str]:
    """The sentences of a passage (the chunker's own boundaries), whitespace normalised."""
    return [" ".join(text[start:end].split()) for start, end in sentence_spans(text)]


def sentence_overlap(question_words: set[str], sentence: str) -> float:
    """Share of the question's content words found in the sentence (0..1)."""
    if not question_words:
        return 0.0
    return len(question_words & content_words(sentence)) / len(question_words)


def best_sentence(question: str, passage: Passage) -> tuple[str, float]:
    """The passage's sentence that best matches the question, and its word overlap."""
    words = content_words(question)
    best, best_overlap = "", -1.0
    for sentence in sentences(passage.text):
        overlap = sentence_overlap(words, sentence)
        if overlap > best_overlap:
            best, best_overlap = sentence, overlap
    return best, max(best_overlap, 0.0)


def _quote(text: str) -> str:
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1] + "\u2026"


def cite(n: int, passage: Passage, quote: str) -> Citation:
    """The citation of a passage, numbered ``n``, quoting ``quote``."""
    return Citation(
        n=n,
        source=passage.source,
        quote=_quote(quote),
        score=round(passage.score, 4),
        document_id=passage.document_id,
        document=passage.document,
        page=passage.page,
        product_id=passage.product_id,
        chunk_id=passage.chunk_id,
    )


def compose_answer(question: str, passages: list[Passage], *, max_sentences: int) -> ComposedAnswer:
    """The best matching sentences, each cited (see module doc); no passages: empty answer."""
    words = content_words(question)
    scored: list[tuple[float, int, int, str]] = []
    for p_index, passage in enumerate(passages):
        for s_index, sentence in enumerate(sentences(passage.text)):
            overlap = sentence_overlap(words, sentence)
            if overlap > 0:
                score = overlap + PASSAGE_WEIGHT * passage.score
                scored.append((score, p_index, s_index, sentence))
    if not scored and passages:  # nothing shares a word: the best passage's first sentence
        first = sentences(passages[0].text)
        if first:
            scored.append((0.0, 0, 0, first[0]))
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    chosen: list[tuple[int, str]] = []
    seen: set[str] = set()
    for score, p_index, _, sentence in scored:
        if sentence in seen or (chosen and score < RELATIVE_FLOOR * scored[0][0]):
            continue
        seen.add(sentence)
        chosen.append((p_index, sentence))
        if len(chosen) == max_sentences:
            break
    citations: list[Citation] = []
    number_of: dict[int, int] = {}
    parts: list[str] = []
    for p_index, sentence in chosen:
        if p_index not in number_of:
            number_of[p_index] = len(citations) + 1
            citations.append(cite(number_of[p_index], passages[p_index], sentence))
        parts.append(f"{sentence} [{number_of[p_index]}]")
    return ComposedAnswer(answer=" ".join(parts), citations=citations)


def compose_from(
    evidence: Sequence[Supported], passages: Sequence[Passage], *, max_sentences: int
) -> ComposedAnswer:
    """An answer from ranked evidence (:mod:`services.chatbot.answerability`), citing only the
    passages its sentences come from.

    The best statement comes first. Another joins (up to ``max_sentences``) when it scores at
    least ``RELATIVE_FLOOR`` of the best and is from a passage already cited, or when it holds
    asked words the answer does not have yet (the second fact of a two-fact question); a
    passage that would only repeat what is said is not cited.
    """
    if not evidence:
        return ComposedAnswer(answer="", citations=[])
    best = evidence[0]
    chosen = [best]
    covered = set(best.terms)
    for item in evidence[1:]:
        if len(chosen) == max_sentences:
            break
        if any(item.text == c.text for c in chosen):
            continue
        same_passage = any(item.passage == c.passage for c in chosen)
        adds = bool(item.lexical > 0 and item.asked_terms - covered)
        if (same_passage and item.support >= RELATIVE_FLOOR * best.support) or adds:
            chosen.append(item)
            covered |= item.terms
    citations: list[Citation] = []
    number_of: dict[int, int] = {}
    parts: list[str] = []
    for item in chosen:
        if item.passage not in number_of:
            number_of[item.passage] = len(citations) + 1
            citations.append(cite(number_of[item.passage], passages[item.passage], item.text))
        parts.append(f"{item.text} [{number_of[item.passage]}]")
    return ComposedAnswer(answer=" ".join(parts), citations=citations)


def cite_passages(question: str, passages: list[Passage]) -> list[Citation]:
    """Every passage cited in order ([1] ... [k]), quoting its best matching sentence."""
    return [cite(n, p, best_sentence(question, p)[0]) for n, p in enumerate(passages, start=1)]
