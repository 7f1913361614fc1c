"""Checks of a generated answer before the user gets it: does it rest on the sources it cites?

A language model's text is untrusted (the packaged local model is a base model that often
answers nothing or repeats itself). :func:`validate` passes an answer only when

1. it is not empty (``empty``);
2. it cites at least one source with a mark ``[n]`` (``uncited``);
3. every mark refers to a source that was passed to the model, 1..k (``unknown_source``);
4. the sources it cites hold every code and figure of the *question* (``K42``, ``3.4``): an
   answer about another product than the one asked about is no answer (``subject``; the same
   rule that refuses a question before generation, :mod:`services.chatbot.answerability`);
5. every figure in it (``95``, ``2.5``, ``1,200``) appears in the text of the sources it cites
   (``figure``);
6. at least ``min_term_share`` of its key terms (content words, singular, stop words dropped:
   :func:`services.chatbot.compose.content_words`) appear in the sources it cites (``terms``).

The first failing check is the verdict's ``check``; the answerer replaces such an answer by the
extractive one and counts it (``modelfleet_chatbot_llm_answers_total``).

    verdict = validate("It boils a litre in 95 seconds [1].", passages, min_term_share=0.5,
                       question="How fast does the K42 boil water?")
    verdict.passed, verdict.check, verdict.reason   # True, "", ""
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.chatbot.answerability import identifiers
from services.chatbot.compose import Passage, content_words

_MARK = re.compile(r"\[(\d+)\]")
_FIGURE = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`validate`: passed, else the failed check and why."""

    passed: bool
    check: str = ""
    reason: str = ""


def _fail(check: str, reason: str) -> Verdict:
    return Verdict(passed=False, check=check, reason=reason)


def _figures(text: str) -> set[str]:
    """The numbers of a text, without thousands separators (``1,200`` -> ``1200``)."""
    return {figure.replace(",", "") for figure in _FIGURE.findall(text)}


def validate(
    answer: str, passages: list[Passage], *, min_term_share: float, question: str = ""
) -> Verdict:
    """The checks of the module doc, in order; the first failing one is the verdict."""
    if not answer.strip():
        return _fail("empty", "the model wrote nothing")
    marks = [int(mark) for mark in _MARK.findall(answer)]
    if not marks:
        return _fail("uncited", "the answer cites no source")
    unknown = sorted({m for m in marks if not 1 <= m <= len(passages)})
    if unknown:
        listed = ", ".join(f"[{m}]" for m in unknown)
        return _fail("unknown_source", f"{listed} is not one of the {len(passages)} sources")
    cited = " ".join(passages[m - 1].text for m in sorted(set(marks)))
    absent = sorted(identifiers(question) - identifiers(cited))
    if absent:
        return _fail("subject", f"the cited sources do not mention {', '.join(absent)}")
    statement = _MARK.sub(" ", answer)
    missing = sorted(_figures(statement) - _figures(cited))
    if missing:
        return _fail("figure", f"{', '.join(missing)} is not in the cited sources")
    terms = {t for t in content_words(statement) if not t.isdigit()}
    if terms:
        share = len(terms & content_words(cited)) / len(terms)
        if share < min_term_share:
            return _fail(
                "terms",
                f"{share:.0%} of its key terms are in the cited sources (< {min_term_share:.0%})",
            )
    return Verdict(passed=True)
