"""The Open Inference Protocol v2 (KServe v2, Triton's HTTP API) on a model service: the generic
pieces, written once for every model service that speaks it.

The protocol: https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
(its OpenAPI: specification/protocol/open_inference_rest.yaml of the same repository). A service
gives an :class:`OipModel` (its public model: the tensors it takes and answers, the versions a
client may ask for, readiness, and inference mapped onto its /v1 path) and includes the routes:

    router = oip_router(RideDurationOip(), tag="ride-duration: v2", max_body_bytes=4 << 20)

    GET  /v2/health/live, /v2/health/ready (as /readyz decides), /v2 (server metadata)
    GET  /v2/models/{name}[/versions/{v}]          model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready    model readiness
    POST /v2/models/{name}[/versions/{v}]/infer    inference

Every route is a FastAPI route declared with :func:`~services.common.security.require_scope`, so
the security layer applies its policy (authentication, rate limit, scope, body limit, deadline)
as to every other route; the layer's own refusals (401, 403, 429, and a 504 for the request
deadline) stay problem+json, every answer of a route itself is the protocol's: the model or
``{"error": "..."}`` (:class:`ErrorBody`). Input errors are 400 (a pydantic 422 of the domain
becomes a 400 here), an unknown model or version 404, a body over the limit 413, a content type
other than JSON 415; dependencies answer as on /v1 (502, 503 + Retry-After, 504).

Tensors are JSON (``data``), or binary as Triton's binary tensor data extension sends them (the
default of ``tritonclient.http``): the JSON header is the first ``Inference-Header-Content-Length``
bytes of the body, each binary input names its ``binary_data_size`` and its bytes follow in
input order. Outputs are always JSON ``data`` (a ``binary_data`` request is answered in JSON,
which every client reads). :func:`read_rows` checks each input (name, datatype, ``shape`` against
the number of elements, element types) and gives one value per row to the service's mapping.
"""

from __future__ import annotations

import logging
import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypedDict, TypeVar

import numpy as np
import orjson
from fastapi import Request
from pydantic import BaseModel, Field, StrictInt, ValidationError
from starlette.responses import JSONResponse, Response

from services.common import health
from services.common.errors import (
    PROBLEM_JSON,
    DependencyError,
    InvalidInput,
    ModelfleetError,
)
from services.common.fastroute import FastPathRoute, ServiceRouter
from services.common.request_body import BodyTooLarge
from services.common.security import require_scope
from services.common.security.guard import BodyLimit
from services.common.state import ServiceState, state_of
from services.common.triton import TritonClient

log = logging.getLogger(__name__)

SPEC_URL = (
    "https://github.com/kserve/open-inference-protocol/blob/main/"
    "specification/protocol/inference_rest.md"
)
#: The header of Triton's binary tensor data extension: the length of the JSON part.
HEADER_LENGTH = "inference-header-content-length"

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
#: Little-endian numpy types of the fixed-size datatypes (the binary extension's layout).
NUMPY_TYPES: dict[str, str] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
INTEGER_TYPES = frozenset(
    {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
)
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
Kind = Literal["int", "float", "bytes", "bool"]
#: The datatypes an input of each kind accepts (its metadata names the first one it lists).
ACCEPTED: dict[str, frozenset[str]] = {
    "int": INTEGER_TYPES,
    "float": FLOAT_TYPES,
    "bytes": frozenset({"BYTES"}),
    "bool": frozenset({"BOOL"}),
}

Parameters = dict[str, Any]


# -- the protocol's JSON objects ----------------------------------------------------------------
class ServerLive(BaseModel):
    """``$live_server_response``."""

    live: bool


class ServerReady(BaseModel):
    """``$ready_server_response`` (the spec's example names the field ``live``; KServe and this
    service answer ``ready``)."""

    ready: bool


class ServerMetadata(BaseModel):
    """``$metadata_server_response``."""

    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    """``$metadata_tensor``: ``-1`` is a variable-size dimension."""

    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    """``$metadata_model_response``."""

    name: str
    versions: list[str] = Field(description="The versions a client may ask for by version.")
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ModelReady(BaseModel):
    """``$ready_model_response``."""

    name: str
    ready: bool


class RequestInput(BaseModel):
    """``$request_input``: ``data`` is absent when the tensor's bytes follow the JSON (binary)."""

    name: str
    shape: list[StrictInt] = Field(description="Each dimension >= 0.")
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = Field(
        default=None,
        description="Row-major elements, flat or nested; absent for a binary input "
        "(`parameters.binary_data_size`).",
    )


class RequestOutput(BaseModel):
    """``$request_output``."""

    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    """``$inference_request``."""

    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """``$response_output``."""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any]


