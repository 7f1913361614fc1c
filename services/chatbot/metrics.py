"""Metrics of the chatbot service (``modelfleet_chatbot_*``), defined once.

The production list of an LLM service: request latency (histogram: percentiles in PromQL),
questions per user (the caller's identity: token subject, ``apikey:<id>``, or ``ip:<address>``
without authentication; the ``CHATBOT_IDENTITY_METRICS_TOP_N`` most frequent have their own
label, the rest ``other``: :mod:`services.common.cardinality`), errors by type, embedding,
vector-search and LLM latency, how many sources matched, prompt and response length, tokens in
and out, cache hits and misses, uploads by outcome.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.common.cardinality import TopLabels

#: Chat requests take milliseconds (cache, extractive) to tens of seconds (a remote LLM).
CHAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LENGTH_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

REQUEST_LATENCY = Histogram(
    "modelfleet_chatbot_request_duration_seconds",
    "Time to answer a chat question, by how it was answered (facts, retrieval, cache) and mode.",
    ["answer", "mode"],
    buckets=CHAT_BUCKETS,
)
QUESTIONS_BY_USER = Counter(
    "modelfleet_chatbot_questions_by_user_total",
    "Chat questions per user (identity or client IP); all but the most frequent: 'other'.",
    ["user"],
)
ERRORS = Counter(
    "modelfleet_chatbot_errors_total",
    "Failed chat and upload requests, by error type (problem type slug).",
    ["type"],
)
EMBEDDING_LATENCY = Histogram(
    "modelfleet_chatbot_embedding_duration_seconds",
    "Time to embed a question (tokenise + Triton + pooling).",
    buckets=STEP_BUCKETS,
)
VECTOR_SEARCH_LATENCY = Histogram(
    "modelfleet_chatbot_vector_search_duration_seconds",
    "Time of one pgvector nearest-neighbour search.",
    buckets=STEP_BUCKETS,
)
FACT_LATENCY = Histogram(
    "modelfleet_chatbot_fact_query_duration_seconds",
    "Time of one product-fact SQL query.",
    buckets=STEP_BUCKETS,
)
LLM_LATENCY = Histogram(
    "modelfleet_chatbot_llm_duration_seconds",
    "Time of one answer generation, by mode and outcome (ok or the error class).",
    ["mode", "outcome"],
    buckets=CHAT_BUCKETS,
)
SOURCE_MATCHES = Histogram(
    "modelfleet_chatbot_source_matches",
    "Sources cited by an answer (chunks above CHATBOT_MIN_SCORE, or catalogue rows).",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50),
)
PROMPT_CHARS = Histogram(
    "modelfleet_chatbot_prompt_chars",
    "Length of the prompt given to the generator (characters).",
    ["mode"],
    buckets=LENGTH_BUCKETS,
)
RESPONSE_CHARS = Histogram(
    "modelfleet_chatbot_response_chars",
    "Length of the answer (characters).",
    ["mode"],
    buckets=LENGTH_BUCKETS,
)
TOKENS = Counter(
    "modelfleet_chatbot_tokens_total",
    "Tokens in (prompt) and out (answer); from the endpoint's usage when it reports it,"
    " else counted as words and punctuation.",
    ["mode", "direction"],
)
CACHE = Counter(
    "modelfleet_chatbot_cache_requests_total",
    "Answer cache lookups: hit, miss, or error (cache unusable, question answered anyway).",
    ["result"],
)
UPLOADS = Counter(
    "modelfleet_chatbot_uploads_total",
    "PDF uploads by outcome: accepted, rejected (4xx), ingested, failed (background).",
    ["outcome"],
)


def user_labels(top: int) -> TopLabels:
    """Bounded label values of :data:`QUESTIONS_BY_USER` (a user that drops out: series gone)."""

    def forget(user: str) -> None:
        try:
            QUESTIONS_BY_USER.remove(user)
        except KeyError:
            pass

    return TopLabels(top, on_evict=forget)
