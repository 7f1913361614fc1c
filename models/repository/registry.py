"""The model registry: every model of the repository, how it is trained, its tensors and its code.

``MODELS`` lists ride_duration (minutes), its sensor-aware variant ride_duration_sensor (the same
features and the sensor's traffic speed at pickup), tip_amount and total_amount (USD), all trained
from the same trips; classifier (product category probabilities) trained
from a product catalogue; and the packaged sentence embedder. ``code_hash`` hashes the source
files a model is built from (its ``code_paths``), so a build can tell whether it is up to date.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import pandas as pd

from models.classifier.train import MODEL_NAME as CLASSIFIER_MODEL
from models.classifier.train import OUTPUT_NAME as CLASSIFIER_OUTPUT
from models.classifier.train import train_classifier
from models.embedding.package import package_embedding_model
from models.fare.train import COST_MODEL, TIP_MODEL, train_cost_model, train_tip_model
from models.ride_duration.train import (
    INPUT_NAME,
    MODEL_NAME,
    OUTPUT_NAME,
    SENSOR_MODEL_NAME,
    train_model,
    train_sensor_model,
)
from services.domain.catalog.features import N_FEATURES as CATALOG_FEATURES
from services.domain.documents.embeddings import EMBEDDING_DIM
from services.domain.documents.embeddings import INPUT_NAMES as EMBEDDING_INPUTS
from services.domain.documents.embeddings import MODEL_NAME as EMBEDDING_MODEL
from services.domain.documents.embeddings import OUTPUT_NAME as EMBEDDING_OUTPUT
from services.domain.taxi.features import N_FEATURES, N_SENSOR_FEATURES

ROOT: Final = Path(__file__).resolve().parents[2]
"""The folder holding ``models/`` and ``services/`` (the checkout, or site-packages)."""
CODE_PATHS: Final = (
    "models/ride_duration",
    "models/triton/onnx_model.py",
    "models/repository",
    "services/domain/taxi",
)
"""Source files whose content makes up ride_duration's code hash (folders: their *.py files)."""
CLASSIFIER_CODE_PATHS: Final = (
    "models/classifier",
    "models/triton/onnx_model.py",
    "models/repository",
    "services/domain/catalog",
)
EMBEDDING_CODE_PATHS: Final = (
    "models/embedding",
    "models/triton/onnx_model.py",
    "models/repository",
    "services/domain/documents/embeddings.py",
)
CATALOGUE_ROWS: Final = 5000
"""Most products of the synthetic catalogue the classifier is trained on by default."""
MIN_CATALOGUE_ROWS: Final = 500
TRIPS_PER_PRODUCT: Final = 40
"""Default catalogue size: one product per 40 trips, 500 to 5,000 (the CLI's 200,000 trips give
5,000 products; a small test build stays small)."""
DEFAULT_TRIPS: Final = 200_000
"""Trips a build trains on unless told otherwise."""


def default_catalogue_rows(rows: int = DEFAULT_TRIPS) -> int:
    """Products of the synthetic catalogue a build of ``rows`` trips makes (and the chatbot's
    ingestion after ``modelfleet up`` loads: the same products)."""
    return min(CATALOGUE_ROWS, max(MIN_CATALOGUE_ROWS, rows // TRIPS_PER_PRODUCT))


class Trained(Protocol):
    """What a trainer returns: the ONNX bytes and the model card (without version/dates)."""

    @property
    def onnx_bytes(self) -> bytes: ...

    @property
    def card(self) -> dict[str, Any]: ...


class Trainer(Protocol):
    """A training function of the registry: its data (trips or catalogue) in, a model out."""

    def __call__(self, data: pd.DataFrame, /, *, seed: int, source: str) -> Trained: ...


@dataclass(frozen=True)
class Tensor:
    """One input or output tensor of a model's Triton config."""

    name: str
    dims: tuple[int, ...]
    """Per-request shape, without the batch dimension (-1: variable)."""
    data_type: str = "TYPE_FP32"
    """A Triton ``DataType`` name (``TYPE_FP32``, ``TYPE_INT64``, ...)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of the repository: its Triton name, output tensor, trainer and code.

    ``data`` names the training data (``"trips"``, ``"catalogue"`` or ``"none"``: a packaged
    model such as the sentence embedder); ``input_dim`` and
    ``output_dim`` are the widths of the ``features`` input and of the output tensor (-1:
    variable; the classifier has one column per category of its catalogue, named in its card).
    """

    name: str
    output: str
    train: Trainer
    code_paths: tuple[str, ...]
    unit: str
    data: str = "trips"
    input_dim: int = N_FEATURES
    output_dim: int = 1
    inputs: tuple[Tensor, ...] = ()
    """The inputs when they are not one FP32 ``features`` input of ``input_dim`` (the embedding
    model: three INT64 [-1] inputs)."""
    outputs: tuple[Tensor, ...] = ()
    """The outputs when they are not one FP32 ``output`` of ``output_dim`` (the embedding model:
    FP32 [-1, 384])."""
    max_batch_size: int | None = None
    """Largest batch Triton forms (default ``triton_config.MAX_BATCH_SIZE``)."""
    version_policy: Literal["latest", "all"] = "latest"
    """Triton version policy: ``latest`` serves the newest version only. ride_duration serves
    ``all`` its versions so a routing table can send traffic to any of them (docs/rollouts.md);
    requests naming no version get the newest."""

    def input_tensors(self) -> tuple[Tensor, ...]:
        """The inputs of the Triton config."""
        return self.inputs or (Tensor(INPUT_NAME, (self.input_dim,)),)

    def output_tensors(self) -> tuple[Tensor, ...]:
        """The outputs of the Triton config."""
        return self.outputs or (Tensor(self.output, (self.output_dim,)),)


MODELS: Final[tuple[ModelSpec, ...]] = (
    ModelSpec(MODEL_NAME, OUTPUT_NAME, train_model, CODE_PATHS, "min", version_policy="all"),
    ModelSpec(
        SENSOR_MODEL_NAME,
        OUTPUT_NAME,
        train_sensor_model,
        CODE_PATHS,
        "min",
        input_dim=N_SENSOR_FEATURES,
    ),
    ModelSpec(TIP_MODEL, TIP_MODEL, train_tip_model, (*CODE_PATHS, "models/fare"), "USD"),
    ModelSpec(COST_MODEL, COST_MODEL, train_cost_model, (*CODE_PATHS, "models/fare"), "USD"),
    ModelSpec(
        CLASSIFIER_MODEL,
        CLASSIFIER_OUTPUT,
        train_classifier,
        CLASSIFIER_CODE_PATHS,
        "macro-F1",
        data="catalogue",
        input_dim=CATALOG_FEATURES,
        output_dim=-1,  # one column per category of the training catalogue
    ),
    ModelSpec(
        EMBEDDING_MODEL,
        EMBEDDING_OUTPUT,
        package_embedding_model,
        EMBEDDING_CODE_PATHS,
        "cosine",
        data="none",
        inputs=tuple(Tensor(name, (-1,), "TYPE_INT64") for name in EMBEDDING_INPUTS),
        outputs=(Tensor(EMBEDDING_OUTPUT, (-1, EMBEDDING_DIM)),),
        max_batch_size=64,
    ),
)
"""The registry: every model ``build_models`` builds, ride_duration first."""


def code_hash(paths: tuple[str, ...] = CODE_PATHS) -> str:
    """sha256 over the relative paths and contents of the files in ``paths``."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for rel in paths:
        path = ROOT / rel
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    for path in sorted(set(files)):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
