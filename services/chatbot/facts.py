"""Product facts from SQL: a :class:`ProductQuery` becomes one parameterised query on ``products``.

The products table (``services/domain/documents/migrations``) has the columns product_id,
title, description, brand, price, currency, category (the leaf) and category_path. Matching is
case-insensitive: the brand exactly, a category segment anywhere in the category path
("Laptops", "Computers", "Electronics"), title words as substrings.

    vocab = await load_vocabulary(pool, timeout_s=2.0)
    query = intent.parse("cheapest laptop under $500", vocab)
    fact = await answer_fact(pool, query, limit=5, timeout_s=2.0)
    fact.answer, fact.rows  # text with the figures, the rows cited
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from services.chatbot.intent import ProductQuery, Vocabulary
from services.common.db import database_errors


@dataclass(frozen=True)
class FactRow:
    """One catalogue row cited by a fact answer."""

    product_id: str
    title: str
    brand: str
    price: float
    currency: str
    category: str


@dataclass(frozen=True)
class FactAnswer:
    """The answer text, the rows it cites, and the figures (count or groups) it states."""

    answer: str
    rows: list[FactRow]
    count: int | None = None
    groups: list[tuple[str, int]] | None = None


async def load_vocabulary(pool: asyncpg.Pool, *, timeout_s: float) -> Vocabulary:
    """Distinct brands and categories of the catalogue (a few hundred rows at most)."""
    async with database_errors("products_vocabulary"):
        brands = await pool.fetch(
            "select distinct brand from products where brand <> '' order by 1", timeout=timeout_s
        )
        categories = await pool.fetch(
            "select distinct category_path from products where category_path <> '' order by 1",
            timeout=timeout_s,
        )
    return Vocabulary(
        brands=tuple(str(r[0]) for r in brands), categories=tuple(str(r[0]) for r in categories)
    )


def where_clause(query: ProductQuery) -> tuple[str, list[Any]]:
    """SQL ``where`` of a query (``true`` when unfiltered) and its parameters, in order."""
    parts: list[str] = []
    args: list[Any] = []
    if query.brand:
        args.append(query.brand)
        parts.append(f"lower(brand) = lower(${len(args)})")
    if query.category:
        args.append(f"%{query.category}%")
        parts.append(f"category_path ilike ${len(args)}")
    for term in query.title_terms:
        args.append(f"%{term}%")
        parts.append(f"title ilike ${len(args)}")
    if query.min_price is not None:
        args.append(query.min_price)
        parts.append(f"price >= ${len(args)}")
    if query.max_price is not None:
        args.append(query.max_price)
        parts.append(f"price <= ${len(args)}")
    return (" and ".join(parts) or "true"), args


def describe(query: ProductQuery) -> str:
    """Human words for the filter: "Sonix laptops under $500.00"."""
    what = " ".join(x for x in (query.brand, query.category, *query.title_terms) if x)
    what = what or "products"
    if query.min_price is not None and query.max_price is not None:
        return f"{what} between ${query.min_price:,.2f} and ${query.max_price:,.2f}"
    if query.max_price is not None:
        return f"{what} under ${query.max_price:,.2f}"
    if query.min_price is not None:
        return f"{what} over ${query.min_price:,.2f}"
    return what


def _row(record: asyncpg.Record) -> FactRow:
    return FactRow(
        product_id=str(record["product_id"]),
        title=str(record["title"]),
        brand=str(record["brand"] or ""),
        price=float(record["price"]),
        currency=str(record["currency"] or "USD"),
        category=str(record["category"] or ""),
    )


def _price(row: FactRow) -> str:
    return f"${row.price:,.2f}" if row.currency == "USD" else f"{row.price:,.2f} {row.currency}"


_COLUMNS = "product_id, title, brand, price, currency, category"


async def answer_fact(
    pool: asyncpg.Pool, query: ProductQuery, *, limit: int, timeout_s: float
) -> FactAnswer:
    """Run the query and phrase the answer, citing the rows (or groups) it is based on."""
    where, args = where_clause(query)
    what = describe(query)
    async with database_errors("product_fact"):
        if query.kind in ("cheapest", "most_expensive", "list"):
            order = "desc" if query.kind == "most_expensive" else "asc"
            records = await pool.fetch(
                f"select {_COLUMNS} from products where {where}"
                f" order by price {order}, product_id limit {int(limit)}",
                *args,
                timeout=timeout_s,
            )
            total = None
        elif query.kind == "count":
            total = int(
                await pool.fetchval(
                    f"select count(*) from products where {where}", *args, timeout=timeout_s
                )
            )
            records = await pool.fetch(
                f"select {_COLUMNS} from products where {where}"
                f" order by price asc, product_id limit {int(limit)}",
                *args,
                timeout=timeout_s,
            )
        else:
            column = "brand" if query.group_by == "brand" else "category"
            grouped = await pool.fetch(
                f"select {column} as name, count(*) as n from products where {where}"
                f" group by 1 order by 2 desc, 1",
                *args,
                timeout=timeout_s,
            )
            groups = [(str(r["name"]), int(r["n"])) for r in grouped]
            listing = "; ".join(f"{name}: {n}" for name, n in groups[:20])
            return FactAnswer(
                answer=f"{what.capitalize()} by {column}: {listing or 'none'}.",
                rows=[],
                count=sum(n for _, n in groups),
                groups=groups,
            )
    rows = [_row(r) for r in records]
    if query.kind == "count":
        answer = f"There are {total} {what} in the catalogue."
        return FactAnswer(answer=answer, rows=rows, count=total)
    if not rows:
        return FactAnswer(answer=f"I found no {what} in the catalogue.", rows=[], count=0)
    top = rows[0]
    if query.kind == "list":
        listed = "; ".join(f"{r.title} ({_price(r)}, {r.product_id})" for r in rows)
        return FactAnswer(answer=f"{what.capitalize()}: {listed}.", rows=rows)
    adjective = "cheapest" if query.kind == "cheapest" else "most expensive"
    answer = f"The {adjective} of the {what} is {top.title} at {_price(top)} ({top.product_id})."
    return FactAnswer(answer=answer, rows=rows)
