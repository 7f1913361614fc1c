"""The chatbot's series exist at zero from the start, so the first answers show in rate().

The registry is the process's: other tests may have observed the real modes ("extractive",
"sql") before these run, so the series counted at zero carry labels only these tests use.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.chatbot import metrics


def _count(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_known_series_start_at_zero_for_the_mode_and_the_model() -> None:
    mode, model = "unit-test-mode", "unit-test-model"
    count = "modelfleet_chatbot_request_duration_seconds_count"
    assert _count(count, answer="facts", mode=mode) is None
    assert _count("modelfleet_chatbot_llm_time_to_first_token_seconds_count", model=model) is None
    metrics.initialise(mode=mode, model=model)
    for kind in metrics.ANSWER_KINDS:
        assert _count(count, answer=kind, mode=mode) == 0.0
    assert _count("modelfleet_chatbot_prompt_chars_count", mode=mode) == 0.0
    assert _count("modelfleet_chatbot_prompt_chars_count", mode="extractive") is not None
    assert _count("modelfleet_chatbot_response_chars_count", mode="sql") is not None
    for name in ("time_to_first_token_seconds", "queue_seconds", "output_tokens_per_second"):
        assert _count(f"modelfleet_chatbot_llm_{name}_count", model=model) == 0.0
    assert _count("modelfleet_chatbot_llm_tokens_total", model=model, direction="out") == 0.0


def test_without_a_generator_no_model_series_is_made() -> None:
    mode = "unit-test-no-generator"
    metrics.initialise(mode=mode, model=None)
    count = "modelfleet_chatbot_request_duration_seconds_count"
    assert _count(count, answer="facts", mode=mode) == 0.0
    assert _count("modelfleet_chatbot_llm_queue_seconds_count", model="None") is None
