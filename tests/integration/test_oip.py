"""The Open Inference Protocol v2 of ride-duration and the classifier on the real stack, driven by
the real, unchanged ``tritonclient.http`` client: its answers equal the /v1 answers for the same
input, through the same routing table (A/B, pinned versions, shadow), prediction log and metrics;
and the JSON that goes over the wire validates against the protocol's published shapes.

The shapes below are the JSON schemas of the spec's objects, written from its OpenAPI document
https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/open_inference_rest.yaml
(``components.schemas``) and, for the two readiness bodies it leaves out, its text
https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
(``$ready_model_response``, ``$live_server_response``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import jsonschema
import numpy as np
import pandas as pd
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.http._utils import _get_inference_request
from tritonclient.utils import InferenceServerException

from models.classifier.data import generate_catalogue
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from tests.integration.test_routing import candidate, put_table, v

pytestmark = pytest.mark.integration

__all__ = ["candidate"]  # the fixture: version 2 of ride_duration, loaded beside version 1

RIDES: list[dict[str, Any]] = [
    {
        "pickup_datetime": "2024-03-14T08:30:00",
        "pickup_location_id": 161,
        "dropoff_location_id": 236,
        "trip_distance": 2.4,
        "passenger_count": 1,
    },
    {
        "pickup_datetime": "2024-07-01T23:05:00-04:00",
        "pickup_location_id": 132,
        "dropoff_location_id": 48,
        "trip_distance": 17.9,
        "passenger_count": 3,
        "ratecode_id": 2,
        "payment_type": 2,
    },
    {
        "pickup_datetime": "2024-01-06T03:15:00Z",
        "pickup_location_id": 79,
        "dropoff_location_id": 79,
        "trip_distance": 0.6,
        "passenger_count": 1,
    },
]

RIDE_OUTPUTS = ("duration_minutes", "prediction_id", "model_version", "variant")
PRODUCT_OUTPUTS = (
    "category",
    "probability",
    "top_categories",
    "top_probabilities",
    "prediction_id",
    "model_version",
)

# -- the protocol's shapes (see the module docstring for where each comes from) -----------------
SPEC: dict[str, Any] = {
    "$defs": {
        "parameters": {"type": "object"},
        "tensor_data": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"$ref": "#/$defs/tensor_data"},
                    {"type": "number"},
                    {"type": "string"},
                    {"type": "boolean"},
                ]
            },
        },
        "metadata_server_response": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "version", "extensions"],
        },
        "metadata_tensor": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "datatype": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["name", "datatype", "shape"],
        },
        "metadata_model_response": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": {"$ref": "#/$defs/metadata_tensor"}},
                "outputs": {"type": "array", "items": {"$ref": "#/$defs/metadata_tensor"}},
            },
            "required": ["name", "platform"],
        },
        "request_input": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "datatype": {"type": "string"},
                "parameters": {"$ref": "#/$defs/parameters"},
                "data": {"$ref": "#/$defs/tensor_data"},
            },
            "required": ["name", "shape", "datatype", "data"],
        },
        "request_output": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "parameters": {"$ref": "#/$defs/parameters"},
            },
            "required": ["name"],
        },
        "inference_request": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "parameters": {"$ref": "#/$defs/parameters"},
                "inputs": {"type": "array", "items": {"$ref": "#/$defs/request_input"}},
                "outputs": {"type": "array", "items": {"$ref": "#/$defs/request_output"}},
            },
            "required": ["inputs"],
        },
        "response_output": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "datatype": {"type": "string"},
                "parameters": {"$ref": "#/$defs/parameters"},
                "data": {"$ref": "#/$defs/tensor_data"},
            },
            "required": ["name", "shape", "datatype", "data"],
        },
        "inference_response": {
            "type": "object",
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": {"$ref": "#/$defs/parameters"},
                "outputs": {"type": "array", "items": {"$ref": "#/$defs/response_output"}},
            },
            "required": ["model_name", "outputs"],
        },
        # the YAML gives it no `required`; the text says the body "must contain" the error
        "inference_error_response": {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
        },
        "ready_model_response": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
            "required": ["name", "ready"],
        },
        "live_server_response": {
            "type": "object",
            "properties": {"live": {"type": "boolean"}},
            "required": ["live"],
        },
    }
}


def conforms(shape: str, instance: Any) -> None:
    """Raise when ``instance`` is not a ``shape`` of the protocol."""
    schema = {**SPEC, "$ref": f"#/$defs/{shape}"}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_the_shapes_refuse_what_the_spec_refuses() -> None:
    conforms("inference_response", {"model_name": "m", "outputs": []})
    for shape, bad in [
        ("inference_response", {"model_name": "m"}),
        ("inference_request", {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}),
        ("response_output", {"name": "y", "shape": ["1"], "datatype": "FP32", "data": [1]}),
        ("inference_error_response", {"detail": "problem+json is not the protocol's error"}),
    ]:
        with pytest.raises(jsonschema.ValidationError):
            conforms(shape, bad)


# -- clients ------------------------------------------------------------------------------------
def _address(stack_settings: StackSettings, port: int) -> str:
    return f"{stack_settings.host}:{port}"


@pytest.fixture(scope="module")
def ride_v2(stack: Stack, stack_settings: StackSettings) -> Iterator[InferenceServerClient]:
    client = InferenceServerClient(url=_address(stack_settings, stack_settings.ride_duration_port))
    yield client
    client.close()


@pytest.fixture(scope="module")
def classifier_v2(stack: Stack, stack_settings: StackSettings) -> Iterator[InferenceServerClient]:
    client = InferenceServerClient(url=_address(stack_settings, stack_settings.classifier_port))
    yield client
    client.close()


@pytest_asyncio.fixture(scope="module")
async def classifier(
    stack: Stack, stack_settings: StackSettings
) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://{_address(stack_settings, stack_settings.classifier_port)}"
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        yield client


@pytest_asyncio.fixture
async def stable_only(http: httpx.AsyncClient) -> AsyncIterator[None]:
    """The test starts and ends with every ride on stable version 1 (the session's table)."""
    await put_table(http, [v("stable", "stable", 1.0, 1)], comment="oip test")
    yield
    await put_table(http, [v("stable", "stable", 1.0, 1)], comment="oip test reset")


def ride_inputs(rides: list[dict[str, Any]], *, binary: bool) -> list[InferInput]:
    """The rides as tritonclient.http inputs (every field each ride has; defaults filled in)."""
    columns: list[tuple[str, str, Any, Any]] = [
        ("pickup_datetime", "BYTES", np.object_, None),
        ("pickup_location_id", "INT32", np.int32, None),
        ("dropoff_location_id", "INT32", np.int32, None),
        ("trip_distance", "FP64", np.float64, None),
        ("passenger_count", "INT64", np.int64, 1),
        ("ratecode_id", "INT32", np.int32, 1),
        ("payment_type", "INT32", np.int32, 1),
    ]
    if any("user_id" in ride for ride in rides):
        columns.append(("user_id", "BYTES", np.object_, None))
    inputs = []
    for name, datatype, dtype, default in columns:
        values = [ride.get(name, default) for ride in rides]
        tensor = InferInput(name, [len(rides)], datatype)
        tensor.set_data_from_numpy(np.array(values, dtype=dtype), binary_data=binary)
        inputs.append(tensor)
    return inputs


def with_defaults(ride: dict[str, Any]) -> dict[str, Any]:
    return {"ratecode_id": 1, "payment_type": 1, **ride}


async def v1_batch(http: httpx.AsyncClient, rides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await http.post("/v1/predict/batch", json={"rides": rides})
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def outputs_of(result: Any) -> dict[str, list[Any]]:
    """Each output of a tritonclient InferResult as a flat list (BYTES as text)."""
    out: dict[str, list[Any]] = {}
    for tensor in result.get_response()["outputs"]:
        values = result.as_numpy(tensor["name"]).reshape(-1).tolist()
        out[tensor["name"]] = [x.decode() if isinstance(x, bytes) else x for x in values]
    return out


def metric(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == w for k, w in labels.items())
    )


async def logged(stack_settings: StackSettings, table: str, ids: list[str]) -> list[Any]:
    """The rows of ``ids`` in a prediction table, once all are there (the log is buffered)."""
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        deadline = time.monotonic() + 15
        while True:
            rows = await conn.fetch(
                f"select * from {table} where prediction_id = any($1::uuid[])",
                [uuid.UUID(i) for i in ids],
            )
            if len(rows) == len(ids) or time.monotonic() > deadline:
                return list(rows)
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


# -- ride-duration --------------------------------------------------------------------------------
async def test_ride_duration_health_and_metadata(
    ride_v2: InferenceServerClient, http: httpx.AsyncClient, stable_only: None
) -> None:
    assert ride_v2.is_server_live()
    assert ride_v2.is_server_ready()
    assert ride_v2.get_server_metadata() == {
        "name": "ride-duration",
        "version": "1.0.0",
        "extensions": [],
    }
    metadata = ride_v2.get_model_metadata("ride_duration")
    assert metadata["name"] == "ride_duration"
    assert metadata["versions"] == ["1"]
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]][:4] == [
        ("pickup_datetime", "BYTES"),
        ("pickup_location_id", "INT32"),
        ("dropoff_location_id", "INT32"),
        ("trip_distance", "FP64"),
    ]
    assert ride_v2.get_model_metadata("ride_duration", "1") == metadata
    assert ride_v2.is_model_ready("ride_duration")
    assert ride_v2.is_model_ready("ride_duration", "1")
    assert not ride_v2.is_model_ready("ride_duration", "7")
    assert not ride_v2.is_model_ready("fare")
    with pytest.raises(InferenceServerException) as unknown:
        ride_v2.get_model_metadata("fare")
    assert unknown.value.status() == "404"
    assert "unknown model 'fare'" in unknown.value.message()
    for path, shape in [
        ("/v2", "metadata_server_response"),
        ("/v2/models/ride_duration", "metadata_model_response"),
        ("/v2/models/ride_duration/ready", "ready_model_response"),
        ("/v2/health/live", "live_server_response"),
        ("/v2/models/fare", "inference_error_response"),
    ]:
        conforms(shape, (await http.get(path)).json())


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
async def test_ride_duration_infer_equals_v1(
    ride_v2: InferenceServerClient,
    http: httpx.AsyncClient,
    stack_settings: StackSettings,
    stable_only: None,
    binary: bool,
) -> None:
    before = (await http.get("/metrics")).text
    result = ride_v2.infer(
        "ride_duration",
        ride_inputs(RIDES, binary=binary),
        outputs=[InferRequestedOutput(name, binary_data=binary) for name in RIDE_OUTPUTS],
        request_id="oip-1",
    )
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "ride_duration",
        "1",
        "oip-1",
    )
    got = outputs_of(result)
    want = await v1_batch(http, [with_defaults(r) for r in RIDES])
    assert got["duration_minutes"] == [p["duration_minutes"] for p in want]
    assert got["model_version"] == [p["model"]["version"] for p in want] == ["1"] * 3
    assert got["variant"] == [p["model"]["variant"] for p in want] == ["stable"] * 3
    assert len(set(got["prediction_id"])) == 3
    rows = await logged(stack_settings, "ride_duration_predictions", got["prediction_id"])
    by_id = {str(row["prediction_id"]): row for row in rows}
    logged_minutes = [by_id[i]["duration_minutes"] for i in got["prediction_id"]]  # float4
    assert logged_minutes == pytest.approx(got["duration_minutes"], abs=1e-4)
    assert {row["variant"] for row in rows} == {"stable"}
    after = (await http.get("/metrics")).text
    served = {"handler": "/v2/models/{model_name}/infer", "method": "POST", "status": "200"}
    assert (
        metric(after, "http_requests_total", **served)
        == metric(before, "http_requests_total", **served) + 1
    )
    rows_on_stable = {"service": "ride-duration", "variant": "stable"}
    # /v1's batch of the same rides counts too: the variant saw 3 + 3 rows
    assert (
        metric(after, "modelfleet_variant_requests_total", **rows_on_stable)
        - metric(before, "modelfleet_variant_requests_total", **rows_on_stable)
        == 6
    )