class InferenceResponse(BaseModel):
    """``$inference_response``."""

    model_name: str
    model_version: str | None = None
    id: str | None = Field(default=None, description="The request's `id`, when it gave one.")
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class ErrorBody(BaseModel):
    """``$inference_error_response`` (and the metadata error objects): every error a /v2 route
    answers itself."""

    error: str


class ResponseOutputBody(TypedDict):
    """:class:`ResponseOutput` as the handlers build it (no second validation)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class OipJsonResponse(JSONResponse):
    """JSON written with orjson; a JSONResponse, so FastAPI documents the response model."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# -- errors -----------------------------------------------------------------------------------
class OipError(Exception):
    """A /v2 answer other than 200: ``{"error": message}`` with ``status`` (and headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> OipError:
    return OipError(400, message)


def unknown_model(name: str, served: str) -> OipError:
    return OipError(404, f"unknown model {name!r}: this service serves {served!r}")


def unknown_version(name: str, version: str, served: Sequence[str]) -> OipError:
    listed = ", ".join(served) or "none now"
    return OipError(404, f"model {name!r} has no served version {version!r} (served: {listed})")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The protocol's error body: ``{"error": message}`` (application/json)."""
    return OipJsonResponse({"error": message}, status_code=status, headers=headers or None)


def oip_error_of(exc: ModelfleetError) -> OipError:
    """An error of the /v1 machinery as the protocol answers it: input errors are 400."""
    status = 400 if isinstance(exc, InvalidInput) else exc.status
    headers = dict(exc.headers)
    if isinstance(exc, DependencyError) and exc.status == 503:
        headers["Retry-After"] = str(exc.retry_after_s)
    message = exc.detail
    errors = exc.extra.get("errors")
    if isinstance(errors, list) and errors:
        fields = "; ".join(
            f"{e.get('field', '?')}: {e.get('message', 'invalid')}"
            for e in errors
            if isinstance(e, dict)
        )
        message = f"{message} ({fields})" if fields else message
    return OipError(status, message, headers)


async def answer(call: Callable[[], Awaitable[Response]]) -> Response:
    """Run one /v2 handler; every error it meets becomes the protocol's error body."""
    try:
        return await call()
    except OipError as exc:
        error = exc
    except BodyTooLarge as exc:
        error = OipError(413, str(exc.detail))
    except ModelfleetError as exc:
        error = oip_error_of(exc)
    if error.status >= 500:
        log.warning("v2 request failed: %s", error.message, extra={"status": error.status})
    return error_response(error.status, error.message, error.headers)


# -- request bodies and tensors -----------------------------------------------------------------
def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "(body)"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid inference request: " + "; ".join(parts)


