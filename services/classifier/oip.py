"""The classifier under the Open Inference Protocol v2: its tensors and their mapping to products.

The public model is the one the service serves (``CLASSIFIER_TRITON_MODEL``, ``classifier``); the
generic routes are :func:`services.common.oip.oip_router`. One row per product, each input
``[N]`` (or ``[N, 1]``) of BYTES, every input optional but a row needs one of them:

    title, description   text (JSON strings; binary elements UTF-8)
    image                the image file: base64 text in JSON (as /v1's JSON body), the raw
                         bytes in the binary extension; an empty element is no image

The request parameter ``top_k`` (1-50, default ``CLASSIFIER_DEFAULT_TOP_K``) is /v1's field.
Each row is ``POST /v1/classify`` itself (:func:`services.classifier.api.classify_product`): the
same checks (400 for what /v1 answers 422, 413 for an image over the limit, 415 for bytes that
are no image), the prediction row in Postgres, the metrics; the rows run one after the other and
every row is checked before the first runs. Outputs, one row per product: ``prediction_id``,
``category``, ``model_version`` BYTES and ``probability`` FP64 ``[N]``; ``top_categories`` BYTES
and ``top_probabilities`` FP64 ``[N, k]`` (k = top_k, fewer when the model has fewer categories).
``/versions/{v}/infer`` is served when ``v`` is the version Triton serves (its newest READY one):
the classifier serves one version at a time.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.classifier import api
from services.classifier.schemas import MAX_TOP_K, ClassifyRequest
from services.classifier.state import ClassifierState
from services.common.errors import DependencyError, InvalidInput, PayloadTooLarge
from services.common.oip import (
    InferenceRequest,
    Inferred,
    InputSpec,
    MetadataTensor,
    OipModel,
    Rows,
    bad_request,
    newest_ready_version,
    oip_router,
    output,
    parameter_int,
    text_of,
    unknown_version,
)

#: Products per request (each is one /v1/classify: a Triton call and a row in Postgres).
MAX_PRODUCTS = 32

INPUTS = (
    InputSpec("title", "bytes", "BYTES", required=False),
    InputSpec("description", "bytes", "BYTES", required=False),
    InputSpec("image", "bytes", "BYTES", required=False),
)
OUTPUTS = (
    MetadataTensor(name="prediction_id", datatype="BYTES", shape=[-1]),
    MetadataTensor(name="category", datatype="BYTES", shape=[-1]),
    MetadataTensor(name="probability", datatype="FP64", shape=[-1]),
    MetadataTensor(name="model_version", datatype="BYTES", shape=[-1]),
    MetadataTensor(name="top_categories", datatype="BYTES", shape=[-1, -1]),
    MetadataTensor(name="top_probabilities", datatype="FP64", shape=[-1, -1]),
)


def products_of(
    rows: Rows, *, top_k: int, max_image_bytes: int
) -> list[tuple[ClassifyRequest, bytes | None]]:
    """Each row as /v1/classify's body and image bytes; 400 naming the input and row."""
    products: list[tuple[ClassifyRequest, bytes | None]] = []
    for i in range(rows.count):
        fields: dict[str, Any] = {"top_k": top_k}
        for name in ("title", "description"):
            if name in rows.values:
                fields[name] = text_of(rows.values[name][i], name=name, row=i)
        image: bytes | None = None
        if "image" in rows.values:
            value = rows.values["image"][i]
            try:
                if isinstance(value, str):
                    image = api._decode_base64(value, max_bytes=max_image_bytes) if value else None
                else:
                    image = value or None
            except InvalidInput as exc:
                raise bad_request(f"input 'image' row {i}: {exc.detail}") from exc
            if image is not None and len(image) > max_image_bytes:
                raise PayloadTooLarge(
                    f"input 'image' row {i}: over the limit of {max_image_bytes} bytes"
                )
        try:
            body = ClassifyRequest.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise bad_request(f"input {where!r} row {i}: {first.get('msg')}") from exc
        if not body.title.strip() and not body.description.strip() and image is None:
            raise bad_request(f"row {i}: send a title, a description or an image")
        products.append((body, image))
    return products


async def served_versions(state: ClassifierState) -> list[str]:
    newest = await newest_ready_version(state.triton, state.predictor.model)
    return [newest] if newest is not None else []


class ClassifierOip(OipModel[ClassifierState]):
    """The service's model under /v2, answered by the /v1 classification path."""

    state_type = ClassifierState
    inputs = INPUTS
    outputs = OUTPUTS
    max_rows = MAX_PRODUCTS

    def name(self, state: ClassifierState) -> str:
        return state.predictor.model

    async def versions(self, state: ClassifierState) -> list[str]:
        return await served_versions(state)

    async def ready(self, state: ClassifierState, version: str) -> bool:
        if version:
            return await state.triton.model_ready(state.predictor.model, version)
        try:
            await state.predictor.ready()
        except DependencyError:
            return False
        return True

    async def infer(
        self, state: ClassifierState, request: InferenceRequest, rows: Rows, version: str
    ) -> Inferred:
        settings = state.settings
        top_k = parameter_int(
            request.parameters, "top_k", default=settings.default_top_k, low=1, high=MAX_TOP_K
        )
        products = products_of(rows, top_k=top_k, max_image_bytes=settings.max_image_bytes)
        if version:
            served = await served_versions(state)
            if version not in served:
                raise unknown_version(state.predictor.model, version, served)
        results: list[api.ClassificationBody] = []
        for body, image in products:
            results.append(
                await api.classify_product(
                    predictor=state.predictor,
                    predictions=state.predictions,
                    settings=settings,
                    body=body,
                    image=image,
                )
            )
        k = min(len(result["top_k"]) for result in results)
        return Inferred(
            model_version=results[0]["model"]["version"],
            outputs=[
                output("prediction_id", "BYTES", [r["prediction_id"] for r in results]),
                output("category", "BYTES", [r["category"] for r in results]),
                output("probability", "FP64", [r["probability"] for r in results]),
                output("model_version", "BYTES", [r["model"]["version"] for r in results]),
                output(
                    "top_categories",
                    "BYTES",
                    [s["category"] for r in results for s in r["top_k"][:k]],
                    shape=[len(results), k],
                ),
                output(
                    "top_probabilities",
                    "FP64",
                    [s["probability"] for r in results for s in r["top_k"][:k]],
                    shape=[len(results), k],
                ),
            ],
        )


router = oip_router(
    ClassifierOip(), tag="classifier: OIP v2", max_body_bytes=api.classify_body_limit
)