async def test_ride_duration_routing_table_ab_pinned_and_shadow(
    ride_v2: InferenceServerClient,
    http: httpx.AsyncClient,
    candidate: int,
    stable_only: None,
) -> None:
    await put_table(
        http,
        [v("stable", "stable", 0.0, 1), v("a", "a", 0.5, 1), v("b", "b", 0.5, candidate)],
        salt=f"oip-{uuid.uuid4().hex[:6]}",
    )
    assert ride_v2.get_model_metadata("ride_duration")["versions"] == ["1", str(candidate)]
    rides = [{**RIDES[i % 3], "user_id": f"rider-{i}"} for i in range(24)]
    want = await v1_batch(http, [with_defaults(r) for r in rides])
    got = outputs_of(ride_v2.infer("ride_duration", ride_inputs(rides, binary=True)))
    assert got["variant"] == [p["model"]["variant"] for p in want]
    assert set(got["variant"]) == {"a", "b"}
    assert got["model_version"] == [p["model"]["version"] for p in want]
    assert got["duration_minutes"] == [p["duration_minutes"] for p in want]

    pinned = ride_v2.infer("ride_duration", ride_inputs(rides, binary=True), str(candidate))
    assert pinned.get_response()["model_version"] == str(candidate)
    pinned_rows = outputs_of(pinned)
    assert set(pinned_rows["variant"]) == {"b"}
    on_b = [i for i, p in enumerate(want) if p["model"]["variant"] == "b"]
    assert [pinned_rows["duration_minutes"][i] for i in on_b] == [
        want[i]["duration_minutes"] for i in on_b
    ]
    with pytest.raises(InferenceServerException) as unserved:
        ride_v2.infer("ride_duration", ride_inputs(rides[:1], binary=True), "99")
    assert unserved.value.status() == "404"
    assert "has no served version '99'" in unserved.value.message()

    await put_table(http, [v("stable", "stable", 1.0, 1), v("shadow", "shadow", 1.0, candidate)])
    shadowed = {"service": "ride-duration", "variant": "shadow"}
    before = metric(
        (await http.get("/metrics")).text, "modelfleet_shadow_comparisons_total", **shadowed
    )
    answer = outputs_of(ride_v2.infer("ride_duration", ride_inputs(RIDES, binary=False)))
    assert answer["variant"] == ["stable"] * 3
    deadline = time.monotonic() + 10
    while True:  # the shadow is called off the request path
        after = metric(
            (await http.get("/metrics")).text, "modelfleet_shadow_comparisons_total", **shadowed
        )
        if after >= before + 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert after == before + 3


