"""Metrics of the chatbot service (``modelfleet_chatbot_*``), defined once.

The production list of an LLM service: request latency (histogram: percentiles in PromQL),
questions per user (the caller's identity: token subject, ``apikey:<id>``, or ``ip:<address>``
without authentication; the ``CHATBOT_IDENTITY_METRICS_TOP_N`` most frequent have their own
label, the rest ``other``: :mod:`services.common.cardinality`), errors by type, embedding,
vector-search and LLM latency, how many sources matched, prompt and response length, tokens in
and out, cache hits and misses, uploads by outcome.

Per model (``CHATBOT_OPENAI_MODEL`` or ``CHATBOT_LLM_TRITON_MODEL``), what an LLM service is
judged by: time to first token (from the request leaving the queue to the first piece of text;
the whole answer when it is not streamed), time per output token after the first, output tokens
per second, tokens in and out, the time a request waits for a generation slot
(``CHATBOT_LLM_CONCURRENCY``), and generated answers by outcome (passed validation, failed it and
replaced by the extractive answer, cancelled by the client going away, error).
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
#: From a 270M model on 2 cores (~0.2 s) to a remote 70B model (seconds).
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0)
TPOT_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
TOKENS_PER_S_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 200, 500)
LLM_TTFT = Histogram(
    "modelfleet_chatbot_llm_time_to_first_token_seconds",
    "Time from a generation request leaving the queue to its first piece of text, per model.",
    ["model"],
    buckets=TTFT_BUCKETS,
)
LLM_TPOT = Histogram(
    "modelfleet_chatbot_llm_time_per_output_token_seconds",
    "Time per output token after the first (streamed answers of two tokens or more), per model.",
    ["model"],
    buckets=TPOT_BUCKETS,
)
LLM_TOKENS_PER_S = Histogram(
    "modelfleet_chatbot_llm_output_tokens_per_second",
    "Output tokens per second of one answer (its tokens over its generation time), per model.",
    ["model"],
    buckets=TOKENS_PER_S_BUCKETS,
)
LLM_QUEUE = Histogram(
    "modelfleet_chatbot_llm_queue_seconds",
    "Time a generation request waited for a slot (CHATBOT_LLM_CONCURRENCY), per model.",
    ["model"],
    buckets=STEP_BUCKETS + (5.0, 10.0, 30.0),
)
LLM_TOKENS = Counter(
    "modelfleet_chatbot_llm_tokens_total",
    "Tokens of generation requests, per model and direction (in: prompt, out: answer).",
    ["model", "direction"],
)
LLM_ANSWERS = Counter(
    "modelfleet_chatbot_llm_answers_total",
    "Generated answers per model by outcome: passed (validated and delivered), failed (a check"
    " failed: replaced by the extractive answer), cancelled (client gone), error.",
    ["model", "outcome", "check"],
)
REFUSALS = Counter(
    "modelfleet_chatbot_refusals_total",
    "Questions answered 'I do not know' (no citations), by the check that refused them:"
    " no_sources, identifier (a code or figure of the question in no source), unsupported"
    " (the sources about its subject do not say what it asks).",
    ["check"],
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


#: How a question can be answered (the ``answer`` label of REQUEST_LATENCY).
ANSWER_KINDS = ("facts", "retrieval", "cache")


def initialise(*, mode: str, model: str | None) -> None:
    """Create at zero every series whose labels are known at start (the generation ``mode``,
    the generator's ``model``), as Prometheus's instrumentation guide advises: a series born
    with its first observation has no increase for that observation, so ``rate()`` (and the
    dashboard's percentiles) would not show a chatbot's first answers."""
    for kind in ANSWER_KINDS:
        REQUEST_LATENCY.labels(kind, mode)
    for label in {mode, "extractive"}:
        PROMPT_CHARS.labels(label)
    for label in {mode, "extractive", "sql"}:
        RESPONSE_CHARS.labels(label)
    if model is None:
        return
    for histogram in (LLM_TTFT, LLM_TPOT, LLM_TOKENS_PER_S, LLM_QUEUE):
        histogram.labels(model)
    for direction in ("in", "out"):
        LLM_TOKENS.labels(model, direction)
