"""Product-fact questions recognised by keywords, answered from SQL instead of vectors.

Scope (on purpose small, and tested): English questions that ask for

- the cheapest / most expensive item: "cheapest laptop under $500", "most expensive monitor",
  "priciest Sonix headphones", "lowest priced speaker";
- a count: "how many products by Acme", "how many laptops under $1000", "number of Voltra items"
  (what is counted, a word of the four after "how many", is a brand, a category or
  product/item: "how many months does the Acme warranty last" is not a count);
- a count per group: "how many products per brand", "products in each category";
- a list within a price range: "Sonix speakers between $50 and $100", "laptops under $500".

A question is a product fact only when it has such an operation (superlative, count or a price
bound) *and* names what to look at: a brand or category from the catalogue's own vocabulary
(:class:`Vocabulary`, read from the products table), the words product/item, or a noun right
after the superlative ("cheapest blender": matched against titles). Everything else (no
operation, or "how many pages does the manual have") goes to retrieval. Prices are read as
dollars ("$500", "500 dollars", "500 usd", "1,299.99"), "k" means thousands ("$1.5k").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["cheapest", "most_expensive", "count", "count_by", "list"]

_CHEAPEST = re.compile(
    r"\b(cheapest|least expensive|lowest[- ]priced|lowest price[d]?|most affordable|"
    r"cheapest priced|least costly)\b"
)
_EXPENSIVE = re.compile(
    r"\b(most expensive|priciest|highest[- ]priced|highest price[d]?|most costly|dearest)\b"
)
_COUNT = re.compile(r"\b(how many|number of|count of|count the|total number)\b")
_GROUP = re.compile(r"\b(?:per|by each|for each|in each|each|by)\s+(brand|category|categories)\b")
_AMOUNT = r"\$?\s*(\d[\d,]*(?:\.\d+)?)\s*(k\b)?\s*(?:dollars|usd|bucks)?"
_BETWEEN = re.compile(r"\bbetween\s+" + _AMOUNT + r"\s+(?:and|to|-)\s+" + _AMOUNT)
_UNDER = re.compile(
    r"\b(?:under|below|less than|cheaper than|up to|at most|no more than|max(?:imum)?|<)\s*"
    + _AMOUNT
)
_OVER = re.compile(
    r"\b(?:over|above|more than|pricier than|at least|from|min(?:imum)?|>)\s*" + _AMOUNT
)
#: Words after "how many" that may name what is counted ("how many Sonix wireless headphones").
COUNTED_WORDS = 4
_GENERIC = re.compile(r"\b(products?|items?|things?|goods|articles?)\b")
_WORD = re.compile(r"[a-z0-9][a-z0-9&'-]*")
_STOP_SUBJECT = {
    "under", "below", "less", "over", "above", "more", "between", "by", "from", "in", "with",
    "for", "of", "at", "that", "which", "is", "are", "do", "does", "you", "we", "on", "and",
    "or", "the", "a", "an", "have", "sold", "available", "there", "per", "each", "to", "than",
    "cheaper", "pricier", "up", "no", "max", "maximum", "min", "minimum",
}  # fmt: skip
_AFTER_SUPERLATIVE = re.compile(
    r"(?:cheapest|least expensive|lowest[- ]priced|most affordable|most expensive|priciest|"
    r"highest[- ]priced|most costly|dearest)\s+((?:[a-z0-9&'-]+\s*){1,3})"
)


def singular(word: str) -> str:
    """A crude English singular for matching ("laptops" -> "laptop", "boxes" -> "box")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [singular(w) for w in _WORD.findall(text.lower())]


@dataclass(frozen=True)
class Vocabulary:
    """The catalogue's brands and category paths (as stored), to recognise them in questions."""

    brands: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def category_terms(self) -> dict[tuple[str, ...], str]:
        """Words of each category segment ("Electronics > Computers > Laptops": "laptop",
        "computer", "electronic") -> that segment, as it is stored."""
        terms: dict[tuple[str, ...], str] = {}
        for category in self.categories:
            for segment in (s.strip() for s in category.split(">")):
                if segment:
                    terms.setdefault(tuple(_words(segment)), segment)
        return terms


