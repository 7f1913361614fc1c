"""A client generated from each service's OpenAPI document works unchanged (issue 17).

For each service the document is fetched from the running service (``/openapi.json``), a Python
client is generated from it with a kept generator (PyPI ``openapi-python-client``, pinned in the
dev extra) into a temporary directory and imported; the main flows are then driven through that
client only, with ``raise_on_unexpected_status=True`` (a status the document does not declare
fails), and every answer is parsed by the generated models:

- ride-duration: one prediction and a batch;
- backend: a ride (with an Idempotency-Key, replayed), then its results (tip, cost, duration);
- classifier: a classification, then feedback on its prediction id;
- chatbot: a PDF uploaded (multipart) and followed to ``ready``, a question on it, a catalogue
  question answered from SQL, each with its citations.

Each service also has an error answered through the generated client: the parsed body is the
generated ``Problem`` (the documents declare ``application/problem+json`` with that schema).

A parsed success answer must carry no field the document does not declare (the generated models
keep such fields in ``additional_properties``: a field the service sends but does not document).

The generator's warnings are checked: one not in :data:`KNOWN_WARNINGS` fails, so a document
cannot silently drop an operation or a response from the generated client. A known defect of the
generator is worked around in the generated code, and only where it is known
(:data:`KNOWN_DEFECTS`: where it appears and where it is expected must be equal, so a generator
that fixes it fails here too: drop the workaround then).
"""

from __future__ import annotations

import ast
import asyncio
import datetime
import importlib
import io
import json
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import httpx
import pytest
from openapi_python_client import generate
from openapi_python_client.config import Config, ConfigFile, MetaType
from openapi_python_client.parser.errors import ErrorLevel

from bench.chatbot import make_pdf
from services.common.errors import PROBLEM_TYPE_BASE
from services.common.nats import connect
from services.common.triton import TritonClient
from services.domain.documents.corpus import bump_generation
from services.domain.documents.embeddings import Embedder
from services.domain.documents.ingest import Product, ingest_products
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration

RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
#: The generator's default post-hooks (ruff from this venv: no network, no PATH needed).
POST_HOOKS = [f"{RUFF} check . --fix-only --extend-select=I", f"{RUFF} format ."]
#: The raw upload body of POST /v1/documents is a PDF; the generator knows only a few media
#: types by name, so it is told that application/pdf is bytes (the generated upload takes a File).
CONTENT_TYPE_OVERRIDES = {"application/pdf": "application/octet-stream"}

#: Warnings the generator gives for the documents as they are (service -> operation -> a phrase
#: of the warning): none. (/v2 infer once declared the layer's problem+json inline, which the
#: generator turned into two models of one name and dropped the 504: it is a reference now.)
KNOWN_WARNINGS: dict[str, dict[str, str]] = {
    "ride_duration": {},
    "classifier": {},
    "backend": {},
    "chatbot": {},
}

#: Generated modules that use ``Unset`` without importing it (service -> paths in the package):
#: openapi-python-client#1451 (open in 0.29.1): a *required* request body with several media
#: types is annotated ``| Unset = UNSET`` but ``Unset`` is not imported unless another parameter
#: of the operation is optional, so the module does not even import (NameError). POST
#: /v1/classify takes JSON or multipart and has no optional parameter. The workaround adds the
#: import (:func:`import_unset`).
KNOWN_DEFECTS: dict[str, list[str]] = {
    "ride_duration": [],
    "classifier": ["api/classifier/classify_v1_classify_post.py"],
    "backend": [],
    "chatbot": [],
}

RIDE: dict[str, Any] = {
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
}
RESULT_KINDS = {"tip", "cost", "duration"}
RESULTS_WITHIN_S = 30.0
BRAND = "Vexmoor"  # the catalogue question's products (no other test uses this brand)
LAPTOPS = "Electronics > Computers > Laptops"
MANUAL = [
    "Harbor 7 lantern manual. Read these instructions before the first use.",
    "Battery. The Harbor 7 lantern runs for 41 hours on one charge at the lowest setting.",
]


