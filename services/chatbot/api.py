"""HTTP routes of the chatbot: ask (JSON or SSE), upload a PDF, follow its ingestion, the page.

``POST /v1/chat`` answers a :class:`ChatRequest`; with ``Accept: text/event-stream`` or
``"stream": true`` the answer comes as Server-Sent Events: ``meta`` (conversation id, how it was
answered, citations, retrieved chunks and scores), ``delta`` events with the answer's text in
pieces (as the LLM writes it in the LLM modes), and ``done`` with the whole response body.
Errors found before the first event (bad input, a dependency down) are ordinary problem+json
responses; an LLM failing mid-answer ends the stream with an ``error`` event (problem body).

``POST /v1/documents`` takes a PDF as ``multipart/form-data`` (field ``file``) or as a raw
``application/pdf`` body (name in ``?name=``). Everything is checked before anything is stored:
over ``CHATBOT_MAX_UPLOAD_BYTES`` -> 413, not a PDF -> 415, unreadable, encrypted or without
text -> 422. Then 202 with the upload's status URL, and ingestion runs in the background
(:mod:`services.chatbot.uploads`). ``GET /v1/documents/{id}`` shows the document and its
status (``processing``, ``ready``, ``failed`` with the error).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse, Response, StreamingResponse

from services.chatbot import metrics, uploads
from services.chatbot.answer import Answerer, Pending
from services.chatbot.schemas import ChatRequest, ChatResponse, DocumentStatus, UploadAccepted
from services.chatbot.settings import ChatbotSettings
from services.chatbot.uploads import Ingestion
from services.common.deps import PoolDep
from services.common.errors import (
    PROBLEM_TYPE_BASE,
    ModelfleetError,
    NotFound,
    UnsupportedMediaType,
)
from services.common.fastroute import JsonResponse
from services.common.request_body import read_body
from services.common.security import current_identity, require_scope
from services.domain.documents.store import get_document

router = APIRouter(prefix="/v1", tags=["chatbot"])
page_router = APIRouter(tags=["page"])

PAGE = (Path(__file__).parent / "static" / "index.html").read_bytes()
MAX_CHAT_BODY_BYTES = 256 * 1024
#: Room for multipart framing and form fields around the file.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
#: Body limit the security layer applies to POST /v1/documents.
UPLOAD_BODY_CEILING_BYTES = 64 * 1024 * 1024
#: Characters per SSE ``delta`` event (whole words).
DELTA_CHARS = 24

_CHAT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatRequest.model_json_schema()}},
    }
}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _settings(request: Request) -> ChatbotSettings:
    settings: ChatbotSettings = request.app.state.settings
    return settings


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


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


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
    yield _sse("meta", {k: v for k, v in body.items() if k != "answer"})
    for piece in pieces(body["answer"]):
        yield _sse("delta", {"text": piece})
    yield _sse("done", body)


async def _stream_pending(answerer: Answerer, pending: Pending, path: str) -> AsyncIterator[bytes]:
    """An LLM answer as the LLM writes it; a failure after the first event becomes an
    ``error`` event with the problem body (the status line is already sent)."""
    try:
        async for event, data in answerer.stream(pending):
            yield _sse(event, data)
    except ModelfleetError as exc:
        count_errors(exc)
        problem = {"type": PROBLEM_TYPE_BASE + exc.type_slug, "title": exc.title}
        yield _sse(
            "error", {**problem, "status": exc.status, "detail": exc.detail, "instance": path}
        )


def wants_stream(request: Request, parsed: ChatRequest) -> bool:
    return parsed.stream or "text/event-stream" in request.headers.get("accept", "")


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="Answer a question with cited sources (JSON, or SSE when asked)",
    openapi_extra=_CHAT_BODY,
    dependencies=[require_scope("read")],
    responses={
        200: {"content": {"text/event-stream": {}}},
        404: {"description": "Unknown conversation id"},
        422: {"description": "Blank or too long question, invalid fields (problem+json)"},
        503: {"description": "Triton, Postgres or the LLM is unavailable (Retry-After)"},
        504: {"description": "A dependency missed its deadline"},
    },
)
async def chat(request: Request) -> Response:
    answerer: Answerer = request.app.state.answerer
    user = user_of(request)
    metrics.QUESTIONS_BY_USER.labels(request.app.state.user_labels.label(user)).inc()
    parsed = _parse_chat(await read_body(request, MAX_CHAT_BODY_BYTES))
    stream = wants_stream(request, parsed)
    try:
        plan = await answerer.plan(parsed, user=user)
        if isinstance(plan, Pending) and not stream:
            assert answerer.generator is not None
            plan = await answerer.finish(plan, await answerer.generator.generate(plan.prompt))
    except ModelfleetError as exc:
        count_errors(exc)
        raise
    if not stream:
        assert not isinstance(plan, Pending)
        return JsonResponse(plan)
    events = (
        _stream_pending(answerer, plan, request.url.path)
        if isinstance(plan, Pending)
        else _stream(plan)
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _upload_payload(request: Request, settings: ChatbotSettings) -> tuple[str, bytes]:
    """(file name, bytes) of an upload; 413/415 before anything else is looked at."""
    limit = settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        await read_body(request, limit)
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise UnsupportedMediaType("send the PDF as the multipart field 'file'")
            data = await upload.read()
            name = upload.filename or "upload.pdf"
    elif content_type in ("application/pdf", "application/octet-stream"):
        data = await read_body(request, limit)
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
    # the layer's ceiling; CHATBOT_MAX_UPLOAD_BYTES is checked inside (413 either way)
    dependencies=[require_scope("write", max_body_bytes=UPLOAD_BODY_CEILING_BYTES)],
    responses={
        413: {"description": "Over CHATBOT_MAX_UPLOAD_BYTES"},
        415: {"description": "Not a PDF"},
        422: {"description": "Unreadable or encrypted PDF, or one without text"},
        503: {"description": "Postgres is unavailable (Retry-After)"},
    },
)
async def upload_document(request: Request) -> JsonResponse:
    settings = _settings(request)
    ingestion: Ingestion = request.app.state.ingestion
    try:
        name, data = await _upload_payload(request, settings)
        parsed = await uploads.parse_upload(name, data)
        document_id, started = await ingestion.submit(parsed)
    except ModelfleetError as exc:
        metrics.UPLOADS.labels("rejected").inc()
        count_errors(exc)
        raise
    metrics.UPLOADS.labels("accepted").inc()
    status_url = f"/v1/documents/{document_id}"
    return JsonResponse(
        {
            "id": str(document_id),
            "name": parsed.name,
            "pages": parsed.page_count,
            "status": "processing" if started else "ready",
            "status_url": status_url,
        },
        status_code=202,
        headers={"Location": status_url},
    )


@router.get(
    "/documents/{document_id}",
    response_model=DocumentStatus,
    summary="A document and its ingestion status: processing, ready or failed (with the error)",
    dependencies=[require_scope("read")],
    responses={404: {"description": "Unknown document id"}},
)
async def document_status(document_id: uuid.UUID, pool: PoolDep) -> JsonResponse:
    document = await get_document(pool, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return JsonResponse(
        {
            "id": str(document.id),
            "source": "documents" if document.source == "pdf" else "products",
            "name": document.external_id,
            "title": document.title,
            "status": document.status,
            "error": document.error,
            "pages": document.page_count,
            "chunks": document.chunk_count,
            "created_at": document.created_at,
            "updated_at": document.updated_at,
        }
    )


#: The page's paths: public (static HTML, no data); its API calls carry the token typed into it.
PAGE_PATHS = ("/", "/chat")


@page_router.get(PAGE_PATHS[0], include_in_schema=False)
@page_router.get(PAGE_PATHS[1], include_in_schema=False)
async def page() -> HTMLResponse:
    """The chat web page (plain HTML + JS, served from the package)."""
    return HTMLResponse(PAGE)
