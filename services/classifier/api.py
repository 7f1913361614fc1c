"""HTTP routes of the classifier: classify a product, label a prediction, list model versions.

``POST /v1/classify`` takes JSON (``ClassifyRequest``, image as base64) or a multipart upload
(form fields ``title``, ``description``, ``top_k`` and a file ``image``). Every input check runs
before anything is written: empty text and no image -> 422, an image over
``CLASSIFIER_MAX_IMAGE_BYTES`` (or a body that could only hold one: the route's body limit,
:func:`classify_body_limit`, applied by the security layer) -> 413, bytes that are no
image -> 415. A JSON body is served by the route's fast JSON door
(:meth:`~services.common.fastroute.ServiceRouter.json_fast_path`, before FastAPI), a multipart
upload by the FastAPI route, both through :func:`classify_product`. The prediction row is
written behind the answer (:class:`~services.common.buffered_writer.BufferedCopyWriter`, a COPY
every ``CLASSIFIER_PREDICTION_FLUSH_INTERVAL_S``); its id is a UUIDv7
(:mod:`services.classifier.prediction_ids`), so ``POST /v1/feedback`` on a recent id whose row is
not written yet waits for it (re-reading every flush interval, up to
``CLASSIFIER_FEEDBACK_WAIT_S``) instead of answering 404; an old or foreign id is a 404 at
once. Feedback stores the label in one statement, then recomputes the rolling quality gauges of
that model version from Postgres.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TypedDict

import asyncpg
import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from services.classifier import estimated_quality, metrics
from services.classifier.prediction_ids import made_at, new_prediction_id
from services.classifier.predictor import CategoryPredictor, product_features
from services.classifier.quality import quality
from services.classifier.schemas import (
    MAX_TOP_K,
    Classification,
    ClassifyRequest,
    Feedback,
    FeedbackRequest,
    ModelRef,
    something_to_classify,
)
from services.classifier.settings import ClassifierSettings
from services.classifier.state import ClassifierState, StateDep
from services.common.buffered_writer import BufferedCopyWriter
from services.common.db import database_errors
from services.common.errors import (
    DependencyError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TritonUnavailable,
    UnsupportedMediaType,
)
from services.common.fastroute import ServiceRouter
from services.common.logging import request_id_var
from services.common.model_versions import add_models_route
from services.common.pgtext import BLANK, NO_NUL_PATTERN
from services.common.security import require_scope
from services.common.settings import ServiceSettings
from services.domain.catalog import features

log = logging.getLogger(__name__)

router = ServiceRouter(prefix="/v1", tags=["classifier"])

#: The columns of a prediction row, in the order :func:`classify_product` queues them.
PREDICTION_COLUMNS = (
    "prediction_id",
    "created_at",
    "request_id",
    "model_name",
    "model_version",
    "title",
    "description",
    "has_image",
    "category",
    "probability",
    "top_k",
)


class CategoryScoreBody(TypedDict):
    """:class:`~services.classifier.schemas.CategoryScore` as the handlers build it."""

    category: str
    probability: float


class ModelRefBody(TypedDict):
    """:class:`~services.classifier.schemas.ModelRef` as the handlers build it."""

    name: str
    version: str


class ClassificationBody(TypedDict):
    """:class:`~services.classifier.schemas.Classification` as the handlers build it."""

    prediction_id: str
    category: str
    probability: float
    top_k: list[CategoryScoreBody]
    model: ModelRefBody


#: Room for the text fields and form framing on top of the image in a request body.
BODY_OVERHEAD_BYTES = 64 * 1024

_CLASSIFY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ClassifyRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "title": {"type": "string", "maxLength": 10_000, "pattern": NO_NUL_PATTERN},
                        "description": {
                            "type": "string",
                            "maxLength": 10_000,
                            "pattern": NO_NUL_PATTERN,
                        },
                        "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K},
                        "image": {"type": "string", "format": "binary"},
                    },
                    "anyOf": something_to_classify({"type": "string", "format": "binary"}),
                }
            },
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A multipart body that cannot be parsed (or has too many parts)"},
    413: {"description": "Image (or body) over the size limit"},
    415: {"description": "Not an image, or a body that is neither JSON nor multipart"},
    422: {"description": "No text and no image, or invalid fields (problem+json)"},
    503: {"description": "Triton, the model or Postgres is unavailable (Retry-After)"},
    504: {"description": "A dependency missed its deadline"},
}


_FORM_FIELDS = frozenset({"title", "description", "top_k", "image"})


def _form_integer(text: str) -> int | str:
    """A form field's integer (``3``, ``3.0``), else the text (which the model refuses)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and text.strip() == text else text


