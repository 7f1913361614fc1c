"""The chat page in a real headless browser (Debian's chromium): ask, see the cited sources,
upload a PDF and ask about it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.chatbot import make_pdf
from tests.browser import Page, chromium_path, headless_chromium

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        chromium_path() is None, reason="chromium missing: run scripts/ensure-tools"
    ),
]


async def ask_on_page(page: Page, question: str, turns: int) -> dict[str, Any]:
    """Type a question, press Ask, wait for the answer; the newest turn as the page shows it."""
    await page.evaluate(
        f"document.getElementById('question').value = {json.dumps(question)};"
        "document.getElementById('ask').click()"
    )
    await page.wait_for(
        f"document.querySelectorAll('#log .turn .meta').length === {turns}", timeout_s=30
    )
    return dict(
        await page.evaluate(
            "(() => { const t = document.querySelector('#log .turn');"
            " return { answer: t.querySelector('.answer').textContent,"
            " sources: [...t.querySelectorAll('.source')].map((s) => s.textContent),"
            " meta: t.querySelector('.meta').textContent }; })()"
        )
    )


async def test_ask_upload_and_see_cited_pages(chatbot_url: str, tmp_path: Path) -> None:
    manual = tmp_path / "aurora-blender.pdf"
    manual.write_bytes(
        make_pdf(
            [
                "Aurora blender guide. Welcome to your new Aurora blender.",
                "Cleaning. Rinse the Aurora jar with warm water and a drop of soap after "
                "every use; the blade assembly is dishwasher safe.",
            ]
        )
    )
    async with headless_chromium() as page:
        await page.goto(f"{chatbot_url}/")
        assert await page.evaluate("document.title") == "modelfleet chat"

        await page.set_files("#file", [manual])
        await page.evaluate("document.getElementById('upload').click()")
        await page.wait_for(
            "['ready', 'failed'].includes(document.getElementById('upload-status').dataset.status)",
            timeout_s=60,
        )
        status = await page.evaluate("document.getElementById('upload-status').textContent")
        assert status.startswith("aurora-blender.pdf: ready"), status

        turn = await ask_on_page(page, "How do I clean the Aurora blender jar?", turns=1)
        assert "warm water" in turn["answer"]
        sources = turn["sources"]
        assert sources and sources[0].startswith("[1] aurora-blender.pdf, page 2")
        assert "warm water" in sources[0]
        assert "retrieval" in turn["meta"]

        follow_up = await ask_on_page(page, "how many products are in each category", turns=2)
        assert "facts" in follow_up["meta"]
