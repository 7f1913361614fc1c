"""Prompts for the LLM modes and the SSE pieces of an answer."""

from __future__ import annotations

from services.chatbot.api import pieces
from services.chatbot.compose import Passage
from services.chatbot.generation import Turn, build_prompt, count_tokens


def test_prompt_numbers_sources_and_keeps_history_in_order() -> None:
    passages = [
        Passage(source="documents", text="Battery: 14 h.", score=0.7, document="m.pdf", page=3),
        Passage(source="products", text="Sonix X100.", score=0.5, product_id="P-1"),
    ]
    history = [Turn("user", "hi"), Turn("assistant", "hello")]
    prompt = build_prompt("battery?", passages, history)
    assert [m["role"] for m in prompt.messages] == ["system", "user", "assistant", "user"]
    system = prompt.messages[0]["content"]
    assert "[1] (m.pdf, page 3) Battery: 14 h." in system
    assert "[2] (product P-1) Sonix X100." in system
    assert prompt.text.endswith("USER: battery?\n\nASSISTANT:")


def test_count_tokens_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4


def test_pieces_rejoin_to_the_answer() -> None:
    text = "The battery lasts 14 hours on one charge. [1] Charging takes two hours. [1]"
    parts = pieces(text, size=10)
    assert "".join(parts) == text
    assert all(len(p) <= 24 for p in parts)
