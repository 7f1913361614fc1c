"""Text -> chunks: sentences packed up to a size, consecutive chunks overlapping by sentences.

A chunk never cuts a sentence unless that one sentence is longer than ``max_chars`` (then it is
cut at word boundaries). Each chunk keeps its character offsets in the text it came from, so a
citation can point at the span. The default size (~700 characters, ~150-180 word pieces) stays
under the embedding model's 256-token window.

    chunks = chunk_text(page_text)          # [Chunk(text, char_start, char_end), ...]
    page_text[c.char_start:c.char_end] == c.text
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MAX_CHARS: Final = 700
OVERLAP_CHARS: Final = 150
CHUNKER_VERSION: Final = "sentences-v1"
"""Part of every content hash: a change of the chunking re-chunks every document."""

# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by white space, or at a
# blank line. "$4.99" and "e.g.x" do not end one (no white space after the dot).
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n\s*")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINE_BREAK = re.compile(r" ?\n ?")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of a text: ``text == source[char_start:char_end]``."""

    text: str
    char_start: int
    char_end: int


def normalise(text: str) -> str:
    """Collapse runs of spaces and single line breaks (PDF layout) into one space; keep blank
    lines (paragraphs) as one blank line."""
    text = _SPACES.sub(" ", text.replace("\u00a0", " "))
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(_LINE_BREAK.sub(" ", p).strip() for p in paragraphs if p.strip())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, without the white space between sentences."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start() + len(match.group(0).rstrip())
        if text[start:end].strip():
            spans.append(_strip(text, start, end))
        start = match.end()
    if text[start:].strip():
        spans.append(_strip(text, start, len(text)))
    return spans


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _cut_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Split one over-long span at word boundaries into pieces of at most ``max_chars``."""
    pieces: list[tuple[int, int]] = []
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars + 1)
        if cut <= start:
            cut = start + max_chars
        pieces.append(_strip(text, start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        pieces.append((start, end))
    return pieces


def chunk_text(
    text: str, *, max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS
) -> list[Chunk]:
    """Pack the sentences of ``text`` into chunks of at most ``max_chars``; each chunk after the
    first starts with the last sentences (at most ``overlap_chars``) of the one before."""
    if max_chars <= 0 or not 0 <= overlap_chars < max_chars:
        raise ValueError("need max_chars > 0 and 0 <= overlap_chars < max_chars")
    spans: list[tuple[int, int]] = []
    for start, end in sentence_spans(text):
        spans.extend(_cut_long(text, start, end, max_chars))
    chunks: list[Chunk] = []
    first = 0
    while first < len(spans):
        last = first
        while last + 1 < len(spans) and spans[last + 1][1] - spans[first][0] <= max_chars:
            last += 1
        start, end = spans[first][0], spans[last][1]
        chunks.append(Chunk(text[start:end], start, end))
        if last + 1 >= len(spans):
            break
        # Overlap: step back over trailing sentences that fit in overlap_chars, but always move.
        nxt = last + 1
        while nxt - 1 > first and end - spans[nxt - 1][0] <= overlap_chars:
            nxt -= 1
        first = nxt
    return chunks