@dataclass(frozen=True)
class Generated:
    """A client package generated from one service's document, imported."""

    package: str
    warnings: list[str]
    defects: list[str]
    base_url: str

    def api(self, tag: str, operation: str) -> Any:
        """The module of one generated operation (``sync_detailed``, ``asyncio_detailed`` ...)."""
        return importlib.import_module(f"{self.package}.api.{tag}.{operation}")

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{self.package}.models"), name)

    def client(self) -> Any:
        module = importlib.import_module(self.package)
        return module.Client(
            base_url=self.base_url,
            raise_on_unexpected_status=True,
            timeout=httpx.Timeout(30.0),
        )


def _warning_text(error: Any) -> str:
    return f"{error.header} {error.detail or ''}".strip()


def import_unset(package_dir: Path) -> list[str]:
    """Add ``from <package>.types import Unset`` to each generated module that uses ``Unset``
    without importing it (openapi-python-client#1451); the modules' paths in the package."""
    fixed: list[str] = []
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text())
        bound = {  # imported or defined (types.py defines it)
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        } | {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
        used = any(isinstance(n, ast.Name) and n.id == "Unset" for n in ast.walk(tree))
        if used and "Unset" not in bound:
            relative = path.relative_to(package_dir)
            last_import = max(
                n.end_lineno or n.lineno
                for n in tree.body
                if isinstance(n, ast.Import | ast.ImportFrom)
            )
            lines = path.read_text().splitlines(keepends=True)
            lines.insert(last_import, f"from {'.' * len(relative.parts)}types import Unset\n")
            path.write_text("".join(lines))
            fixed.append(relative.as_posix())
    return fixed


def generate_client(base_url: str, package: str, directory: Path) -> Generated:
    """Fetch ``base_url``'s document, generate package ``package`` into ``directory``."""
    response = httpx.get(f"{base_url}/openapi.json", timeout=10.0)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    spec = directory / f"{package}.json"
    spec.write_text(json.dumps(document))
    assert RUFF is not None, "ruff (dev extra) is not installed"
    config = Config.from_sources(
        ConfigFile(
            project_name_override=package,
            package_name_override=package,
            post_hooks=POST_HOOKS,
            content_type_overrides=CONTENT_TYPE_OVERRIDES,
        ),
        MetaType.NONE,
        spec,
        "utf-8",
        False,  # overwrite
        directory / package,
    )
    errors = generate(config=config)
    failures = [_warning_text(e) for e in errors if e.level is ErrorLevel.ERROR]
    assert not failures, "\n".join(failures)
    assert (directory / package / "client.py").is_file()
    defects = import_unset(directory / package)
    return Generated(package, [_warning_text(e) for e in errors], defects, base_url)


def check_generation(service: str, gen: Generated) -> None:
    """Only the known warnings and defects (see :data:`KNOWN_WARNINGS`, :data:`KNOWN_DEFECTS`)."""
    known = KNOWN_WARNINGS[service]
    unknown = [
        w
        for w in gen.warnings
        if not any(f"parsing {op} " in w and phrase in w for op, phrase in known.items())
    ]
    assert unknown == [], "\n".join(unknown)
    assert gen.defects == KNOWN_DEFECTS[service]


def undeclared(value: Any, where: str = "") -> list[str]:
    """Fields of a parsed answer the document does not declare (``additional_properties``)."""
    if isinstance(value, list):
        return [u for i, item in enumerate(value) for u in undeclared(item, f"{where}[{i}]")]
    if not attrs.has(type(value)):
        return []
    found = [f"{where}.{key}" for key in getattr(value, "additional_properties", {})]
    for field in attrs.fields(type(value)):
        if field.name != "additional_properties":
            found += undeclared(getattr(value, field.name), f"{where}.{field.name}")
    return found


def parsed(response: Any, status: int, model: Any) -> Any:
    """The generated ``Response``'s parsed body: ``status``, an instance of ``model``, every
    field declared."""
    assert response.status_code == status, response.content
    body = response.parsed
    assert isinstance(body, model), (type(body), response.content)
    assert undeclared(body) == [], response.content
    return body


def problem(gen: Generated, response: Any, status: int) -> Any:
    """The generated ``Problem`` of an error answer (application/problem+json)."""
    assert response.status_code == status, response.content
    assert response.headers["content-type"] == "application/problem+json"
    body = response.parsed
    assert isinstance(body, gen.model("Problem")), (type(body), response.content)
    assert body.status == status
    assert body.type_.startswith(PROBLEM_TYPE_BASE)
    assert body.title and body.detail
    return body


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("generated-clients")
    sys.path.insert(0, str(directory))
    yield directory
    sys.path.remove(str(directory))
    for name in [m for m in sys.modules if m.split(".")[0].startswith("gen_")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def classifier_url(stack: Stack, stack_settings: StackSettings) -> str:
    return f"http://{stack_settings.host}:{stack_settings.classifier_port}"


@pytest.fixture(scope="module")
def ride_duration_client(ride_duration_url: str, generated_dir: Path) -> Generated:
    return generate_client(ride_duration_url, "gen_ride_duration", generated_dir)


@pytest.fixture(scope="module")
def backend_client(backend_url: str, generated_dir: Path) -> Generated:
    return generate_client(backend_url, "gen_backend", generated_dir)


@pytest.fixture(scope="module")
def classifier_client(classifier_url: str, generated_dir: Path) -> Generated:
    return generate_client(classifier_url, "gen_classifier", generated_dir)


@pytest.fixture(scope="module")
def chatbot_client(chatbot_url: str, generated_dir: Path) -> Generated:
    return generate_client(chatbot_url, "gen_chatbot", generated_dir)


def test_ride_duration_predict_and_batch(ride_duration_client: Generated) -> None:
    gen = ride_duration_client
    check_generation("ride_duration", gen)
    predict = gen.api("ride_duration", "predict_v1_predict_post")
    batch = gen.api("ride_duration", "predict_batch_v1_predict_batch_post")
    ride = gen.model("Ride")
    with gen.client() as client:
        one = parsed(
            predict.sync_detailed(client=client, body=ride.from_dict(RIDE)),
            200,
            gen.model("Prediction"),
        )
        assert isinstance(one.prediction_id, uuid.UUID)
        assert one.duration_minutes > 1.0
        assert isinstance(one.model, gen.model("ModelRef"))
        assert (one.model.name, one.model.version) == ("ride_duration", "1")

        rides = [
            ride(**{**RIDE, "trip_distance": distance, "user_id": f"gen-{i}"})
            for i, distance in enumerate([0.8, 2.4, 17.9])
        ]
        many = parsed(
            batch.sync_detailed(client=client, body=gen.model("BatchRequest")(rides=rides)),
            200,
            gen.model("BatchPrediction"),
        )
        durations = [p.duration_minutes for p in many.predictions]
        assert all(isinstance(p, gen.model("Prediction")) for p in many.predictions)
        assert len(durations) == 3 and all(d > 0 for d in durations)
        assert durations[1] == pytest.approx(one.duration_minutes, abs=0.01)
        assert durations[0] < durations[2]  # a short ride is quicker than an airport run

        # An invalid ride (zone 999 of 1-265): a 422 parsed as the generated Problem.
        bad = problem(
            gen,
            predict.sync_detailed(
                client=client, body=ride.from_dict({**RIDE, "pickup_location_id": 999})
            ),
            422,
        )
        assert [e.field for e in bad.errors] == ["pickup_location_id"]
        assert isinstance(bad.errors[0], gen.model("FieldError"))
        assert bad.errors[0].in_ == gen.model("FieldErrorIn").BODY


def test_backend_ride_and_its_results(backend_client: Generated) -> None:
    gen = backend_client
    check_generation("backend", gen)
    create = gen.api("rides", "create_ride_v1_rides_post")
    get_ride = gen.api("rides", "get_ride_v1_rides_ride_id_get")
    request = gen.model("RideRequest")
    body = request.from_dict({**RIDE, "user_id": "gen-client-1", "payment_type": 1})
    key = f"gen-{uuid.uuid4()}"
    with gen.client() as client:
        response = create.sync_detailed(client=client, body=body, idempotency_key=key)
        created = parsed(response, 201, gen.model("RideCreated"))
        assert isinstance(created.ride_id, uuid.UUID)
        assert response.headers["location"] == created.links.self_
        assert created.initial_duration.reason is None
        assert created.initial_duration.duration_minutes > 1.0
        # A replay of the key answers the original ride.
        replay = parsed(
            create.sync_detailed(client=client, body=body, idempotency_key=key),
            201,
            gen.model("RideCreated"),
        )
        assert replay.ride_id == created.ride_id

        deadline = time.monotonic() + RESULTS_WITHIN_S
        while True:
            view = parsed(
                get_ride.sync_detailed(created.ride_id, client=client), 200, gen.model("RideView")
            )
            if RESULT_KINDS <= {r.kind.value for r in view.results}:
                break
            assert time.monotonic() < deadline, f"results after {RESULTS_WITHIN_S} s: {view}"
            time.sleep(0.1)
        assert view.ride_id == created.ride_id and view.ride.user_id == "gen-client-1"
        assert isinstance(view.created_at, datetime.datetime)
        results = {r.kind.value: r for r in view.results}
        assert all(isinstance(r, gen.model("RideResult")) for r in view.results)
        assert all(isinstance(r.at, datetime.datetime) for r in view.results)
        assert 0.0 <= results["tip"].value < results["cost"].value < 100.0
        assert results["tip"].unit == "USD" and results["duration"].unit == "minutes"
        assert results["duration"].value > 1.0

        # The key again with another body: a 409, parsed as the generated Problem.
        other = request.from_dict({**RIDE, "user_id": "gen-client-2"})
        problem(gen, create.sync_detailed(client=client, body=other, idempotency_key=key), 409)
        problem(gen, get_ride.sync_detailed(uuid.uuid4(), client=client), 404)


def test_classifier_classify_and_feedback(classifier_client: Generated) -> None:
    gen = classifier_client
    check_generation("classifier", gen)
    classify = gen.api("classifier", "classify_v1_classify_post")
    feedback = gen.api("classifier", "feedback_v1_feedback_post")
    # The request body is an object with `anyOf` (a title, a description or an image) next to
    # its `properties`: the generator makes one model per anyOf branch, each with that branch's
    # field only, so the other fields travel as additional properties.
    body = gen.model("ClassifyV1ClassifyPostJsonBodyType0")(
        title="Sonix wireless noise cancelling headphones"
    )
    body["description"] = "Over ear headphones with 40mm drivers."
    body["top_k"] = 3
    with gen.client() as client:
        answer = parsed(
            classify.sync_detailed(client=client, body=body), 200, gen.model("Classification")
        )
        assert isinstance(answer.prediction_id, uuid.UUID)
        assert len(answer.top_k) == 3
        assert all(isinstance(s, gen.model("CategoryScore")) for s in answer.top_k)
        assert answer.category == answer.top_k[0].category
        assert 0.0 < answer.probability <= 1.0
        assert answer.top_k[0].probability >= answer.top_k[1].probability

        truth = answer.top_k[1].category
        request = gen.model("FeedbackRequest")
        stored = parsed(
            feedback.sync_detailed(
                client=client,
                body=request(prediction_id=answer.prediction_id, true_category=truth),
            ),
            200,
            gen.model("Feedback"),
        )
        assert (stored.prediction_id, stored.true_category) == (answer.prediction_id, truth)
        assert stored.correct is False
        assert stored.model.name == answer.model.name

        unknown = uuid.uuid4()
        missing = problem(
            gen,
            feedback.sync_detailed(
                client=client, body=request(prediction_id=unknown, true_category=truth)
            ),
            404,
        )
        assert str(unknown) in missing.detail


async def _catalogue(stack_settings: StackSettings) -> None:
    """Three laptops of :data:`BRAND` in the products table, the corpus told of the change."""
    products = [
        Product("VX-1", f"{BRAND} Air 13 laptop", "Light.", BRAND, 459.0, LAPTOPS),
        Product("VX-2", f"{BRAND} Book 14 laptop", "Fast.", BRAND, 489.0, LAPTOPS),
        Product("VX-3", f"{BRAND} Pro 16 laptop", "Big.", BRAND, 949.0, LAPTOPS),
    ]
    pool = await asyncpg.create_pool(stack_settings.database_url, min_size=0, max_size=2)
    triton = TritonClient(stack_settings.triton_grpc_url, timeout_s=10.0)
    try:
        await ingest_products(pool, Embedder(triton), products)
    finally:
        await triton.close()
        await pool.close()
    nc = await connect(stack_settings.nats_url, name="test-generated-client")
    try:
        await bump_generation(nc.jetstream())
    finally:
        await nc.close()


async def test_chatbot_upload_and_questions(
    chatbot_client: Generated, stack_settings: StackSettings
) -> None:
    gen = chatbot_client
    check_generation("chatbot", gen)
    upload = gen.api("chatbot", "upload_document_v1_documents_post")
    status_of = gen.api("chatbot", "document_status_v1_documents_document_id_get")
    chat = gen.api("chatbot", "chat_v1_chat_post")
    ask = gen.model("ChatV1ChatPostChatRequest")
    file_type = importlib.import_module(f"{gen.package}.types").File
    async with gen.client() as client:
        pdf = io.BytesIO(make_pdf(MANUAL))
        files = gen.model("UploadDocumentV1DocumentsPostFilesBody")(
            file=file_type(payload=pdf, file_name="harbor-7.pdf", mime_type="application/pdf")
        )
        response = await upload.asyncio_detailed(client=client, body=files)
        accepted = parsed(response, 202, gen.model("UploadAccepted"))
        assert response.headers["location"] == accepted.status_url
        assert accepted.pages == 2
        deadline = time.monotonic() + 60
        while True:
            status = parsed(
                await status_of.asyncio_detailed(accepted.id, client=client),
                200,
                gen.model("DocumentStatus"),
            )
            if status.status.value != "processing":
                break
            assert time.monotonic() < deadline, "still processing after 60 s"
            await asyncio.sleep(0.2)
        assert (status.status.value, status.pages, status.error) == ("ready", 2, None)

        body = ask(question="How long does the Harbor 7 lantern run on one charge?")
        answer = parsed(
            await chat.asyncio_detailed(client=client, body=body), 200, gen.model("ChatResponse")
        )
        assert answer.answered_by.value == "retrieval"
        assert "41 hours" in answer.answer
        first = answer.citations[0]
        assert isinstance(first, gen.model("CitationOut"))
        assert (first.source.value, first.document, first.page) == ("documents", "harbor-7.pdf", 2)
        assert first.document_id == str(accepted.id)
        assert all(isinstance(r, gen.model("RetrievedOut")) for r in answer.retrieved)

        await _catalogue(stack_settings)
        body = ask(question=f"What is the cheapest {BRAND} laptop under $500?")
        cheapest = parsed(
            await chat.asyncio_detailed(client=client, body=body), 200, gen.model("ChatResponse")
        )
        assert (cheapest.answered_by.value, cheapest.generation.value) == ("facts", "sql")
        assert [c.product_id for c in cheapest.citations] == ["VX-1", "VX-2"]
        assert {c.source.value for c in cheapest.citations} == {"products"}
        assert "459.00" in cheapest.answer
        # The conversation goes on by its id (a UUID in the generated model).
        body = ask(
            question=f"How many products by {BRAND}?", conversation_id=cheapest.conversation_id
        )
        count = parsed(
            await chat.asyncio_detailed(client=client, body=body), 200, gen.model("ChatResponse")
        )
        assert count.conversation_id == cheapest.conversation_id and count.count == 3

        blank = problem(
            gen, await chat.asyncio_detailed(client=client, body=ask(question="   ")), 422
        )
        assert [e.field for e in blank.errors] == ["question"]
        unknown = ask(question="hello", conversation_id=uuid.uuid4())
        problem(gen, await chat.asyncio_detailed(client=client, body=unknown), 404)
