"""`modelfleet eval chatbot`'s retrieval half on the real Postgres and Triton: the generated
manuals and a 1,000-product catalogue in a database of their own (the other tests' chunks stay
out of its figures, its chunks out of theirs), every question searched by each retriever.

What it holds is the point of hybrid retrieval (docs/decisions.md, decision 51): on the hard set
each side finds what the other misses (codes and figures for full text, descriptions in other
words for the vector ranking), and the fusion is above both.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.jobs.chatbot_eval import run_eval
from services.jobs.ingest import IngestSettings
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import service_settings

pytestmark = pytest.mark.integration


async def test_hybrid_is_above_vector_and_full_text_on_the_hard_set(
    stack: Stack, stack_settings: StackSettings
) -> None:
    name = f"eval_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        await conn.execute(f"create database {name}")
    finally:
        await conn.close()
    settings = service_settings(
        IngestSettings,
        stack_settings,
        database_url=f"{stack_settings.database_url.rsplit('/', 1)[0]}/{name}",
        triton_http_url=stack_settings.triton_http_url,
        catalogue_rows=1000,
        invalidate_cache=False,
    )
    report = await run_eval(settings=settings, say=lambda _: None)

    def recall(retrieval: str, split: str) -> float:
        return report.retrievers[retrieval][split].recall_at_5

    def kind(retrieval: str, name: str) -> float:
        return report.hard_kinds[retrieval][name].recall_at_5

    for split in ("hard-dev", "hard-test"):
        assert recall("hybrid", split) > max(recall("vector", split), recall("fulltext", split))
    # Each side's own kind: an exact code for full text, a description for the vector ranking.
    assert kind("fulltext", "model-number") > kind("vector", "model-number")
    assert kind("hybrid", "model-number") == kind("fulltext", "model-number")
    assert kind("vector", "paraphrase-unnamed") > kind("fulltext", "paraphrase-unnamed")
    assert kind("hybrid", "paraphrase-unnamed") == kind("vector", "paraphrase-unnamed")
    assert recall("hybrid", "today") >= 0.98