@dataclass(frozen=True)
class ProductQuery:
    """What a product-fact question asks, ready to become one SQL query."""

    kind: Kind
    brand: str | None = None
    category: str | None = None  # a segment of a category path ("Laptops", "Electronics")
    title_terms: tuple[str, ...] = ()  # words every matching title must contain
    min_price: float | None = None
    max_price: float | None = None
    group_by: Literal["brand", "category"] | None = None
    matched: tuple[str, ...] = field(default=(), compare=False)  # what was recognised (debug)


def _amount(number: str, kilo: str | None) -> float:
    value = float(number.replace(",", ""))
    return value * 1000 if kilo else value


def _find_sequence(haystack: list[str], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(tuple(haystack[i : i + n]) == needle for i in range(len(haystack) - n + 1))


def _counts_catalogue(text: str, brand: str | None, category: str | None) -> bool:
    """Does a count question count catalogue things: is one of the (at most four) words right
    after "how many" a generic word, the brand's or the category's? ("how many months is the
    Nimbra fitness tracker's warranty" counts months, not fitness products.)"""
    found = _COUNT.search(text)
    if found is None:
        return False
    counted = set(_words(text[found.end() :])[:COUNTED_WORDS])
    named = set(_words(brand or "")) | set(_words(category or ""))
    return bool(counted & named) or any(_GENERIC.fullmatch(word) for word in counted)


def parse(question: str, vocabulary: Vocabulary) -> ProductQuery | None:
    """The product-fact query a question asks, or None when it is not one (see module doc)."""
    text = " ".join(question.lower().split())
    words = _words(text)
    min_price = max_price = None
    if between := _BETWEEN.search(text):
        low = _amount(between[1], between[2])
        high = _amount(between[3], between[4])
        min_price, max_price = min(low, high), max(low, high)
    else:
        if under := _UNDER.search(text):
            max_price = _amount(under[1], under[2])
        if over := _OVER.search(text):
            min_price = _amount(over[1], over[2])
    kind: Kind | None = None
    group_by: Literal["brand", "category"] | None = None
    if _CHEAPEST.search(text):
        kind = "cheapest"
    elif _EXPENSIVE.search(text):
        kind = "most_expensive"
    elif _COUNT.search(text):
        kind = "count"
        if group := _GROUP.search(text):
            kind, group_by = "count_by", "brand" if group[1] == "brand" else "category"
    elif group := _GROUP.search(text):
        if _GENERIC.search(text):
            kind, group_by = "count_by", "brand" if group[1] == "brand" else "category"
    if kind is None and (min_price is not None or max_price is not None):
        kind = "list"
    if kind is None:
        return None

    brand = next(
        (
            b
            for b in sorted(vocabulary.brands, key=len, reverse=True)
            if _find_sequence(words, tuple(_words(b)))
        ),
        None,
    )
    category = None
    for terms, segment in sorted(
        vocabulary.category_terms().items(), key=lambda item: len(item[0]), reverse=True
    ):
        if _find_sequence(words, terms):
            category = segment
            break
    title_terms: tuple[str, ...] = ()
    if category is None and kind in ("cheapest", "most_expensive", "list"):
        subject = _AFTER_SUPERLATIVE.search(text)
        candidates = _words(subject[1]) if subject else []
        brand_words = set(_words(brand)) if brand else set()
        kept: list[str] = []
        for word in candidates:
            if word in _STOP_SUBJECT or word.replace(".", "").isdigit():
                break
            if word not in brand_words and not _GENERIC.fullmatch(word):
                kept.append(word)
        title_terms = tuple(kept)
    generic = bool(_GENERIC.search(text))
    if brand is None and category is None and not title_terms and not generic:
        return None
    if kind == "count" and not _counts_catalogue(text, brand, category):
        return None
    if kind == "count_by" and group_by is None:
        return None
    return ProductQuery(
        kind=kind,
        brand=brand,
        category=category,
        title_terms=title_terms,
        min_price=min_price,
        max_price=max_price,
        group_by=group_by,
        matched=tuple(x for x in (brand, category, *title_terms) if x),
    )
