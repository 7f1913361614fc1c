"""`modelfleet demo chat`: upload a product manual, ask about it and get an answer citing it; then
a catalogue question answered from SQL, checked against the catalogue itself.

1. A manual of invented products (``models.chatbot.corpus.generate_manuals``: one product per
   page, facts such as its warranty, weight or factory) goes to ``POST /v1/documents``; the demo
   follows the status URL until the ingestion ends (``ready``, with its chunks).
2. A question one of its facts answers goes to ``POST /v1/chat`` without a filter (the whole
   corpus: catalogue and documents). The answer must state the fact and cite the uploaded
   document on the fact's page.
3. A catalogue question, "What is the cheapest <brand> product?" (the brand with the most
   products), must be answered from SQL (``answered_by: facts``) with a product whose price is
   the lowest of that brand in the ``products`` table, read by the demo itself.

Each step prints what it sent and what came back; the demo succeeds when every step did.

    result = asyncio.run(run_chat_demo(url, database_url, say=print))
    result.succeeded
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from models.chatbot.corpus import Fact, generate_manuals

#: the fact of the manual the demo asks about
TOPIC = "warranty"
PAGE = 2
CLIENT_TIMEOUT_S = 60.0
INGESTION_TIMEOUT_S = 180.0
DATABASE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Step:
    """One step's verdict: what was checked, and whether it held."""

    name: str
    ok: bool
    detail: str


@dataclass
class ChatDemoResult:
    """The steps the demo ran (a failed step ends the part of the story that needs it)."""

    steps: list[Step] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return len(self.steps) == 3 and all(s.ok for s in self.steps)


def demo_manual(seed: int) -> tuple[str, bytes, Fact]:
    """(file name, PDF bytes, the fact to ask about) of the demo's manual."""
    corpus = generate_manuals(files=1, products_per_file=4, seed=seed, prefix="demo-manual")
    ((name, data),) = corpus.files.items()
    fact = next(f for f in corpus.facts if f.page == PAGE and f.topic == TOPIC)
    return name, data, fact


def _failed(name: str, detail: str) -> tuple[Step, None]:
    return Step(name, False, detail), None


async def upload(
    client: httpx.AsyncClient, name: str, data: bytes, *, say: Callable[[str], None]
) -> tuple[Step, dict[str, Any] | None]:
    """Upload the PDF and follow its status URL until the ingestion ends (bounded)."""
    began = time.monotonic()
    response = await client.post("/v1/documents", files={"file": (name, data, "application/pdf")})
    if response.status_code != 202:
        return _failed("upload", f"POST /v1/documents: {response.status_code} {response.text}")
    accepted = response.json()
    status: dict[str, Any] = (await client.get(accepted["status_url"])).json()
    while status["status"] == "processing":
        if time.monotonic() - began > INGESTION_TIMEOUT_S:
            waited = f"{INGESTION_TIMEOUT_S:.0f} s ({accepted['status_url']})"
            return _failed("upload", f"{name} still processing after {waited}")
        await asyncio.sleep(0.3)
        status = (await client.get(accepted["status_url"])).json()
    took = time.monotonic() - began
    if status["status"] != "ready":
        return _failed("upload", f"{name}: {status['status']}: {status.get('error')}")
    again = " (the same file was ingested before)" if accepted["status"] == "ready" else ""
    say(
        f"1. uploaded {name} ({accepted['pages']} pages): ready with {status['chunks']} "
        f"chunks in {took:.1f} s{again}; document {accepted['id']}"
    )
    return Step("upload", True, f"{name} ready"), status


