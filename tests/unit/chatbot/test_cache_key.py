"""Answer cache keys: the same question hits, a changed corpus or filter misses."""

from __future__ import annotations

import re

from services.chatbot.cache import cache_key, normalise


def test_case_spaces_and_end_punctuation_do_not_matter() -> None:
    a = cache_key("What is the  cheapest laptop?", filters={}, mode="extractive", generation="g1")
    b = cache_key("what is the cheapest laptop", filters={}, mode="extractive", generation="g1")
    assert a == b
    assert normalise("  Hello   World?! ") == "hello world"


def test_a_new_corpus_generation_is_a_new_key() -> None:
    before = cache_key("q", filters={}, mode="extractive", generation="g1")
    after = cache_key("q", filters={}, mode="extractive", generation="g2")
    assert before != after


def test_filters_and_mode_are_part_of_the_key() -> None:
    base = cache_key("q", filters={"source": None}, mode="extractive", generation="g")
    assert base != cache_key(
        "q", filters={"source": "documents"}, mode="extractive", generation="g"
    )
    assert base != cache_key("q", filters={"source": None}, mode="openai", generation="g")


def test_keys_are_valid_jetstream_kv_keys() -> None:
    key = cache_key("Ünïcode / question *>", filters={}, mode="extractive", generation="0")
    assert re.fullmatch(r"[-/_=\.a-zA-Z0-9]+", key)
