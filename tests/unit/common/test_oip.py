"""The Open Inference Protocol v2 pieces (services/common/oip.py), on a toy model behind the real
app factory and security layer: routes, tensor checks, the binary extension as tritonclient.http
sends it, the protocol's error body, the layer's refusals, the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import pytest_asyncio
from fastapi import FastAPI
from starlette.types import Scope
from tritonclient.http import InferInput, InferRequestedOutput
from tritonclient.http._utils import _get_inference_request

from services.common.app import ServiceApp, create_service_app
from services.common.errors import DependencyTimeout, InvalidInput, TritonUnavailable
from services.common.health import register_readiness
from services.common.oip import (
    InferenceRequest,
    InferenceResponse,
    Inferred,
    InputSpec,
    MetadataTensor,
    ModelMetadata,
    OipError,
    OipModel,
    RequestInput,
    Rows,
    oip_router,
    output,
    parse_inference_request,
    read_rows,
    tensor_values,
    unknown_version,
)
from services.common.settings import ServiceSettings
from services.common.state import ServiceState
from tests.asgi import asgi_client

BODY_LIMIT = 4096


@dataclass(kw_only=True)
class ToyState(ServiceState):
    ready: bool = True
    calls: int = 0


class ToyModel(OipModel[ToyState]):
    """``doubled = 2 * x`` per row; ``x`` 13 is a Triton deadline, -1 a domain 422, 503 Triton."""

    state_type = ToyState
    inputs = (
        InputSpec("x", "float", "FP64"),
        InputSpec("n", "int", "INT32", required=False),
        InputSpec("word", "bytes", "BYTES", required=False),
    )
    outputs = (
        MetadataTensor(name="doubled", datatype="FP64", shape=[-1]),
        MetadataTensor(name="word", datatype="BYTES", shape=[-1]),
    )
    max_rows = 8

    def name(self, state: ToyState) -> str:
        return "toy"

    async def versions(self, state: ToyState) -> list[str]:
        return ["1", "2"]

    async def ready(self, state: ToyState, version: str) -> bool:
        return state.ready

    async def infer(
        self, state: ToyState, request: InferenceRequest, rows: Rows, version: str
    ) -> Inferred:
        if version and version not in await self.versions(state):
            raise unknown_version("toy", version, await self.versions(state))
        xs = rows.values["x"]
        if 13 in xs:
            raise DependencyTimeout("Triton did not answer for model 'toy' in time")
        if 503 in xs:
            raise TritonUnavailable("model 'toy' is not ready in Triton")
        if -1 in xs:
            raise InvalidInput(
                "1 invalid field(s): x",
                extra={"errors": [{"field": "x", "message": "must be positive"}]},
            )
        state.calls += 1
        words = rows.values.get("word", [b""] * rows.count)
        return Inferred(
            model_version=version or "2",
            outputs=[
                output("doubled", "FP64", [2.0 * x for x in xs]),
                output("word", "BYTES", [w.decode() if isinstance(w, bytes) else w for w in words]),
            ],
        )


def _app(**settings: Any) -> ServiceApp:
    config = ServiceSettings(log_json=False, **settings)
    toy = ToyState(settings=config)

    async def check() -> None:
        if not toy.ready:
            raise RuntimeError("toy model is not loaded")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[ToyState]:
        register_readiness(app, "toy", check)
        yield toy

    app = create_service_app(
        settings=config,
        title="toy",
        version="9.9.9",
        routers=[oip_router(ToyModel(), tag="toy: v2", max_body_bytes=BODY_LIMIT)],
        lifespan=lifespan,
    )
    assert isinstance(app, ServiceApp)
    return app


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(_app()) as test_client:
        yield test_client


def _state(client: httpx.AsyncClient) -> ToyState:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    state = transport.app.service_state  # type: ignore[attr-defined]
    assert isinstance(state, ToyState)
    return state


def _x(*values: Any, shape: list[int] | None = None, datatype: str = "FP64") -> dict[str, Any]:
    return {
        "name": "x",
        "shape": shape if shape is not None else [len(values)],
        "datatype": datatype,
        "data": list(values),
    }


# -- health and metadata ------------------------------------------------------------------------
async def test_live_ready_and_server_metadata(client: httpx.AsyncClient) -> None:
    live = await client.get("/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = await client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    meta = await client.get("/v2")
    assert meta.json() == {"name": "modelfleet", "version": "9.9.9", "extensions": []}


async def test_server_ready_follows_readyz(client: httpx.AsyncClient) -> None:
    state = _state(client)
    state.ready = False
    try:
        readyz = await client.get("/readyz")
        ready = await client.get("/v2/health/ready")
        model = await client.get("/v2/models/toy/ready")
    finally:
        state.ready = True
    assert readyz.status_code == 503
    assert ready.status_code == 503
    assert ready.json() == {"error": "not ready: toy"}
    assert ready.headers["retry-after"] == "1"
    assert model.status_code == 503
    assert set(model.json()) == {"error"}


async def test_model_metadata_and_readiness(client: httpx.AsyncClient) -> None:
    meta = await client.get("/v2/models/toy")
    assert meta.status_code == 200
    body = ModelMetadata.model_validate(meta.json())
    assert body.name == "toy" and body.versions == ["1", "2"]
    assert [(t.name, t.datatype, t.shape) for t in body.inputs] == [
        ("x", "FP64", [-1]),
        ("n", "INT32", [-1]),
        ("word", "BYTES", [-1]),
    ]
    assert (await client.get("/v2/models/toy/versions/1")).json() == meta.json()
    ready = await client.get("/v2/models/toy/versions/2/ready")
    assert (ready.status_code, ready.json()) == (200, {"name": "toy", "ready": True})


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/other", "unknown model 'other': this service serves 'toy'"),
        ("/v2/models/other/ready", "unknown model 'other': this service serves 'toy'"),
        ("/v2/models/toy/versions/7", "model 'toy' has no served version '7' (served: 1, 2)"),
        ("/v2/models/toy/versions/7/ready", "model 'toy' has no served version '7' (served: 1, 2)"),
    ],
)
async def test_unknown_model_or_version_is_404_error_body(
    client: httpx.AsyncClient, path: str, message: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": message}


# -- inference ------------------------------------------------------------------------------------
async def test_infer_answers_every_output_and_echoes_the_id(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/models/toy/infer",
        json={
            "id": "req-42",
            "inputs": [
                _x(1.5, 2, shape=[2, 1]),
                {"name": "word", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
            ],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "model_name": "toy",
        "model_version": "2",
        "id": "req-42",
        "outputs": [
            {"name": "doubled", "shape": [2], "datatype": "FP64", "data": [3.0, 4.0]},
            {"name": "word", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
        ],
    }
    InferenceResponse.model_validate(body)


async def test_infer_by_version_and_requested_outputs(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/models/toy/versions/1/infer",
        json={"inputs": [_x(1.0, 2.0, 3.0)], "outputs": [{"name": "doubled"}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1" and "id" not in body
    assert [o["name"] for o in body["outputs"]] == ["doubled"]
    unknown = await client.post("/v2/models/toy/versions/3/infer", json={"inputs": [_x(1.0)]})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "model 'toy' has no served version '3' (served: 1, 2)"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [{**_x(1.0), "name": "y"}]}, "unknown input 'y': the model takes x, n, word"),
        ({"inputs": [_x(1, datatype="INT64")]}, "input 'x' is FP64 (or FP16, FP32), not INT64"),
        ({"inputs": [_x(1.0, 2.0, shape=[3])]}, "holds 3 element(s), data has 2"),
        ({"inputs": [_x(1.0, 2.0, shape=[1, 2])]}, "one value per row, [N] or [N, 1]"),
        ({"inputs": [_x("1.0")]}, "element 0 ('1.0') is not a number (FP64)"),
        ({"inputs": [_x(True)]}, "element 0 (True) is not a number (FP64)"),
        ({"inputs": [_x(1.0, datatype="FP99")]}, "inputs.0.datatype: Input should be"),
        (
            {"inputs": [{"name": "n", "shape": [1], "datatype": "INT32", "data": [1]}]},
            "missing input(s): x",
        ),
        (
            {"inputs": [{"name": "n", "shape": [1], "datatype": "INT32", "data": [2**31]}]},
            "element 0 (2147483648) is out of the range of INT32",
        ),
        (
            {"inputs": [_x(1.0), {"name": "n", "shape": [2], "datatype": "INT32", "data": [1, 2]}]},
            "input 'n' has 2 row(s), the other inputs 1",
        ),
        ({"inputs": [_x(1.0), _x(2.0)]}, "input 'x' is given twice"),
        ({"inputs": [_x(*range(9))]}, "9 rows: at most 8 per request"),
        ({"inputs": [_x()]}, "the request has no rows"),
        ({"inputs": [_x(1.0)], "outputs": [{"name": "tripled"}]}, "unknown output 'tripled'"),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}, "input 'x' has no data"),
        ({"input": []}, "inputs: Field required"),
        ({"inputs": [_x(-1.0)]}, "1 invalid field(s): x (x: must be positive)"),
    ],
)
async def test_bad_requests_are_400_with_the_error_body(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    calls = _state(client).calls
    response = await client.post("/v2/models/toy/infer", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert set(error) == {"error"}
    assert message in error["error"]
    assert _state(client).calls == calls


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/models/toy/infer", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid inference request: ")


async def test_unknown_model_infer_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/nope/infer", json={"inputs": [_x(1.0)]})
    assert (response.status_code, response.json()) == (
        404,
        {"error": "unknown model 'nope': this service serves 'toy'"},
    )


async def test_other_content_types_are_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/models/toy/infer", content=b"x=1", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json() == {"error": "content type 'text/plain': send application/json"}


async def test_a_body_over_the_route_limit_is_413_error_body(client: httpx.AsyncClient) -> None:
    big = {"inputs": [_x(1.0)], "id": "x" * BODY_LIMIT}
    response = await client.post("/v2/models/toy/infer", json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert "over 4096 bytes" in response.json()["error"]


@pytest.mark.parametrize(("x", "status", "retry_after"), [(13.0, 504, None), (503.0, 503, "1")])
async def test_dependency_errors_keep_their_status_with_the_error_body(
    client: httpx.AsyncClient, x: float, status: int, retry_after: str | None
) -> None:
    response = await client.post("/v2/models/toy/infer", json={"inputs": [_x(x)]})
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert response.headers.get("retry-after") == retry_after


# -- the binary tensor data extension, as tritonclient.http builds it -----------------------------
def _client_request(
    inputs: list[InferInput], outputs: list[InferRequestedOutput] | None = None
) -> tuple[bytes, int | None]:
    body, json_size = _get_inference_request(
        inputs=inputs,
        request_id="bin-1",
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    return bytes(body), json_size


async def test_binary_inputs_of_tritonclient_http(client: httpx.AsyncClient) -> None:
    x = InferInput("x", [3], "FP64")
    x.set_data_from_numpy(np.array([0.25, 1.0, -4.5]))  # binary_data=True, the default
    word = InferInput("word", [3, 1], "BYTES")
    word.set_data_from_numpy(np.array([[b"caf\xc3\xa9"], [b""], [b"z"]], dtype=object))
    body, json_size = _client_request([x, word])
    assert json_size is not None and json_size < len(body)
    response = await client.post(
        "/v2/models/toy/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(json_size)},
    )
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    assert outputs == {"doubled": [0.5, 2.0, -9.0], "word": ["café", "", "z"]}


def test_parse_binary_request_checks_sizes() -> None:
    x = InferInput("x", [2], "FP64")
    x.set_data_from_numpy(np.array([1.0, 2.0]))
    body, json_size = _client_request([x])
    assert json_size is not None
    parsed = parse_inference_request(body, header_length=str(json_size))
    assert parsed.inputs[0].data == [1.0, 2.0]
    with pytest.raises(OipError, match="runs past the body's 8 bytes"):
        parse_inference_request(body[:-8], header_length=str(json_size))
    with pytest.raises(OipError, match="8 bytes of binary data belong to no input"):
        parse_inference_request(body + b"\0" * 8, header_length=str(json_size))
    with pytest.raises(OipError, match="not a length within the body"):
        parse_inference_request(body, header_length=str(len(body) + 1))


def test_binary_bytes_elements_are_length_prefixed() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "word",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 11},
                }
            ]
        }
    )
    raw = b"\x03\x00\x00\x00abc" + b"\x00\x00\x00\x00"
    parsed = parse_inference_request(header + raw, header_length=str(len(header)))
    assert parsed.inputs[0].data == [b"abc", b""]
    with pytest.raises(OipError, match="runs past its binary data"):
        parse_inference_request(
            header + b"\x09\x00\x00\x00abc\x00\x00\x00\x00", header_length=str(len(header))
        )


# -- the tensor checks on their own -------------------------------------------------------------
def test_tensor_values_flatten_nested_row_major_data() -> None:
    tensor = RequestInput(name="m", shape=[2, 2], datatype="UINT8", data=[[1, 2], [4, 5]])
    assert tensor_values(tensor) == [1, 2, 4, 5]
    negative = RequestInput(name="m", shape=[-1], datatype="UINT8", data=[1])
    with pytest.raises(OipError, match="negative dimension"):
        tensor_values(negative)
    with pytest.raises(OipError, match=r"element 0 \(-1\) is out of the range of UINT8"):
        tensor_values(RequestInput(name="m", shape=[1], datatype="UINT8", data=[-1]))
    with pytest.raises(OipError, match="is not an integer"):
        tensor_values(RequestInput(name="m", shape=[1], datatype="INT64", data=[1.5]))
    with pytest.raises(OipError, match="is not a boolean"):
        tensor_values(RequestInput(name="m", shape=[1], datatype="BOOL", data=[1]))
    with pytest.raises(OipError, match="is not a string"):
        tensor_values(RequestInput(name="m", shape=[1], datatype="BYTES", data=[1]))


def test_read_rows_gives_one_value_per_row() -> None:
    request = InferenceRequest.model_validate(
        {
            "inputs": [
                _x(1.0, 2.0, shape=[2, 1]),
                {"name": "n", "shape": [2], "datatype": "UINT8", "data": [3, 4]},
            ]
        }
    )
    rows = read_rows(request, ToyModel.inputs, max_rows=8)
    assert rows.count == 2
    assert rows.values == {"x": [1.0, 2.0], "n": [3, 4]}


# -- the security layer and the OpenAPI document ------------------------------------------------
async def test_the_layer_rate_limits_v2_routes_with_its_problem() -> None:
    async with asgi_client(_app(rate_limit_per_s=0.001, rate_limit_burst=1)) as limited:
        first = await limited.post("/v2/models/toy/infer", json={"inputs": [_x(1.0)]})
        second = await limited.post("/v2/models/toy/infer", json={"inputs": [_x(1.0)]})
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["content-type"] == "application/problem+json"
    assert "retry-after" in second.headers


def test_the_layer_finds_each_v2_route_policy() -> None:
    app = _app()

    def scope(method: str, path: str) -> Scope:
        return {"type": "http", "method": method, "path": path, "headers": []}

    infer = app.security.policy_of(scope("POST", "/v2/models/toy/versions/3/infer"))
    assert (infer.template, infer.scope, infer.max_body_bytes) == (
        "/v2/models/{model_name}/versions/{model_version}/infer",
        "read",
        BODY_LIMIT,
    )
    for path in ("/v2", "/v2/models/toy/ready"):
        assert app.security.policy_of(scope("GET", path)).scope == "read", path


async def test_the_protocol_probes_are_open_in_jwt_mode_and_the_rest_is_not() -> None:
    jwt = {
        "auth_mode": "jwt",
        "auth_jwks_url": "http://127.0.0.1:9/jwks",
        "auth_issuer": "http://127.0.0.1:9",
        "auth_audience": "test",
    }
    async with asgi_client(_app(**jwt)) as anonymous:
        live, ready = (
            await anonymous.get("/v2/health/live"),
            await anonymous.get("/v2/health/ready"),
        )
        metadata = await anonymous.get("/v2/models/toy")
        document = (await anonymous.get("/openapi.json")).json()["paths"]
    assert (live.status_code, ready.status_code) == (200, 200)
    assert metadata.status_code == 401
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert (
            "security" not in document[path]["get"]
            and "401" not in document[path]["get"]["responses"]
        ), path
    assert "401" in document["/v2/models/{model_name}"]["get"]["responses"]


def test_openapi_documents_every_status_with_its_body() -> None:
    paths = _app().openapi()["paths"]
    v2 = {path: ops for path, ops in paths.items() if path.startswith("/v2")}
    assert len(v2) == 9
    for path in (
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    ):
        operation = v2[path]["post"]
        responses = operation["responses"]
        assert sorted(responses) == ["200", "400", "404", "413", "415", "429", "502", "503", "504"]
        for status in ("400", "404", "413", "415", "502", "503"):
            assert responses[status]["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
            }, status
        assert list(responses["429"]["content"]) == ["application/problem+json"]
        assert set(responses["504"]["content"]) == {"application/json", "application/problem+json"}
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/InferenceResponse"
        }
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" not in orjson.dumps(body).decode()
        assert body["required"] == ["inputs"]
    for path, operations in v2.items():
        for operation in operations.values():
            assert "422" not in operation["responses"], path
            names = [p["name"] for p in operation.get("parameters", [])]
            assert names == [n for n in ("model_name", "model_version") if "{" + n + "}" in path]


def test_infer_paths_are_matched_as_fastapi_matches_them() -> None:
    from services.common.oip import INFER_TEMPLATE, INFER_VERSION_TEMPLATE, match_infer_path

    assert match_infer_path("/v2/models/m/infer") == (INFER_TEMPLATE, ("m", ""))
    assert match_infer_path("/v2/models/m/versions/3/infer") == (INFER_VERSION_TEMPLATE, ("m", "3"))
    for other in (
        "/v2/models//infer",
        "/v2/models/m/versions//infer",
        "/v2/models/m/ready",
        "/v2/models/m/infer/",
        "/v2/models/m/x/3/infer",
        "/v2/models/a/b/infer",
        "/v1/predict",
    ):
        assert match_infer_path(other) is None, other