async def test_ride_duration_bad_tensors_are_400(
    ride_v2: InferenceServerClient, http: httpx.AsyncClient
) -> None:
    tensors = ride_inputs(RIDES[:1], binary=False)
    renamed = InferInput("pickup_time", [1], "BYTES")
    renamed.set_data_from_numpy(np.array(["2024-03-14T08:30:00"], dtype=np.object_), False)
    with pytest.raises(InferenceServerException) as unknown:
        ride_v2.infer("ride_duration", [renamed, *tensors[1:]])
    assert unknown.value.status() == "400"
    assert unknown.value.message().startswith("unknown input 'pickup_time'")
    far = InferInput("trip_distance", [1], "FP64")
    far.set_data_from_numpy(np.array([900.0]), binary_data=True)
    with pytest.raises(InferenceServerException) as invalid:
        ride_v2.infer("ride_duration", [*tensors[:3], far, *tensors[4:]])
    assert invalid.value.status() == "400"
    assert "input 'trip_distance' row 0: Input should be less than or equal to 500" in (
        invalid.value.message()
    )
    body = {"inputs": [{**t._get_tensor(), "shape": [2]} for t in tensors]}
    mismatch = await http.post("/v2/models/ride_duration/infer", json=body)
    assert mismatch.status_code == 400
    conforms("inference_error_response", mismatch.json())
    assert "shape [2] holds 2 element(s), data has 1" in mismatch.json()["error"]