def _max_body(settings: ClassifierSettings) -> int:
    """The largest body that can hold an image of ``CLASSIFIER_MAX_IMAGE_BYTES`` (base64)."""
    return settings.max_image_bytes * 4 // 3 + 4 + BODY_OVERHEAD_BYTES


def classify_body_limit(settings: ServiceSettings) -> int:
    """The body limit of POST /v1/classify, declared on the route (the layer applies it)."""
    assert isinstance(settings, ClassifierSettings)
    return _max_body(settings)


def _decode_base64(text: str, *, max_bytes: int) -> bytes:
    """Image bytes from base64 (standard or URL-safe, optional ``data:`` prefix)."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    text = "".join(text.split())
    if len(text) * 3 // 4 > max_bytes + 2:
        raise PayloadTooLarge(f"image is over the limit of {max_bytes} bytes")
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            "image is not valid base64",
            extra={
                "errors": [{"field": "image", "in": "body", "message": str(exc), "type": "base64"}]
            },
        ) from exc


async def _parse_classify(
    request: Request, settings: ClassifierSettings
) -> tuple[ClassifyRequest, bytes | None]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", ""):
        body = await request.body()
        try:
            parsed = ClassifyRequest.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from exc
        image = (
            _decode_base64(parsed.image, max_bytes=settings.max_image_bytes)
            if parsed.image
            else None
        )
        return parsed, image
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            unknown = sorted(set(form.keys()) - _FORM_FIELDS)
            if unknown:
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body", name),
                            "msg": "Extra inputs are not permitted",
                            "type": "extra_forbidden",
                        }  # fmt: skip
                        for name in unknown
                    ]
                )
            fields: dict[str, Any] = {}
            for name in ("title", "description", "top_k"):
                value = form.get(name)
                if isinstance(value, str) and value != "":
                    fields[name] = value
            if "top_k" in fields:  # a form's integer is text (the model is strict)
                fields["top_k"] = _form_integer(fields["top_k"])
            upload = form.get("image")
            image = None
            if isinstance(upload, str):
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body", "image"),
                            "msg": "send the image as a file part",
                            "type": "file_expected",
                        }
                    ]  # fmt: skip
                )
            if isinstance(upload, UploadFile):
                image = await upload.read(settings.max_image_bytes + 1)
                if len(image) > settings.max_image_bytes:
                    raise PayloadTooLarge(
                        f"image is over the limit of {settings.max_image_bytes} bytes"
                    )
                if not image:  # a file part without bytes holds no image
                    raise UnsupportedMediaType("image is empty: send the file's bytes")
            try:
                parsed = ClassifyRequest.model_validate(fields)
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                ) from exc
            return parsed, image
    raise UnsupportedMediaType(
        f"content type {content_type!r}: send application/json or multipart/form-data"
    )


async def classify_product(
    *,
    predictor: CategoryPredictor,
    predictions: BufferedCopyWriter,
    settings: ClassifierSettings,
    body: ClassifyRequest,
    image: bytes | None,
) -> ClassificationBody:
    """Validate, featurise, infer, queue the row; the response body of POST /v1/classify."""
    title, description = body.title.strip(BLANK), body.description.strip(BLANK)
    if not title and not description and image is None:
        raise InvalidInput(
            "send a title, a description or an image",
            extra={
                "errors": [{"field": "title", "in": "body", "message": "empty", "type": "missing"}]
            },
        )
    if image is not None and len(image) > settings.max_image_bytes:
        raise PayloadTooLarge(f"image is over the limit of {settings.max_image_bytes} bytes")
    try:
        x = await product_features(title=title, description=description, image=image)
    except features.ImageTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from exc
    except features.NotAnImage as exc:
        raise UnsupportedMediaType(
            "image is not a decodable image (JPEG, PNG, WebP, GIF ...)"
        ) from exc
    top_k = body.top_k or settings.default_top_k
    previous = predictor.latest_version
    scores = await predictor.classify(x, top_k=top_k)
    if previous is not None and previous != scores.model_version:
        metrics.forget_version(predictor.model, previous)
    prediction_id = new_prediction_id()
    top: list[CategoryScoreBody] = [
        {"category": c, "probability": p}
        for c, p in zip(scores.categories, scores.probabilities, strict=True)
    ]
    category, probability = scores.categories[0], scores.probabilities[0]
    predictions.add(
        (
            prediction_id,
            datetime.now(UTC),
            request_id_var.get(),
            predictor.model,
            scores.model_version,
            title,
            description,
            image is not None,
            category,
            probability,
            orjson.dumps(top).decode(),
        )
    )
    estimated_quality.record(predictor.model, scores, prediction_id, settings)
    metrics.PREDICTIONS.labels(predictor.model, scores.model_version, category).inc()
    metrics.CONFIDENCE.labels(predictor.model, scores.model_version).observe(probability)
    return {
        "prediction_id": str(prediction_id),
        "category": category,
        "probability": probability,
        "top_k": top,
        "model": {"name": predictor.model, "version": scores.model_version},
    }


@router.post(
    "/classify",
    response_model=Classification,
    summary="Top-k categories of a product from its title, description and/or image",
    responses=_ERRORS,
    openapi_extra=_CLASSIFY_BODY,
    dependencies=[require_scope("read", max_body_bytes=classify_body_limit)],
)
async def classify(request: Request, state: StateDep) -> ClassificationBody:
    body, image = await _parse_classify(request, state.settings)
    return await classify_product(
        predictor=state.predictor,
        predictions=state.predictions,
        settings=state.settings,
        body=body,
        image=image,
    )


@router.json_fast_path(
    "POST", "/classify", body=ClassifyRequest, scope="read", max_body_bytes=classify_body_limit
)
async def classify_json(state: ClassifierState, body: ClassifyRequest) -> ClassificationBody:
    """POST /v1/classify with a JSON body, served before FastAPI (the operation above)."""
    settings = state.settings
    image = _decode_base64(body.image, max_bytes=settings.max_image_bytes) if body.image else None
    return await classify_product(
        predictor=state.predictor,
        predictions=state.predictions,
        settings=settings,
        body=body,
        image=image,
    )


async def _prediction_row(
    pool: asyncpg.Pool, prediction_id: uuid.UUID, *, settings: ClassifierSettings
) -> asyncpg.Record | None:
    async with database_errors("find_prediction"):
        row: asyncpg.Record | None = await pool.fetchrow(
            "select model_name, model_version, category, created_at"
            " from classifier_predictions where prediction_id = $1",
            prediction_id,
            timeout=settings.database_timeout_s,
        )
    return row


async def find_prediction(
    pool: asyncpg.Pool, prediction_id: uuid.UUID, *, settings: ClassifierSettings
) -> asyncpg.Record | None:
    """The prediction's row; for a recent id not written yet, the row once it is written.

    The row is written behind the answer (any replica's writer, a COPY every flush interval):
    feedback on an id made less than ``CLASSIFIER_FEEDBACK_WAIT_S`` ago re-reads it every
    flush interval until then; an older id, or one this service never makes (not a UUIDv7),
    is looked up once. None: no such prediction.
    """
    row = await _prediction_row(pool, prediction_id, settings=settings)
    made = made_at(prediction_id)
    if row is not None or made is None:
        return row
    until = made + settings.feedback_wait_s
    if time.time() >= until or made > time.time() + settings.feedback_wait_s:
        return None
    while row is None and (left := until - time.time()) > 0:
        await asyncio.sleep(min(settings.prediction_flush_interval_s, left))
        row = await _prediction_row(pool, prediction_id, settings=settings)
    metrics.FEEDBACK_WAITS.labels("found" if row is not None else "missing").inc()
    return row


async def refresh_quality(
    pool: asyncpg.Pool,
    *,
    model: str,
    version: str,
    settings: ClassifierSettings,
    serving: str | None = None,
) -> None:
    """Recompute the rolling gauges of one model version from its last N labelled predictions.

    A failure is logged and leaves the gauges as they were (the feedback itself is stored).
    ``serving``: the version now serving, when known; labels of other versions are stored but
    their gauges are not brought back.
    """
    if serving is not None and version != serving:
        return
    try:
        async with database_errors("rolling_quality"):
            rows = await pool.fetch(
                "select p.category, f.true_category from classifier_feedback f"
                " join classifier_predictions p using (prediction_id)"
                " where p.model_name = $1 and p.model_version = $2"
                " order by f.updated_at desc limit $3",
                model,
                version,
                settings.quality_window,
                timeout=settings.database_timeout_s,
            )
    except DependencyError as exc:
        log.warning("rolling quality not refreshed: %s", exc.detail)
        return
    result = quality([r["category"] for r in rows], [r["true_category"] for r in rows])
    metrics.ROLLING_MACRO_F1.labels(model, version).set(result.macro_f1)
    metrics.ROLLING_ACCURACY.labels(model, version).set(result.accuracy)
    metrics.ROLLING_LABELS.labels(model, version).set(result.labels)


async def refresh_recent_versions(pool: asyncpg.Pool, *, settings: ClassifierSettings) -> None:
    """At start-up: gauges of every model version labelled recently (so /metrics is complete)."""
    try:
        async with database_errors("recent_versions"):
            rows = await pool.fetch(
                "select distinct p.model_name, p.model_version from"
                " (select prediction_id from classifier_feedback order by updated_at desc"
                "  limit $1) f join classifier_predictions p using (prediction_id)",
                settings.quality_window * 10,
                timeout=settings.database_timeout_s,
            )
    except DependencyError as exc:
        log.warning("rolling quality not loaded at start: %s", exc.detail)
        return
    for row in rows:
        await refresh_quality(
            pool, model=row["model_name"], version=row["model_version"], settings=settings
        )


@router.post(
    "/feedback",
    response_model=Feedback,
    summary="The true category of a prediction (a repeat replaces the label)",
    responses={
        404: {"description": "Unknown prediction id"},
        422: {"description": "Unknown category or invalid fields"},
        503: {"description": "Postgres is unavailable (Retry-After)"},
    },
    dependencies=[require_scope("write")],
)
async def feedback(body: FeedbackRequest, state: StateDep) -> Feedback:
    settings, pool, predictor = state.settings, state.pool, state.predictor
    row = await find_prediction(pool, body.prediction_id, settings=settings)
    if row is None:
        raise NotFound(f"no prediction {body.prediction_id}")
    model, version = str(row["model_name"]), str(row["model_version"])
    try:
        known = await predictor.known_categories(version)
    except TritonUnavailable:
        known = set()
    if known and body.true_category not in known:
        raise InvalidInput(
            f"unknown category {body.true_category!r}",
            extra={
                "errors": [
                    {
                        "field": "true_category",
                        "in": "body",
                        "message": "unknown category",
                        "type": "unknown_category",
                    }
                ]
            },
        )
    if not known:
        raise TritonUnavailable("the category list of the model is not available now")
    async with database_errors("insert_feedback"):
        first = await pool.fetchval(
            "insert into classifier_feedback (prediction_id, true_category, request_id)"
            " values ($1, $2, $3) on conflict (prediction_id) do update"
            " set true_category = excluded.true_category, updated_at = now(),"
            " request_id = excluded.request_id"
            " returning (xmax = 0)",
            body.prediction_id,
            body.true_category,
            request_id_var.get(),
            timeout=settings.database_timeout_s,
        )
    estimated_quality.labelled(model, version, body.prediction_id)
    correct = body.true_category == row["category"]
    metrics.FEEDBACK.labels(model, version, "correct" if correct else "incorrect").inc()
    if first:
        lag = (datetime.now(UTC) - row["created_at"]).total_seconds()
        metrics.FEEDBACK_LAG.labels(model, version).observe(max(lag, 0.0))
    await refresh_quality(
        pool, model=model, version=version, settings=settings, serving=predictor.latest_version
    )
    return Feedback(
        prediction_id=body.prediction_id,
        true_category=body.true_category,
        correct=correct,
        model=ModelRef(name=model, version=version),
    )


add_models_route(router, model_of=lambda state: state.predictor.model)
