"""Does any retrieved passage answer the question? Which of its statements may be cited?

Retrieval always brings *something*: a question about a product nobody documented, or about a
property no manual mentions, still gets the chunks that share its other words (the product's
name, "warranty", ...) above ``CHATBOT_MIN_SCORE``. Before an answer is written (extractive or
by an LLM) the question is checked against the passages' statements (:func:`units`: their
sentences, a catalogue row's title, brand, category and price as one statement):

1. **Identifiers.** Every code or figure of the question (a token with a digit: ``K42``,
   ``3.4``, ``1,200``) must be in a statement; the statements that hold all of them are the
   *subject's*. None does: refused (``identifier``): "the Zephyr kettle Q512" is not "the
   Zephyr kettle K42". A question without codes or figures: every statement is the subject's.
2. **What is asked.** The question's content words (:func:`services.chatbot.compose.
   content_words`, minus :data:`GENERIC`) that appear in two or more of the subject's
   statements name the subject (the product's name recurs in each of its sentences); the others
   are what is asked (``noise``, ``decibel``). A subject statement must contain one of them
   (lexical support), or be close in meaning to the question once the subject's words are
   removed from both (cosine of their embeddings at least ``CHATBOT_MIN_SUPPORT``: "what does
   it tip the scales at" / "without accessories it weighs 3.4 kilograms"). Neither: refused
   (``unsupported``).

An answerable question keeps its subject statements ranked by support (the share of the asked
words they contain plus their similarity); the extractive composer answers with the best of
them and cites only the passages they come from (:func:`services.chatbot.compose.compose_from`).

    draft = subject(question, passages)          # identifiers checked, asked words found
    vectors = await embedder.embed([draft.masked_question, *draft.masked_units()])
    verdict = assess(draft, similarities(vectors), min_support=0.3)
    verdict.answerable, verdict.reason, verdict.evidence[0].text
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.chatbot.compose import Passage, content_words, sentences
from services.domain.documents.embeddings import Vectors

#: Question words that never tell what is asked (they fit any product's statements).
GENERIC = frozenset(
    "product item model thing much long many have has get got one use need want".split()
)
#: A token with a digit, thousands separators and decimals kept: "k42", "3.4", "1,200".
_IDENTIFIER = re.compile(r"[a-z0-9]*\d[a-z0-9]*(?:[.,]\d+)*")
_PRICE = re.compile(r"^price:", re.IGNORECASE)
_SPACE = re.compile(r"\S+")


def identifiers(text: str) -> set[str]:
    """The codes and figures of a text, lower case, without thousands separators."""
    found = set()
    for token in _IDENTIFIER.findall(text.lower()):
        token = token.replace(",", "").rstrip(".")
        if token:
            found.add(token)
    return found


def units(passage: Passage) -> list[str]:
    """The statements of a passage: its sentences; a catalogue row's leading sentences up to
    its price ("Title. Brand: B. Category: C. Price: 9.99 USD.") are one statement."""
    parts = sentences(passage.text)
    if passage.source != "products":
        return parts
    for end, part in enumerate(parts):
        if _PRICE.match(part):
            return [" ".join(parts[: end + 1]), *parts[end + 1 :]]
    return parts


@dataclass(frozen=True)
class Unit:
    """A statement of a passage (``passage``: its index among the passages)."""

    passage: int
    text: str
    terms: frozenset[str]


@dataclass(frozen=True)
class Draft:
    """The question split into subject and asked words, and the subject's statements."""

    question: str
    identifiers: frozenset[str]
    subject_terms: frozenset[str]
    asked: frozenset[str]
    units: tuple[Unit, ...]
    """The subject's statements (all identifiers in each), in passage and sentence order."""
    missing: frozenset[str] = frozenset()
    """Identifiers of the question no passage holds (then :attr:`units` is empty)."""

    def mask(self, text: str) -> str:
        """``text`` without the subject's words and identifiers (what is left is the ask)."""
        hidden = self.subject_terms | self.identifiers
        return " ".join(w for w in _SPACE.findall(text) if not content_words(w) & hidden)

    @property
    def masked_question(self) -> str:
        return self.mask(self.question)

    def masked_units(self) -> list[str]:
        return [self.mask(unit.text) for unit in self.units]


