"""Classifier training on a small catalogue: quality, ONNX equality, card, PNG, repository."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image
from tritonclient.grpc import model_config_pb2

from models import repository
from models.classifier.data import generate_catalogue
from models.classifier.train import (
    TrainedClassifier,
    catalogue_features,
    onnx_probabilities,
    train_classifier,
)
from services.domain.catalog.features import N_FEATURES

ROWS = 1_200


@pytest.fixture(scope="module")
def trained() -> TrainedClassifier:
    return train_classifier(generate_catalogue(ROWS, seed=3), seed=3)


def test_quality_beats_baselines(trained: TrainedClassifier) -> None:
    metrics = trained.card["metrics"]
    assert metrics["macro_f1"] > 0.8  # small data; the full build reaches >= 0.9
    assert metrics["macro_f1"] > metrics["image_only_macro_f1"]
    assert metrics["macro_f1"] > 5 * metrics["majority_macro_f1"]
    assert metrics["onnx_max_abs_diff"] < 1e-4
    assert set(metrics["per_class"]) == set(trained.card["classes"])
    matrix = np.array(trained.card["confusion_matrix"])
    assert matrix.shape == (22, 22) and matrix.sum() == trained.card["data"]["rows_test"]


def test_onnx_outputs_probabilities(trained: TrainedClassifier) -> None:
    x = catalogue_features(generate_catalogue(40, seed=99))
    probabilities = onnx_probabilities(trained.onnx_bytes, x)
    assert probabilities.shape == (40, 22) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_card_and_confusion_png(trained: TrainedClassifier) -> None:
    card = trained.card
    assert card["name"] == "classifier" and card["classes"] == sorted(card["classes"])
    assert card["inputs"] == {"features": {"dtype": "float32", "shape": [-1, N_FEATURES]}}
    assert card["outputs"] == {"probabilities": {"dtype": "float32", "shape": [-1, 22]}}
    json.dumps(card)
    png = Image.open(io.BytesIO(trained.artifacts["confusion_matrix.png"]))
    assert png.format == "PNG" and png.size[0] > 400


def test_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError, match="not in classes"):
        train_classifier(generate_catalogue(60, seed=1), seed=1, classes=["A > B"])


def test_repository_builds_the_classifier(tmp_path: Path) -> None:
    spec = next(s for s in repository.MODELS if s.name == "classifier")
    (result,) = repository.build_models(
        tmp_path, seed=2, rows=1_000, catalogue_rows=600, models=(spec,), log=lambda _m: None
    )
    assert result.built and result.version == 1
    assert {p.name for p in result.path.iterdir()} == {
        "model.onnx",
        "model.py",
        "model_card.json",
        "confusion_matrix.png",
    }
    config = text_format.Parse(
        (tmp_path / "classifier" / "configs" / "local.pbtxt").read_text(),
        model_config_pb2.ModelConfig(),
    )
    assert config.backend == "python"
    assert [(i.name, list(i.dims)) for i in config.input] == [("features", [N_FEATURES])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("probabilities", [-1])]
    card = json.loads(config.parameters["model_card.v1"].string_value)
    assert card["data"]["rows"] == 600 and len(card["classes"]) == 22
    assert card["code_hash"] == repository.code_hash(spec.code_paths)
