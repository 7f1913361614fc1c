"""Settings of the chatbot service (env prefix ``CHATBOT_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.domain.documents.embeddings import EmbeddingSettings
from services.domain.documents.store import Retrieval

GenerationMode = Literal["extractive", "triton", "openai"]


class ChatbotSettings(EmbeddingSettings):
    """Environment -> settings for the chatbot; shared names (DATABASE_URL ...) unprefixed."""

    model_config = SettingsConfigDict(env_prefix="CHATBOT_")

    service_name: str = "chatbot"

    # Retrieval and answers.
    top_k: int = Field(default=5, ge=1, le=50, description="Chunks retrieved per question.")
    retrieval: Retrieval = Field(
        default="hybrid",
        description="hybrid (vector and full text, reciprocal rank fusion), vector or fulltext.",
    )
    max_question_chars: int = Field(default=2_000, ge=10, le=20_000)
    min_score: float = Field(
        default=0.2, ge=-1.0, le=1.0, description="Chunks below this cosine score are not cited."
    )
    refuse_unanswerable: bool = Field(
        default=True,
        description="Answer 'I do not know' (no citations) when no retrieved statement holds the"
        " question's codes and figures and what it asks (services/chatbot/answerability.py).",
    )
    min_support: float = Field(
        default=0.3,
        ge=-1.0,
        le=1.0,
        description="Cosine of the question and a statement (the subject's words removed from"
        " both) that counts as support when no asked word is in it.",
    )
    answer_sentences: int = Field(
        default=2, ge=1, le=10, description="Extractive mode: sentences in an answer."
    )
    fact_rows: int = Field(default=5, ge=1, le=50, description="Catalogue rows cited per fact.")
    history_turns: int = Field(
        default=4, ge=0, le=50, description="Earlier turns of a conversation sent to an LLM."
    )

    # Generation: extractive (no LLM), an LLM on Triton, or an OpenAI-compatible endpoint.
    generation: GenerationMode = "extractive"
    llm_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Deadline of one LLM call (below CHATBOT_REQUEST_TIMEOUT_S, default 30).",
    )
    llm_max_tokens: int = Field(default=256, ge=1, le=8192)
    llm_concurrency: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Generations at once per process; the rest queue (within the deadline).",
    )
    validate_answers: bool = Field(
        default=True,
        description="Check a generated answer's citations and terms; replace a failing one by"
        " the extractive answer.",
    )
    validation_min_term_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Share of a generated answer's key terms its cited sources must contain.",
    )
    llm_triton_model: str = Field(
        default="llm", description="Triton model with text_input/text_output BYTES tensors."
    )
    llm_triton_max_tokens_input: str = Field(
        default="max_tokens",
        description="INT32 input carrying the token limit (TensorRT-LLM); empty: none (vLLM).",
    )
    openai_base_url: str = Field(
        default="", description="OpenAI-compatible API base, e.g. https://host/v1."
    )
    openai_model: str = ""
    openai_api_key: SecretStr = Field(
        default=SecretStr(""), description="Bearer key; from a Kubernetes Secret in the chart."
    )

    # Answer cache (NATS JetStream KV).
    cache_enabled: bool = True
    cache_ttl_s: float = Field(default=600.0, gt=0, description="Lifetime of a cached answer.")
    cache_timeout_s: float = Field(default=0.5, gt=0, description="Deadline of one KV call.")

    # Uploads.
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    ingest_timeout_s: float = Field(
        default=300.0, gt=0, description="Deadline of one background PDF ingestion."
    )

    @model_validator(mode="after")
    def _check_generation(self) -> ChatbotSettings:
        if self.generation == "openai" and not (self.openai_base_url and self.openai_model):
            raise ValueError(
                "CHATBOT_GENERATION=openai needs CHATBOT_OPENAI_BASE_URL and CHATBOT_OPENAI_MODEL"
            )
        return self

    def designed_latency_s(self) -> float:
        """With an LLM, an answer that is not streamed waits for it, up to its deadline (the
        streamed ones count their time to the first event; their TTFT has an alert of its own)."""
        if self.generation == "extractive":
            return super().designed_latency_s()
        return self.llm_timeout_s
