"""The product-fact intent parser: what it recognises, and what it leaves to retrieval."""

from __future__ import annotations

import pytest

from services.chatbot.facts import describe, where_clause
from services.chatbot.intent import ProductQuery, Vocabulary, parse, singular

VOCAB = Vocabulary(
    brands=("Sonix", "Voltra", "Casa Verde", "Acme"),
    categories=(
        "Electronics > Computers > Laptops",
        "Electronics > Computers > Monitors",
        "Electronics > Audio > Headphones",
        "Home & Kitchen > Small Appliances > Blenders",
    ),
)


def _parse(question: str) -> ProductQuery:
    query = parse(question, VOCAB)
    assert query is not None, question
    return query


def test_cheapest_in_category_under_a_price() -> None:
    query = _parse("What is the cheapest laptop under $500?")
    assert (query.kind, query.category, query.max_price, query.min_price) == (
        "cheapest",
        "Laptops",
        500.0,
        None,
    )


def test_count_by_brand() -> None:
    query = _parse("How many products by Acme?")
    assert (query.kind, query.brand, query.category) == ("count", "Acme", None)


def test_most_expensive_with_brand_and_plural_category() -> None:
    query = _parse("priciest Sonix headphones")
    assert (query.kind, query.brand, query.category) == ("most_expensive", "Sonix", "Headphones")


def test_most_expensive_singular_of_a_plural_category() -> None:
    assert _parse("most expensive monitor").category == "Monitors"


@pytest.mark.parametrize(
    ("question", "group"),
    [("how many products per brand", "brand"), ("products in each category", "category")],
)
def test_counts_per_group(question: str, group: str) -> None:
    query = _parse(question)
    assert (query.kind, query.group_by) == ("count_by", group)


def test_price_range_with_thousands_and_a_multiword_brand() -> None:
    query = _parse("Casa Verde blenders between $1.2k and $50")
    assert (query.kind, query.brand, query.min_price, query.max_price) == (
        "list",
        "Casa Verde",
        50.0,
        1200.0,
    )


def test_unknown_noun_after_a_superlative_matches_titles() -> None:
    query = _parse("lowest priced toaster oven under 80 dollars")
    assert query.title_terms == ("toaster", "oven")
    assert query.max_price == 80.0


def test_a_department_is_a_category_segment() -> None:
    query = _parse("how many Electronics products over $1,000")
    assert (query.kind, query.category, query.min_price) == ("count", "Electronics", 1000.0)


@pytest.mark.parametrize(
    "question",
    [
        "What is the battery life of the X100?",
        "how many pages does the manual have",
        "what happens under 5 volts",
        "Tell me about Sonix",  # a brand, but no operation
        # a count, but of something else than catalogue items
        "If the Sonix laptop breaks, for how many months will the maker repair it?",
        "How many speed settings does the Voltra blender have?",
    ],
)
def test_other_questions_go_to_retrieval(question: str) -> None:
    assert parse(question, VOCAB) is None


def test_where_clause_is_parameterised() -> None:
    query = _parse("cheapest Sonix laptop under $500")
    where, args = where_clause(query)
    assert where == "lower(brand) = lower($1) and category_path ilike $2 and price <= $3"
    assert args == ["Sonix", "%Laptops%", 500.0]
    assert describe(query) == "Sonix Laptops under $500.00"


def test_a_quote_in_a_title_term_stays_a_parameter() -> None:
    query = _parse("cheapest o'brien's kettle")
    where, args = where_clause(query)
    assert "'" not in where
    assert args[0].startswith("%o'brien") and args[1] == "%kettle%"


@pytest.mark.parametrize(
    ("word", "expected"),
    [("laptops", "laptop"), ("batteries", "battery"), ("boxes", "box"), ("glass", "glass")],
)
def test_singular(word: str, expected: str) -> None:
    assert singular(word) == expected