def _bytes_elements(raw: bytes, name: str) -> list[bytes]:
    """BYTES elements of the binary layout: each a 4-byte little-endian length and the bytes."""
    out: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise bad_request(f"input {name!r}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise bad_request(f"input {name!r}: a BYTES element runs past its binary data")
        out.append(raw[offset : offset + length])
        offset += length
    return out


def _binary_values(tensor: RequestInput, raw: bytes) -> list[Any]:
    if tensor.datatype == "BYTES":
        return _bytes_elements(raw, tensor.name)
    dtype = np.dtype(NUMPY_TYPES[tensor.datatype])
    if len(raw) % dtype.itemsize:
        raise bad_request(
            f"input {tensor.name!r}: {len(raw)} bytes of binary data are not a whole number "
            f"of {tensor.datatype} elements"
        )
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def parse_inference_request(body: bytes, *, header_length: str | None) -> InferenceRequest:
    """The inference request of a body: JSON, or JSON then binary tensors (the extension).

    A binary input's values are put in its ``data`` (BYTES elements as ``bytes``).
    """
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise bad_request(
                f"Inference-Header-Content-Length {header_length!r} is not a length within "
                f"the body of {len(body)} bytes"
            )
        split = int(header_length)
        body, binary = body[:split], body[split:]
    try:
        request = InferenceRequest.model_validate_json(body or b"null")
    except ValidationError as exc:
        raise bad_request(_validation_message(exc)) from exc
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad_request(f"input {tensor.name!r}: binary_data_size must be a byte count")
        if tensor.data is not None:
            raise bad_request(f"input {tensor.name!r}: both data and binary_data_size")
        if offset + size > len(binary):
            raise bad_request(
                f"input {tensor.name!r}: binary_data_size {size} runs past the body's "
                f"{len(binary)} bytes of binary data"
            )
        tensor.data = _binary_values(tensor, binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise bad_request(f"{len(binary) - offset} bytes of binary data belong to no input")
    return request


def _flatten(data: list[Any]) -> Iterator[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    name: (int(np.iinfo(NUMPY_TYPES[name]).min), int(np.iinfo(NUMPY_TYPES[name]).max))
    for name in INTEGER_TYPES
}


def _element_error(datatype: str, value: Any) -> str | None:
    """Why ``value`` is no element of ``datatype`` (None: it is one)."""
    if datatype == "BYTES":
        return None if isinstance(value, str | bytes) else "is not a string"
    if datatype == "BOOL":
        return None if isinstance(value, bool) else "is not a boolean"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is not a number"
    if datatype in FLOAT_TYPES:
        return None if math.isfinite(value) else "is not a finite number"
    if not isinstance(value, int):
        return "is not an integer"
    low, high = _INTEGER_RANGES[datatype]
    return None if low <= value <= high else f"is out of the range of {datatype}"


def tensor_values(tensor: RequestInput) -> list[Any]:
    """The elements of one input tensor, flat in row-major order, checked against its shape and
    datatype (400 naming the input otherwise)."""
    if tensor.data is None:
        raise bad_request(f"input {tensor.name!r} has no data")
    if any(d < 0 for d in tensor.shape):
        raise bad_request(f"input {tensor.name!r}: shape {tensor.shape} has a negative dimension")
    values = list(_flatten(tensor.data))
    expected = math.prod(tensor.shape)
    if len(values) != expected:
        raise bad_request(
            f"input {tensor.name!r}: shape {tensor.shape} holds {expected} element(s), "
            f"data has {len(values)}"
        )
    for index, value in enumerate(values):
        why = _element_error(tensor.datatype, value)
        if why is not None:
            raise bad_request(
                f"input {tensor.name!r}: element {index} ({value!r}) {why} ({tensor.datatype})"
            )
    return values


@dataclass(frozen=True)
class InputSpec:
    """One input a model takes: one value per row (shape ``[N]`` or ``[N, 1]``)."""

    name: str
    kind: Kind
    datatype: Datatype
    required: bool = True

    def metadata(self) -> MetadataTensor:
        return MetadataTensor(name=self.name, datatype=self.datatype, shape=[-1])


@dataclass(frozen=True)
class Rows:
    """The inputs of a request, one value per row: ``values[name][i]`` (given inputs only)."""

    count: int
    values: dict[str, list[Any]]


def read_rows(request: InferenceRequest, specs: Sequence[InputSpec], *, max_rows: int) -> Rows:
    """Check the request's inputs against ``specs`` and give one value per row for each."""
    known = {spec.name: spec for spec in specs}
    values: dict[str, list[Any]] = {}
    count: int | None = None
    for tensor in request.inputs:
        spec = known.get(tensor.name)
        if spec is None:
            raise bad_request(f"unknown input {tensor.name!r}: the model takes {', '.join(known)}")
        if tensor.name in values:
            raise bad_request(f"input {tensor.name!r} is given twice")
        if tensor.datatype not in ACCEPTED[spec.kind]:
            raise bad_request(
                f"input {tensor.name!r} is {spec.datatype}"
                + (
                    f" (or {', '.join(sorted(ACCEPTED[spec.kind] - {spec.datatype}))})"
                    if len(ACCEPTED[spec.kind]) > 1
                    else ""
                )
                + f", not {tensor.datatype}"
            )
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise bad_request(
                f"input {tensor.name!r}: shape {tensor.shape}: one value per row, [N] or [N, 1]"
            )
        rows = tensor_values(tensor)
        if count is not None and len(rows) != count:
            raise bad_request(
                f"input {tensor.name!r} has {len(rows)} row(s), the other inputs {count}"
            )
        count = len(rows)
        values[tensor.name] = rows
    missing = [spec.name for spec in specs if spec.required and spec.name not in values]
    if missing:
        raise bad_request(f"missing input(s): {', '.join(missing)}")
    if not count:
        raise bad_request("the request has no rows: send at least one input with one row")
    if count > max_rows:
        raise bad_request(f"{count} rows: at most {max_rows} per request")
    return Rows(count=count, values=values)


def text_of(value: str | bytes, *, name: str, row: int) -> str:
    """A BYTES element as text (JSON strings as they are; binary elements UTF-8)."""
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"input {name!r} row {row}: not UTF-8 text") from exc


def output(
    name: str, datatype: Datatype, data: list[Any], shape: list[int] | None = None
) -> ResponseOutputBody:
    """One output tensor (shape ``[len(data)]`` unless given)."""
    return {
        "name": name,
        "shape": shape if shape is not None else [len(data)],
        "datatype": datatype,
        "data": data,
    }


def check_outputs(request: InferenceRequest, outputs: Sequence[MetadataTensor]) -> None:
    """400 for a requested output the model does not answer (before anything runs)."""
    names = [tensor.name for tensor in outputs]
    for requested in request.outputs or ():
        if requested.name not in names:
            raise bad_request(
                f"unknown output {requested.name!r}: the model answers {', '.join(names)}"
            )


def select_outputs(
    request: InferenceRequest, produced: Sequence[ResponseOutputBody]
) -> list[ResponseOutputBody]:
    """The outputs the request asks for, in its order (all of them when it names none)."""
    if not request.outputs:
        return list(produced)
    by_name = {tensor["name"]: tensor for tensor in produced}
    chosen: list[ResponseOutputBody] = []
    for requested in request.outputs:
        tensor = by_name.get(requested.name)
        if tensor is None:
            raise bad_request(
                f"unknown output {requested.name!r}: the model answers {', '.join(by_name)}"
            )
        chosen.append(tensor)
    return chosen


def parameter_int(
    parameters: Parameters | None, name: str, *, default: int, low: int, high: int
) -> int:
    """An integer request parameter within [low, high] (400 otherwise)."""
    value = (parameters or {}).get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(f"parameter {name!r} must be an integer from {low} to {high}")
    return value


async def newest_ready_version(triton: TritonClient, model: str) -> str | None:
    """The version Triton serves a request without a version: its newest READY one."""
    ready = [
        entry.version
        for entry in await triton.repository_index()
        if entry.name == model and entry.state == "READY" and entry.version.isdigit()
    ]
    return max(ready, key=int) if ready else None


# -- the service's model ------------------------------------------------------------------------
S = TypeVar("S", bound=ServiceState)


@dataclass(frozen=True)
class Inferred:
    """What a model answered: the version that answered (the first row's) and every output."""

    model_version: str
    outputs: list[ResponseOutputBody]


class OipModel(ABC, Generic[S]):
    """The one model a service serves under /v2: its tensors and its mapping onto the /v1 path."""

    #: The service's state class (:mod:`services.common.state`).
    state_type: type[S]
    inputs: Sequence[InputSpec]
    outputs: Sequence[MetadataTensor]
    #: The most rows one request may carry.
    max_rows: int
    platform = "modelfleet"

    @abstractmethod
    def name(self, state: S) -> str:
        """The public model name (what the path names)."""

    @abstractmethod
    async def versions(self, state: S) -> list[str]:
        """The versions a client may ask for by version now (oldest first)."""

    @abstractmethod
    async def ready(self, state: S, version: str) -> bool:
        """Whether the model ("": as an unversioned request is served) is ready."""

    @abstractmethod
    async def infer(
        self, state: S, request: InferenceRequest, rows: Rows, version: str
    ) -> Inferred:
        """Infer through the service's /v1 machinery; ``version`` "" lets the service choose.

        A version it does not serve is :func:`unknown_version` (404).
        """

    def state(self, request: Request) -> S:
        state = state_of(request)
        if not isinstance(state, self.state_type):
            raise TypeError(f"the app's state is a {type(state).__name__}")
        return state


# -- the routes ---------------------------------------------------------------------------------
def _json(model: BaseModel | dict[str, Any], status: int = 200) -> Response:
    content = model.model_dump(exclude_none=True) if isinstance(model, BaseModel) else model
    return OipJsonResponse(content, status_code=status)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined (for a request body in OpenAPI)."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}
#: The security layer's refusals: the document's one Problem schema (services.common.openapi
#: puts it under components), so a generated client has one Problem class for every route.
_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _error_doc(description: str, *, retry: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": ErrorBody, "description": f'{description} (`{{"error"}}`)'}
    if retry:
        doc["headers"] = _RETRY_AFTER
    return doc


RATE_LIMITED: dict[str, Any] = {
    "description": "Over the caller's rate limit (the security layer: problem+json)",
    "headers": _RETRY_AFTER,
    "content": _PROBLEM,
}
NOT_FOUND = _error_doc("Unknown model, or a version it does not serve")
UNAVAILABLE = _error_doc("Triton or the model is unavailable", retry=True)


def _infer_errors() -> dict[int | str, dict[str, Any]]:
    timeout = _error_doc("Triton missed its deadline")
    timeout["description"] += "; the request's own deadline is the security layer's problem+json"
    timeout["content"] = _PROBLEM
    return {
        400: _error_doc(
            "A bad request: not the protocol's JSON, an unknown or missing input, a datatype "
            "the input does not take, a shape that does not match its data, an invalid value"
        ),
        404: NOT_FOUND,
        413: _error_doc("The body is over the route's limit"),
        415: _error_doc("A content type other than JSON (or the binary extension's)"),
        429: RATE_LIMITED,
        502: _error_doc("A dependency answered with an error retrying will not fix"),
        503: UNAVAILABLE,
        504: timeout,
    }


#: Content types an inference body may have (tritonclient.http sends none).
_BODY_TYPES = frozenset({"", "application/json", "application/octet-stream"})


_INFER_PREFIX = "/v2/models/"
_INFER_SUFFIX = "/infer"
INFER_TEMPLATE = "/v2/models/{model_name}/infer"
INFER_VERSION_TEMPLATE = "/v2/models/{model_name}/versions/{model_version}/infer"


def match_infer_path(path: str) -> tuple[str, tuple[str, ...]] | None:
    """(route template, (model name, version or "")) of an infer path, as FastAPI matches it."""
    if not path.startswith(_INFER_PREFIX) or not path.endswith(_INFER_SUFFIX):
        return None
    parts = path[len(_INFER_PREFIX) : -len(_INFER_SUFFIX)].split("/")
    if len(parts) == 1 and parts[0]:
        return INFER_TEMPLATE, (parts[0], "")
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return INFER_VERSION_TEMPLATE, (parts[0], parts[2])
    return None


def oip_router(model: OipModel[Any], *, tag: str, max_body_bytes: BodyLimit) -> ServiceRouter:
    """The /v2 routes of ``model``, each declaring the ``read`` scope (infer: the body limit).

    Inference is also a fast path route (:class:`~services.common.fastroute.FastPathRoute`):
    served before FastAPI's routing and dependencies by the same handler, with the same
    answers; the FastAPI operations stay the contract.
    """
    router = ServiceRouter(prefix="/v2", tags=[tag], default_response_class=OipJsonResponse)
    read = [require_scope("read")]

    @router.get(
        "/health/live",
        response_model=ServerLive,
        summary="Server live (OIP v2): the process serves HTTP (open, like /healthz)",
    )
    async def server_live() -> Response:
        return _json(ServerLive(live=True))

    @router.get(
        "/health/ready",
        response_model=ServerReady,
        summary="Server ready (OIP v2): ready as /readyz decides (open, like /readyz)",
        responses={503: _error_doc("Not ready: names what fails", retry=True)},
    )
    async def server_ready(request: Request) -> Response:
        report = await health.readyz(request)
        if report.status_code == 200:
            return _json(ServerReady(ready=True))
        detail = orjson.loads(bytes(report.body)).get("detail", "not ready")
        return error_response(503, str(detail), {"Retry-After": "1"})

    @router.get(
        "",
        response_model=ServerMetadata,
        summary="Server metadata (OIP v2)",
        responses={429: RATE_LIMITED, 503: _error_doc("The service is still starting", retry=True)},
        dependencies=read,
    )
    async def server_metadata(request: Request) -> Response:
        async def describe() -> Response:
            settings = state_of(request).settings
            return _json(
                ServerMetadata(
                    name=settings.service_name, version=request.app.version, extensions=[]
                )
            )

        return await answer(describe)

    ModelHandler = Callable[[Request, str, str], Awaitable[Response]]

    def model_routes(
        method: str, suffix: str, handler: ModelHandler, summary: str, **doc: Any
    ) -> None:
        """``/models/{model_name}<suffix>`` and its ``/versions/{model_version}`` twin.

        The path values are read from the request, not declared as parameters: FastAPI would
        document a 422 no string can cause; ``openapi_extra`` documents them instead.
        """
        for versioned in (False, True):
            names = ["model_name", "model_version"] if versioned else ["model_name"]
            path = "/models/{model_name}" + ("/versions/{model_version}" if versioned else "")

            async def endpoint(request: Request) -> Response:
                values = request.path_params
                return await answer(
                    lambda: handler(request, values["model_name"], values.get("model_version", ""))
                )

            extra: dict[str, Any] = dict(body_doc) if method == "POST" else {}
            extra["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in names
            ]
            router.add_api_route(
                path + suffix,
                endpoint,
                methods=[method],
                name=f"{handler.__name__}{'_version' if versioned else ''}",
                summary=summary + (" of a version" if versioned else ""),
                openapi_extra=extra,
                **doc,
            )

    async def model_metadata(request: Request, name: str, version: str) -> Response:
        state = model.state(request)
        served = model.name(state)
        if name != served:
            raise unknown_model(name, served)
        versions = await model.versions(state)
        if version and version not in versions:
            raise unknown_version(name, version, versions)
        return _json(
            ModelMetadata(
                name=served,
                versions=versions,
                platform=model.platform,
                inputs=[spec.metadata() for spec in model.inputs],
                outputs=list(model.outputs),
            )
        )

    async def model_ready(request: Request, name: str, version: str) -> Response:
        state = model.state(request)
        served = model.name(state)
        if name != served:
            raise unknown_model(name, served)
        if version:
            versions = await model.versions(state)
            if version not in versions:
                raise unknown_version(name, version, versions)
        if not await model.ready(state, version):
            label = f"version {version} of " if version else ""
            raise OipError(503, f"{label}model {name!r} is not ready", {"Retry-After": "1"})
        return _json(ModelReady(name=served, ready=True))

    async def model_infer(request: Request, name: str, version: str) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in _BODY_TYPES:
            raise OipError(415, f"content type {content_type!r}: send application/json")
        body = await request.body()
        state = model.state(request)
        served = model.name(state)
        if name != served:
            raise unknown_model(name, served)
        parsed = parse_inference_request(body, header_length=request.headers.get(HEADER_LENGTH))
        rows = read_rows(parsed, model.inputs, max_rows=model.max_rows)
        check_outputs(parsed, model.outputs)
        inferred = await model.infer(state, parsed, rows, version)
        response: dict[str, Any] = {
            "model_name": served,
            "model_version": inferred.model_version,
            "outputs": select_outputs(parsed, inferred.outputs),
        }
        if parsed.id is not None:
            response["id"] = parsed.id
        return _json(response)

    async def fast_infer(request: Request, values: tuple[str, ...]) -> Response:
        return await answer(lambda: model_infer(request, values[0], values[1]))

    router.fast_path_routes.append(FastPathRoute("POST", match_infer_path, fast_infer))

    body_doc = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(InferenceRequest)}},
        }
    }
    model_routes(
        "GET",
        "",
        model_metadata,
        "Model metadata (OIP v2)",
        response_model=ModelMetadata,
        responses={404: NOT_FOUND, 429: RATE_LIMITED, 503: UNAVAILABLE},
        dependencies=read,
    )
    model_routes(
        "GET",
        "/ready",
        model_ready,
        "Model ready (OIP v2)",
        response_model=ModelReady,
        responses={
            404: NOT_FOUND,
            429: RATE_LIMITED,
            503: _error_doc("The model (version) is not ready, or Triton is down", retry=True),
        },
        dependencies=read,
    )
    model_routes(
        "POST",
        "/infer",
        model_infer,
        "Inference (OIP v2)",
        response_model=InferenceResponse,
        responses=_infer_errors(),
        dependencies=[require_scope("read", max_body_bytes=max_body_bytes)],
        description="An inference request of the Open Inference Protocol v2 "
        f"({SPEC_URL}): JSON tensors, or the binary tensor data extension of tritonclient.http "
        "(`Inference-Header-Content-Length`); outputs are JSON. A version in the path asks for "
        "that version (404 when the service does not serve it).",
    )
    return router
