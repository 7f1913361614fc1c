"""The chat page in a real headless browser (Debian's chromium): ask, see the cited sources,
upload a PDF and ask about it; in AUTH_MODE=jwt, the token typed into the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.chatbot import make_pdf
from services.chatbot.app import create_app
from services.chatbot.settings import ChatbotSettings
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import service_settings
from tests.browser import Page, chromium_path, headless_chromium
from tests.oidc import LocalIssuer
from tests.servers import serving

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


async def test_page_in_jwt_mode_asks_for_a_token_and_sends_it(
    stack: Stack, stack_settings: StackSettings
) -> None:
    """With AUTH_MODE=jwt the page itself loads without credentials (it holds no data); a
    question without a token is refused (401, the token field opens), with one it is answered."""
    with LocalIssuer().in_thread() as issuer:
        settings = service_settings(
            ChatbotSettings, stack_settings, cache_enabled=False, **issuer.settings()
        )
        with serving(create_app(settings)) as url:
            async with headless_chromium() as page:
                await page.goto(f"{url}/")
                assert await page.evaluate("document.title") == "modelfleet chat"
                assert await page.evaluate("document.getElementById('auth').open") is False
                question = "how many products are in each category"
                await page.evaluate(
                    f"document.getElementById('question').value = {json.dumps(question)};"
                    "document.getElementById('ask').click()"
                )
                await page.wait_for("document.querySelector('#log .answer.error')", timeout_s=30)
                refused = await page.evaluate("document.querySelector('#log .answer').textContent")
                assert refused.startswith("Unauthorized"), refused
                assert await page.evaluate("document.getElementById('auth').open") is True

                token = issuer.token(sub="page-user", scopes=["read"])
                await page.evaluate(
                    f"document.getElementById('token').value = {json.dumps(token)};"
                    "document.getElementById('token').dispatchEvent(new Event('change'))"
                )
                turn = await ask_on_page(page, question, turns=1)
                assert "facts" in turn["meta"], turn