@dataclass(frozen=True)
class Evidence:
    """A subject statement and how well it supports the question."""

    passage: int
    text: str
    lexical: float  # share of the asked words it contains (1.0 when nothing specific is asked)
    similarity: float  # cosine of the masked question and the masked statement (0 if unknown)
    terms: frozenset[str] = frozenset()  # its content words and identifiers
    asked_terms: frozenset[str] = frozenset()  # the asked words among them

    @property
    def support(self) -> float:
        return self.lexical + self.similarity


@dataclass(frozen=True)
class Assessment:
    """Answerable (with its evidence, best first), or refused with a reason."""

    answerable: bool
    check: str = ""  # "identifier" | "unsupported" | "" (answerable)
    reason: str = ""
    evidence: list[Evidence] = field(default_factory=list)
    asked: frozenset[str] = frozenset()


def subject(question: str, passages: Sequence[Passage]) -> Draft:
    """Step 1 of the module doc and the split of step 2 (no embeddings needed)."""
    wanted = identifiers(question)
    every = [
        Unit(index, text, frozenset(content_words(text) | identifiers(text)))
        for index, passage in enumerate(passages)
        for text in units(passage)
    ]
    held = set().union(*(unit.terms for unit in every)) if every else set()
    chosen = tuple(unit for unit in every if wanted <= unit.terms)
    words = {w for w in content_words(question) if w not in GENERIC} - wanted
    words = {w for w in words if not any(ch.isdigit() for ch in w)}
    distinct = {unit.text: unit.terms for unit in chosen}.values()  # chunks overlap
    recurring = {w for w in words if sum(w in terms for terms in distinct) >= 2}
    return Draft(
        question=question,
        identifiers=frozenset(wanted),
        subject_terms=frozenset(recurring),
        asked=frozenset(words - recurring),
        units=chosen,
        missing=frozenset(wanted - held) if not chosen else frozenset(),
    )


def assess(draft: Draft, similarity: Sequence[float] | None, *, min_support: float) -> Assessment:
    """Step 2 of the module doc: the verdict, with the subject's statements ranked by support.

    ``similarity``: per statement of the draft, the cosine of its masked text and the masked
    question (None: not computed; then only lexical support counts)."""
    if not draft.units:
        missing = sorted(draft.missing) or sorted(draft.identifiers)
        what = ", ".join(missing) if missing else "the question's codes together"
        return Assessment(
            answerable=False,
            check="identifier",
            reason=f"no source mentions {what}",
            asked=draft.asked,
        )
    evidence = []
    for position, unit in enumerate(draft.units):
        share = len(draft.asked & unit.terms) / len(draft.asked) if draft.asked else 1.0
        close = float(similarity[position]) if similarity is not None else 0.0
        evidence.append(
            Evidence(unit.passage, unit.text, share, close, unit.terms, draft.asked & unit.terms)
        )
    evidence.sort(key=lambda e: (-e.support, e.passage))
    lexical = any(e.lexical > 0 for e in evidence)
    semantic = any(e.similarity >= min_support for e in evidence)
    if not (lexical or semantic):
        asked = ", ".join(sorted(draft.asked))
        return Assessment(
            answerable=False,
            check="unsupported",
            reason=f"no source says anything about {asked}",
            evidence=evidence,
            asked=draft.asked,
        )
    return Assessment(answerable=True, evidence=evidence, asked=draft.asked)


def similarities(vectors: Vectors) -> list[float]:
    """Cosines of the first (normalised) vector with each of the others."""
    if len(vectors) < 2:
        return []
    return [float(v) for v in vectors[1:] @ vectors[0]]