# -- classifier ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def products() -> pd.DataFrame:
    catalogue = generate_catalogue(12, seed=321, label_noise=0.0)
    with_image = catalogue[catalogue["image_bytes"].notna()]
    return with_image.head(3)


def product_inputs(products: pd.DataFrame, *, binary: bool) -> list[InferInput]:
    """title, description and the image: its bytes (binary) or base64 text (JSON)."""
    inputs = []
    images = [bytes(b) if binary else base64.b64encode(b).decode() for b in products["image_bytes"]]
    for name, values in [
        ("title", list(products["title"])),
        ("description", list(products["description"])),
        ("image", images),
    ]:
        tensor = InferInput(name, [len(values)], "BYTES")
        tensor.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
async def test_classifier_infer_equals_v1(
    classifier_v2: InferenceServerClient,
    classifier: httpx.AsyncClient,
    stack_settings: StackSettings,
    products: pd.DataFrame,
    binary: bool,
) -> None:
    assert classifier_v2.is_server_live() and classifier_v2.is_server_ready()
    metadata = classifier_v2.get_model_metadata("classifier")
    assert metadata["name"] == "classifier" and len(metadata["versions"]) == 1
    version = metadata["versions"][0]
    assert classifier_v2.is_model_ready("classifier", version)
    result = classifier_v2.infer(
        "classifier",
        product_inputs(products, binary=binary),
        model_version=version,
        outputs=[InferRequestedOutput(name, binary_data=binary) for name in PRODUCT_OUTPUTS],
        parameters={"top_k": 4},
    )
    assert result.get_response()["model_version"] == version
    got = outputs_of(result)
    assert result.as_numpy("top_categories").shape == (3, 4)
    for i, (_, row) in enumerate(products.iterrows()):
        response = await classifier.post(
            "/v1/classify",
            json={
                "title": row["title"],
                "description": row["description"],
                "image": base64.b64encode(row["image_bytes"]).decode(),
                "top_k": 4,
            },
        )
        assert response.status_code == 200, response.text
        want = response.json()
        assert got["category"][i] == want["category"]
        assert got["probability"][i] == want["probability"]
        assert got["top_categories"][4 * i : 4 * i + 4] == [t["category"] for t in want["top_k"]]
        assert got["top_probabilities"][4 * i : 4 * i + 4] == [
            t["probability"] for t in want["top_k"]
        ]
        assert got["model_version"][i] == want["model"]["version"] == version
    rows = await logged(stack_settings, "classifier_predictions", got["prediction_id"])
    assert sorted(row["category"] for row in rows) == sorted(got["category"])
    feedback = await classifier.post(
        "/v1/feedback",
        json={"prediction_id": got["prediction_id"][0], "true_category": got["category"][0]},
    )
    assert feedback.status_code == 200, feedback.text
    assert feedback.json()["correct"] is True


