"""HTTP routes of the chatbot: ask (JSON or SSE), upload a PDF, follow its ingestion, the page.

``POST /v1/chat`` answers a :class:`ChatRequest`; with ``Accept: text/event-stream`` or
``"stream": true`` the answer comes as Server-Sent Events: ``meta`` (conversation id, how it was
answered, citations, retrieved chunks and scores), ``delta`` events with the answer's text in
pieces (as the LLM writes it in the LLM modes), and ``done`` with the whole response body.
Errors found before the first event (bad input, a dependency down) are ordinary problem+json
responses; an LLM failing mid-answer ends the stream with an ``error`` event (problem body).

The events are written by the shared SSE writer (:mod:`services.common.sse`).

``POST /v1/documents`` takes a PDF as ``multipart/form-data`` (field ``file``) or as a raw
``application/pdf`` body (name in ``?name=``). Everything is checked before anything is stored:
over ``CHATBOT_MAX_UPLOAD_BYTES`` -> 413 (a body that could not fit in it: the route's body
limit, :func:`upload_body_limit`, applied by the security layer), not a PDF -> 415,
unreadable, encrypted or without text -> 422. Then 202 with the upload's status URL, and
ingestion runs in the background (:mod:`services.chatbot.uploads`). ``GET /v1/documents/{id}``
shows the document and its status (``processing``, ``ready``, ``failed`` with the error).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse

from services.chatbot import metrics, uploads
from services.chatbot.answer import Answerer, Pending
from services.chatbot.schemas import (
    AnswerDelta,
    ChatRequest,
    ChatResponse,
    DocumentStatus,
    UploadAccepted,
)
from services.chatbot.settings import ChatbotSettings
from services.chatbot.state import StateDep
from services.common import sse
from services.common.errors import (
    PROBLEM_TYPE_BASE,
    ModelfleetError,
    NotFound,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
)
from services.common.request_body import BodyTooLarge
from services.common.security import current_identity, require_scope
from services.common.security.guard import is_json_media_type
from services.common.settings import ServiceSettings
from services.domain.documents.store import get_document

router = APIRouter(prefix="/v1", tags=["chatbot"])
page_router = APIRouter(tags=["page"])

PAGE = (Path(__file__).parent / "static" / "index.html").read_bytes()
#: The body limit of POST /v1/chat.
MAX_CHAT_BODY_BYTES = 256 * 1024
#: Room for multipart framing and form fields around the file.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
#: Characters per SSE ``delta`` event (whole words).
DELTA_CHARS = 24

_CHAT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatRequest.model_json_schema()}},
    }
}
_PDF_BYTES = {"type": "string", "format": "binary", "contentMediaType": "application/pdf"}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"file": _PDF_BYTES},
                    "required": ["file"],
                }
            },
            "application/pdf": {"schema": _PDF_BYTES},
            "application/octet-stream": {"schema": _PDF_BYTES},
        },
    },
    "parameters": [
        {
            "name": "name",
            "in": "query",
            "required": False,
            "description": "The file name of a raw (application/pdf) upload; default upload.pdf.",
            "schema": {"type": "string"},
        }
    ],
}
#: The events of an answer as SSE; ``meta`` is the answer's body without ``answer``.
_META = {
    **ChatResponse.model_json_schema(),
    "title": "ChatMeta",
    "properties": {
        k: v for k, v in ChatResponse.model_json_schema()["properties"].items() if k != "answer"
    },
    "required": [k for k in ChatResponse.model_json_schema()["required"] if k != "answer"],
}
_CHAT_EVENTS = sse.openapi_content(
    {"meta": _META, "delta": AnswerDelta, "done": ChatResponse, "error": Problem}
)


def document_question_limit(document: dict[str, Any], settings: ChatbotSettings) -> None:
    """The service's own limit (``CHATBOT_MAX_QUESTION_CHARS``) as the question's maxLength."""
    body = document["paths"]["/v1/chat"]["post"]["requestBody"]["content"]["application/json"]
    body["schema"]["properties"]["question"]["maxLength"] = settings.max_question_chars


def upload_body_limit(settings: ServiceSettings) -> int:
    """The body limit of POST /v1/documents, declared on the route (the layer applies it)."""
    assert isinstance(settings, ChatbotSettings)
    return settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES


def user_of(request: Request) -> str:
    """Who asks (kept with the conversation): the security layer's identity label (token
    subject, ``apikey:<id>``, or ``ip:<address>`` without authentication)."""
    identity = current_identity()
    if identity is not None:
        return identity.label
    return f"ip:{request.client.host}" if request.client else "unknown"


def count_errors(exc: ModelfleetError) -> None:
    metrics.ERRORS.labels(exc.type_slug).inc()


def _parse_chat(body: bytes) -> ChatRequest:
    try:
        return ChatRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        metrics.ERRORS.labels("validation").inc()
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from exc


def response_body(body: dict[str, Any]) -> dict[str, Any]:
    """An answer's body as :class:`ChatResponse` sends it (the SSE ``done`` event's data).

    Only the fields the answer has: a citation or retrieved chunk leaves out what it does not
    know (a product has no page), as the JSON response does (``response_model_exclude_unset``).
    """
    return ChatResponse.model_validate(body).model_dump(mode="json", exclude_unset=True)


def pieces(text: str, size: int = DELTA_CHARS) -> list[str]:
    """The answer cut into pieces of about ``size`` characters at spaces (joined: the text)."""
    out: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(candidate) > size and current:
            out.append(current + " ")
            current = word
        else:
            current = candidate
    if current:
        out.append(current)
    return out


async def _stream(body: dict[str, Any]) -> AsyncIterator[bytes]:
    """A finished answer as events: meta, its text in pieces, done."""
    done = response_body(body)
    yield sse.json_frame("meta", {k: v for k, v in done.items() if k != "answer"})
    for piece in pieces(done["answer"]):
        yield sse.json_frame("delta", {"text": piece})
    yield sse.json_frame("done", done)


async def _stream_pending(answerer: Answerer, pending: Pending, path: str) -> AsyncIterator[bytes]:
    """An LLM answer as the LLM writes it; a failure after the first event becomes an
    ``error`` event with the problem body (the status line is already sent). Closed at once
    when the client goes away (the answerer's stream with it: the generation is cancelled)."""
    try:
        async with contextlib.aclosing(answerer.stream(pending)) as events:
            async for event, data in events:
                yield sse.json_frame(event, response_body(data) if event == "done" else data)
    except ModelfleetError as exc:
        count_errors(exc)
        problem = {"type": PROBLEM_TYPE_BASE + exc.type_slug, "title": exc.title}
        yield sse.json_frame(
            "error", {**problem, "status": exc.status, "detail": exc.detail, "instance": path}
        )


def wants_stream(request: Request, parsed: ChatRequest) -> bool:
    return parsed.stream or "text/event-stream" in request.headers.get("accept", "")


@router.post(
    "/chat",
    response_model=ChatResponse,
    # a citation or chunk sends only what it knows (a product has no page): as the SSE events
    response_model_exclude_unset=True,
    summary="Answer a question with cited sources (JSON, or SSE when asked)",
    openapi_extra=_CHAT_BODY,
    dependencies=[require_scope("read", max_body_bytes=MAX_CHAT_BODY_BYTES)],
    responses={
        200: {
            "description": "The answer: JSON, or with `Accept: text/event-stream` or "
            '`"stream": true` Server-Sent Events (`meta`, `delta`..., `done`; an LLM failing '
            "mid-answer ends the stream with `error`)",
            "content": {sse.MEDIA_TYPE: _CHAT_EVENTS},
        },
        404: {"description": "Unknown conversation id"},
        415: {"description": "A content type other than JSON"},
        422: {"description": "Not JSON, a blank or too long question, invalid fields"},
        503: {"description": "Triton, Postgres or the LLM is unavailable (Retry-After)"},
        504: {"description": "A dependency missed its deadline"},
    },
)
async def chat(request: Request, state: StateDep) -> ChatResponse | Response:
    answerer = state.answerer
    user = user_of(request)
    metrics.QUESTIONS_BY_USER.labels(state.user_labels.label(user)).inc()
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise UnsupportedMediaType(f"content type {content_type!r}: send application/json")
    parsed = _parse_chat(await request.body())
    stream = wants_stream(request, parsed)
    try:
        plan = await answerer.plan(parsed, user=user)
        if isinstance(plan, Pending) and not stream:
            plan = await answerer.generate(plan)
    except ModelfleetError as exc:
        count_errors(exc)
        raise
    if not stream:
        assert not isinstance(plan, Pending)
        return ChatResponse.model_validate(plan)
    events = (
        _stream_pending(answerer, plan, request.url.path)
        if isinstance(plan, Pending)
        else _stream(plan)
    )
    return sse.event_stream(events)


async def _upload_payload(request: Request, settings: ChatbotSettings) -> tuple[str, bytes]:
    """(file name, bytes) of an upload; 413/415 before anything else is looked at."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise UnsupportedMediaType("send the PDF as the multipart field 'file'")
            data = await upload.read()
            name = upload.filename or "upload.pdf"
    elif content_type in ("application/pdf", "application/octet-stream"):
        data = await request.body()
        name = request.query_params.get("name") or "upload.pdf"
    else:
        raise UnsupportedMediaType(
            f"content type {content_type!r}: send multipart/form-data or application/pdf"
        )
    uploads.check_upload(data, settings.max_upload_bytes)
    return name.replace("\x00", ""), data


@router.post(
    "/documents",
    status_code=202,
    response_model=UploadAccepted,
    summary="Upload a PDF; it is ingested in the background (status URL in Location)",
    openapi_extra=_UPLOAD_BODY,
    dependencies=[require_scope("write", max_body_bytes=upload_body_limit)],
    responses={
        202: {
            "description": "Accepted: ingestion runs in the background",
            "headers": {
                "Location": {
                    "description": "The upload's status URL (/v1/documents/{id}).",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
        400: {"description": "A multipart body that cannot be parsed (or has too many parts)"},
        413: {"description": "Over CHATBOT_MAX_UPLOAD_BYTES"},
        415: {"description": "Not a PDF"},
        422: {"description": "Unreadable or encrypted PDF, or one without text"},
        503: {"description": "Postgres is unavailable (Retry-After)"},
    },
)
async def upload_document(request: Request, state: StateDep, response: Response) -> UploadAccepted:
    try:
        name, data = await _upload_payload(request, state.settings)
        parsed = await uploads.parse_upload(name, data)
        document_id, started = await state.ingestion.submit(parsed)
    except ModelfleetError as exc:
        metrics.UPLOADS.labels("rejected").inc()
        count_errors(exc)
        raise
    except BodyTooLarge:  # over the route's body limit while it was read: counted the same
        metrics.UPLOADS.labels("rejected").inc()
        metrics.ERRORS.labels(PayloadTooLarge.type_slug).inc()
        raise
    metrics.UPLOADS.labels("accepted").inc()
    status_url = f"/v1/documents/{document_id}"
    response.headers["Location"] = status_url
    return UploadAccepted(
        id=document_id,
        name=parsed.name,
        pages=parsed.page_count,
        status="processing" if started else "ready",
        status_url=status_url,
    )


@router.get(
    "/documents/{document_id}",
    response_model=DocumentStatus,
    summary="A document and its ingestion status: processing, ready or failed (with the error)",
    dependencies=[require_scope("read")],
    responses={404: {"description": "Unknown document id"}},
)
async def document_status(document_id: uuid.UUID, state: StateDep) -> DocumentStatus:
    document = await get_document(state.pool, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return DocumentStatus(
        id=document.id,
        source="documents" if document.source == "pdf" else "products",
        name=document.external_id,
        title=document.title,
        status=document.status,
        error=document.error,
        pages=document.page_count,
        chunks=document.chunk_count,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


#: The page's paths: public (static HTML, no data); its API calls carry the token typed into it.
PAGE_PATHS = ("/", "/chat")


@page_router.get(PAGE_PATHS[0], include_in_schema=False)
@page_router.get(PAGE_PATHS[1], include_in_schema=False)
async def page() -> HTMLResponse:
    """The chat web page (plain HTML + JS, served from the package)."""
    return HTMLResponse(PAGE)
