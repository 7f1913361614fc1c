"""Request and response bodies of the chatbot API (the public contract, versioned /v1).

The handlers return these models; times the database stamps (:data:`Timestamp`) are sent as
``datetime.isoformat()`` writes them (``+00:00``, as the API always sent them; pydantic would
write ``Z``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, field_validator

from services.common.fields import JsonRequest, JsonUuid
from services.common.pgtext import BLANK, NO_NUL_PATTERN, NOT_BLANK_PATTERN, is_blank, no_nul

#: The most any service allows (``CHATBOT_MAX_QUESTION_CHARS`` is at most this).
MAX_QUESTION_CHARS = 20_000

Source = Literal["products", "documents"]
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A time the database stamped, sent in ``isoformat()`` (``2024-03-14T12:30:00+00:00``)."""


class ChatFilters(JsonRequest):
    """Where to look: only products, only documents, or one document."""

    model_config = ConfigDict(extra="forbid")

    source: Source | None = None
    document_id: JsonUuid | None = Field(
        default=None, description="Only this document (an id from POST /v1/documents)."
    )


class ChatRequest(JsonRequest):
    """A question, optionally in an existing conversation and within filters."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "What is the cheapest laptop under $500?"},
                {
                    "question": "How long does the battery last?",
                    "filters": {"source": "documents"},
                    "stream": True,
                },
            ]
        },
    )

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description="Not blank; at most CHATBOT_MAX_QUESTION_CHARS characters (the service's "
        "document gives its own limit as maxLength).",
        json_schema_extra={
            "allOf": [{"pattern": NOT_BLANK_PATTERN}, {"pattern": NO_NUL_PATTERN}],
        },
    )
    conversation_id: JsonUuid | None = None
    filters: ChatFilters = Field(default_factory=ChatFilters)
    top_k: int | None = Field(default=None, ge=1, le=50)
    stream: bool = Field(
        default=False, description="Answer as Server-Sent Events (also: Accept: text/event-stream)."
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if is_blank(value):
            raise ValueError("question is blank")
        return no_nul(value.strip(BLANK))


class RetrievedOut(BaseModel):
    """A retrieved chunk: where it comes from and its retrieval score."""

    source: Source
    score: float = Field(description="Retrieval score (cosine similarity); 1.0 for SQL rows.")
    document_id: str | None = None
    document: str | None = None
    page: int | None = None
    product_id: str | None = None
    chunk_id: str | None = None


class CitationOut(RetrievedOut):
    """A cited source: the mark [n] in the answer and the quoted span."""

    n: int = Field(description="The mark [n] in the answer.")
    quote: str = Field(description="The quoted span the statement rests on.")


class AnswerValidation(BaseModel):
    """How a generated answer fared in the checks (services/chatbot/validation.py)."""

    passed: bool = Field(description="False: the answer is the extractive one that replaced it.")
    check: Literal["empty", "uncited", "unknown_source", "subject", "figure", "terms"] | None = (
        Field(default=None, description="The check that failed.")
    )
    reason: str | None = Field(default=None, description="Why it failed, in words.")
    rejected: str | None = Field(default=None, description="The generated text that was replaced.")


class Refusal(BaseModel):
    """Why the answer is "I do not know" (services/chatbot/answerability.py)."""

    check: Literal["no_sources", "identifier", "unsupported"] = Field(
        description="no_sources: nothing retrieved above CHATBOT_MIN_SCORE; identifier: no source"
        " holds the question's codes or figures; unsupported: the sources about its subject do"
        " not say what it asks."
    )
    reason: str = Field(description="Why, in words.")


class ChatResponse(BaseModel):
    conversation_id: UUID
    answer: str
    answered_by: Literal["facts", "retrieval"]
    generation: Literal["extractive", "triton", "openai", "sql"]
    citations: list[CitationOut]
    retrieved: list[RetrievedOut] = Field(description="Every retrieved chunk and its score.")
    cached: bool
    count: int | None = Field(default=None, description="Facts: the count asked for.")
    groups: (
        Annotated[
            list[tuple[str, int]],
            # each group [name, count]; as `items` of one schema, not `prefixItems`, which some
            # readers of an event's contentSchema do not take
            WithJsonSchema(
                {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 2,
                        "items": {"type": ["string", "integer"]},
                    },
                }
            ),
        ]
        | None
    ) = Field(default=None, description="Facts: per group, [name, count].")
    validation: AnswerValidation | None = Field(
        default=None,
        description="A generated answer's checks (absent for extractive, SQL and unchecked ones).",
    )
    refusal: Refusal | None = Field(
        default=None,
        description="Present when no source answers the question: the answer says so and cites"
        " nothing.",
    )


class AnswerDelta(BaseModel):
    """A piece of the answer's text (an SSE ``delta`` event): the pieces joined are the answer."""

    text: str


DocumentState = Literal["processing", "ready", "failed"]


class UploadAccepted(BaseModel):
    id: UUID = Field(description="The document id (also for the filter document_id).")
    name: str
    pages: int
    status: DocumentState = Field(description="ready: the same file was ingested before.")
    status_url: str


class DocumentStatus(BaseModel):
    id: UUID
    source: Source
    name: str
    title: str
    status: DocumentState
    error: str | None
    pages: int | None
    chunks: int
    created_at: Timestamp
    updated_at: Timestamp