async def test_classifier_errors(
    classifier_v2: InferenceServerClient, classifier: httpx.AsyncClient
) -> None:
    empty = InferInput("title", [1], "BYTES")
    empty.set_data_from_numpy(np.array([" "], dtype=np.object_))
    with pytest.raises(InferenceServerException) as nothing:
        classifier_v2.infer("classifier", [empty])
    assert nothing.value.status() == "400"
    assert nothing.value.message() == "row 0: send a title, a description or an image"
    garbage = InferInput("image", [1], "BYTES")
    garbage.set_data_from_numpy(np.array([b"not an image at all"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as not_image:
        classifier_v2.infer("classifier", [garbage])
    assert not_image.value.status() == "415"
    text_only = pd.DataFrame({"title": ["a"], "description": ["b"], "image_bytes": [b""]})
    with pytest.raises(InferenceServerException) as top:
        classifier_v2.infer(
            "classifier", product_inputs(text_only, binary=True), parameters={"top_k": 0}
        )
    assert top.value.status() == "400"
    assert "parameter 'top_k' must be an integer from 1 to 50" in top.value.message()
    title = {"name": "title", "shape": [1], "datatype": "FP32", "data": [1.0]}
    wrong = await classifier.post("/v2/models/classifier/infer", json={"inputs": [title]})
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "input 'title' is BYTES, not FP32"}


# -- the wire JSON against the spec -------------------------------------------------------------
async def test_request_and_response_json_validate_against_the_spec(
    http: httpx.AsyncClient, classifier: httpx.AsyncClient, products: pd.DataFrame
) -> None:
    for client, inputs, name in [
        (http, ride_inputs(RIDES, binary=False), "ride_duration"),
        (classifier, product_inputs(products, binary=False), "classifier"),
    ]:
        body, json_size = _get_inference_request(
            inputs=inputs,
            request_id="spec-1",
            outputs=None,
            sequence_id=0,
            sequence_start=False,
            sequence_end=False,
            priority=0,
            timeout=None,
            custom_parameters=None,
        )  # what tritonclient.http sends
        assert json_size is None
        conforms("inference_request", json.loads(body))
        response = await client.post(f"/v2/models/{name}/infer", content=body)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        conforms("inference_response", response.json())
        assert response.json()["id"] == "spec-1"
        for path, shape, status in [
            ("/v2", "metadata_server_response", 200),
            (f"/v2/models/{name}", "metadata_model_response", 200),
            (f"/v2/models/{name}/ready", "ready_model_response", 200),
            ("/v2/models/nothing", "inference_error_response", 404),
            (f"/v2/models/{name}/versions/0", "inference_error_response", 404),
        ]:
            answer = await client.get(path)
            assert answer.status_code == status, (path, answer.text)
            conforms(shape, answer.json())
        bad = await client.post(f"/v2/models/{name}/infer", json={"inputs": "none"})
        assert bad.status_code == 400
        conforms("inference_error_response", bad.json())