async def ask(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    """POST /v1/chat; the answer's body (raises on an HTTP error: its problem is the reason)."""
    response = await client.post("/v1/chat", json={"question": question})
    if response.status_code != 200:
        raise RuntimeError(f"POST /v1/chat: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


def _say_answer(body: dict[str, Any], say: Callable[[str], None]) -> None:
    say(f"   A: {body['answer']}")
    for citation in body["citations"]:
        if citation["source"] == "documents":
            where = f"{citation.get('document')} p. {citation.get('page')}"
        else:
            where = f"product {citation.get('product_id')}"
        quote, score = citation["quote"], citation["score"]
        say(f'   [{citation["n"]}] {where}: "{quote}" (score {score:.2f})')


async def ask_the_manual(
    client: httpx.AsyncClient, document: dict[str, Any], fact: Fact, *, say: Callable[[str], None]
) -> Step:
    """Ask the fact's question; the answer states it and cites the document on its page."""
    say(f"2. Q: {fact.question}")
    try:
        body = await ask(client, fact.question)
    except (RuntimeError, httpx.HTTPError) as exc:
        return Step("document question", False, str(exc))
    _say_answer(body, say)
    cites = [
        c
        for c in body["citations"]
        if c.get("document_id") == str(document["id"]) and c.get("page") == fact.page
    ]
    if fact.answer.lower() not in body["answer"].lower():
        return Step("document question", False, f"the answer does not say {fact.answer!r}")
    if not cites:
        return Step("document question", False, f"no citation of {fact.file} p. {fact.page}")
    return Step(
        "document question",
        True,
        f"the answer says {fact.answer!r} and cites {fact.file} p. {fact.page} [{cites[0]['n']}]",
    )


@dataclass(frozen=True)
class Brand:
    """The catalogue's largest brand as the products table has it: the truth of step 3."""

    name: str
    products: int
    lowest: Decimal
    cheapest: frozenset[str]  # the product ids at the lowest price


async def largest_brand(database_url: str) -> Brand | None:
    """The catalogue's brand with the most products, its lowest price and the products at that
    price, straight from Postgres (None: the catalogue is empty)."""
    connection = await asyncpg.connect(database_url, timeout=DATABASE_TIMEOUT_S)
    try:
        largest = await connection.fetchrow(
            "select brand, count(*) as n from products where brand <> '' group by brand "
            "order by count(*) desc, brand limit 1",
            timeout=DATABASE_TIMEOUT_S,
        )
        if largest is None:
            return None
        brand = str(largest["brand"])
        rows = await connection.fetch(
            "select product_id, price from products where lower(brand) = lower($1) "
            "and price = (select min(price) from products where lower(brand) = lower($1))",
            brand,
            timeout=DATABASE_TIMEOUT_S,
        )
    finally:
        await connection.close()
    cheapest = frozenset(str(r["product_id"]) for r in rows)
    return Brand(brand, int(largest["n"]), Decimal(rows[0]["price"]), cheapest)


async def ask_the_catalogue(
    client: httpx.AsyncClient, database_url: str, *, say: Callable[[str], None]
) -> Step:
    """Ask for the largest brand's cheapest product; answered from SQL with that product."""
    say("3. the catalogue's largest brand, from the products table:")
    try:
        brand = await largest_brand(database_url)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return Step("catalogue question", False, f"reading the products table: {exc!r}")
    if brand is None:
        return Step(
            "catalogue question",
            False,
            "the catalogue is empty (no products in Postgres): `modelfleet ingest` loads it "
            "(`modelfleet up` does, unless --no-ingest)",
        )
    lowest, cheapest = brand.lowest, brand.cheapest
    say(
        f"   {brand.name}, {brand.products} products, the lowest price {lowest} "
        f"({', '.join(sorted(cheapest))})"
    )
    question = f"What is the cheapest {brand.name} product?"
    say(f"   Q: {question}")
    try:
        body = await ask(client, question)
    except (RuntimeError, httpx.HTTPError) as exc:
        return Step("catalogue question", False, str(exc))
    _say_answer(body, say)
    if body["answered_by"] != "facts":
        return Step("catalogue question", False, f"answered by {body['answered_by']}, not SQL")
    cited = [c.get("product_id") for c in body["citations"]]
    if not cited or cited[0] not in cheapest or f"{lowest:,.2f}" not in body["answer"]:
        return Step(
            "catalogue question",
            False,
            f"the products table has {brand.name}'s lowest price {lowest} for {sorted(cheapest)}; "
            f"the answer cites {cited[:1]}",
        )
    return Step(
        "catalogue question",
        True,
        f"answered from SQL: {cited[0]} at {lowest} is the lowest {brand.name} price in the "
        "products table",
    )


async def run_chat_demo(
    url: str, database_url: str, *, say: Callable[[str], None], seed: int = 15
) -> ChatDemoResult:
    """The story against the chatbot at ``url`` (see the module's docstring)."""
    result = ChatDemoResult()
    name, data, fact = demo_manual(seed)
    say(f"chat demo against {url}")
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        try:
            step, document = await upload(client, name, data, say=say)
        except httpx.HTTPError as exc:
            step, document = Step("upload", False, f"{type(exc).__name__}: {exc}"), None
        result.steps.append(step)
        if not step.ok:
            _verdict(step, say)
        if document is not None:
            result.steps.append(await ask_the_manual(client, document, fact, say=say))
            _verdict(result.steps[-1], say)
        result.steps.append(await ask_the_catalogue(client, database_url, say=say))
        _verdict(result.steps[-1], say)
    return result


def _verdict(step: Step, say: Callable[[str], None]) -> None:
    say(f"   {'ok' if step.ok else 'FAILED'}: {step.detail}")
