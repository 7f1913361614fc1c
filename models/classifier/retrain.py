"""Retraining of the classifier with a quality gate (the training half of ``modelfleet train
classifier``; the job in ``services/jobs/classifier_retrain.py`` adds Postgres and Triton).

``retrain_classifier(repo_dir, ...)`` trains a candidate on the catalogue (synthetic from
``seed``/``rows``, or a real file) plus labelled feedback (title, description, true category;
feedback has no image), keeping the serving version's category order. The gate scores the
SERVING version's ONNX model on the candidate's held-out products, so both are judged on the same
data; the candidate is written as the next Triton version only when its macro-F1 is at least the
serving one's plus ``min_gain`` and its expected calibration error (ECE, top label, 15 bins) on
those products is at most the serving one's plus ``max_ece_increase`` (default
``MAX_ECE_INCREASE``: a worse-calibrated model makes the live estimated F1 less trustworthy), or
when nothing serves yet. Nothing is written otherwise; ``RetrainOutcome.reason`` says why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from models.classifier.calibration import expected_calibration_error
from models.classifier.data import CATALOGUE_COLUMNS, generate_catalogue, load_catalogue
from models.classifier.train import MODEL_NAME, onnx_probabilities, train_classifier
from models.repository import MODELS, BuildResult, ModelSpec, code_hash, publish_version

_logger = logging.getLogger(__name__)

MAX_ECE_INCREASE = 0.02
"""Default of the gate's ECE margin: the candidate's ECE may exceed the serving version's by at
most this much (both measured on the candidate's held-out products)."""
FEEDBACK_COLUMNS = ("prediction_id", "title", "description", "true_category", "labelled_at")


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retraining run decided and measured."""

    accepted: bool
    candidate_macro_f1: float
    serving_version: int | None
    serving_macro_f1: float | None
    """The serving version's macro-F1 on the candidate's held-out products."""
    data_window: dict[str, Any]
    card: dict[str, Any]
    result: BuildResult | None
    """The written version (accepted runs only)."""
    reason: str = ""
    """Why the gate decided so (the failed condition of a rejected candidate)."""
    candidate_ece: float | None = None
    serving_ece: float | None = None
    """The serving version's ECE on the candidate's held-out products."""


def classifier_spec() -> ModelSpec:
    return next(spec for spec in MODELS if spec.name == MODEL_NAME)


def _serving(model_dir: Path) -> tuple[int, dict[str, Any]] | None:
    versions = (
        sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
        if model_dir.is_dir()
        else []
    )
    for version in reversed(versions):
        try:
            card = json.loads((model_dir / str(version) / "model_card.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and (model_dir / str(version) / "model.onnx").is_file():
            return version, card
    return None


def feedback_products(feedback: pd.DataFrame) -> pd.DataFrame:
    """Labelled feedback (``FEEDBACK_COLUMNS``) as catalogue rows without images."""
    return pd.DataFrame(
        {
            "product_id": [f"feedback-{p}" for p in feedback["prediction_id"]],
            "title": feedback["title"].astype(str),
            "description": feedback["description"].astype(str),
            "brand": "",
            "price": np.nan,
            "category_path": feedback["true_category"].astype(str),
            "image": None,
            "image_bytes": None,
        },
        columns=list(CATALOGUE_COLUMNS),
    )


def retrain_classifier(
    repo_dir: Path,
    *,
    seed: int,
    rows: int,
    catalogue_path: Path | None = None,
    feedback: pd.DataFrame | None = None,
    min_gain: float = 0.0,
    max_ece_increase: float = MAX_ECE_INCREASE,
    log: Callable[[str], None] = _logger.info,
) -> RetrainOutcome:
    """Train a candidate, gate it against the serving version, write it if it passes."""
    spec = classifier_spec()
    model_dir = Path(repo_dir) / spec.name
    serving = _serving(model_dir)
    if catalogue_path is not None:
        catalogue = load_catalogue(catalogue_path)
        if len(catalogue) > rows:
            catalogue = catalogue.sample(n=rows, random_state=seed)
        source = str(catalogue_path)
    else:
        catalogue = generate_catalogue(rows, seed=seed)
        source = "synthetic-catalogue"
    labelled = feedback if feedback is not None else pd.DataFrame(columns=FEEDBACK_COLUMNS)
    if len(labelled):
        catalogue = pd.concat([catalogue, feedback_products(labelled)], ignore_index=True)
    categories = set(catalogue["category_path"].astype(str))
    classes: list[str] = sorted(categories)
    if serving is not None:
        served = [str(c) for c in serving[1].get("classes", [])]
        if categories <= set(served):  # keep the serving column order when possible
            classes = served
    log(
        f"classifier: training a candidate on {len(catalogue) - len(labelled)} catalogue "
        f"products + {len(labelled)} labelled predictions"
    )
    trained = train_classifier(catalogue, seed=seed, source=source, classes=classes)
    candidate = float(trained.card["metrics"]["macro_f1"])
    candidate_ece = float(trained.card["calibration"]["ece_after"])
    serving_f1: float | None = None
    serving_ece: float | None = None
    if serving is not None and trained.test_features is not None:
        served_classes = [str(c) for c in serving[1].get("classes", [])]
        onnx_bytes = (model_dir / str(serving[0]) / "model.onnx").read_bytes()
        probabilities = onnx_probabilities(onnx_bytes, trained.test_features)
        predicted = [served_classes[int(i)] for i in probabilities.argmax(axis=1)]
        truth = [
            classes[int(i)]
            for i in (trained.test_labels if trained.test_labels is not None else [])
        ]
        serving_f1 = float(f1_score(truth, predicted, average="macro", zero_division=0))
        # Its ECE on its own columns; a true class it lacks counts as a wrong prediction.
        column = {name: i for i, name in enumerate(served_classes)}
        served_truth = np.array([column.get(name, -1) for name in truth], dtype=np.int64)
        serving_ece = expected_calibration_error(probabilities, served_truth)
    window: dict[str, Any] = {
        "catalogue": source,
        "seed": seed,
        "catalogue_rows": int(len(catalogue) - len(labelled)),
        "feedback_rows": int(len(labelled)),
    }
    if len(labelled):
        window["feedback_from"] = str(pd.to_datetime(labelled["labelled_at"]).min())
        window["feedback_to"] = str(pd.to_datetime(labelled["labelled_at"]).max())
    serving_version = serving[0] if serving is not None else None
    reasons: list[str] = []
    if serving_f1 is not None and candidate < serving_f1 + min_gain:
        reasons.append(f"macro-F1 {candidate:.4f} < serving {serving_f1:.4f} + {min_gain}")
    if serving_ece is not None and candidate_ece > serving_ece + max_ece_increase:
        reasons.append(f"ECE {candidate_ece:.4f} > serving {serving_ece:.4f} + {max_ece_increase}")
    accepted = not reasons
    if serving_f1 is None:
        reason = "nothing serves yet"
    elif accepted:
        reason = (
            f"macro-F1 {candidate:.4f} >= serving {serving_f1:.4f} + {min_gain} and "
            f"ECE {candidate_ece:.4f} <= serving {serving_ece:.4f} + {max_ece_increase}"
        )
    else:
        reason = "; ".join(reasons)
    card = {**trained.card, "data": {**trained.card["data"], "window": window}}
    card["metrics"] = {
        **card["metrics"],
        "serving_macro_f1_on_same_test": serving_f1,
        "serving_ece_on_same_test": None if serving_ece is None else round(serving_ece, 4),
    }
    if not accepted:
        log(f"classifier: candidate rejected: {reason}")
        return RetrainOutcome(
            False,
            candidate,
            serving_version,
            serving_f1,
            window,
            card,
            None,
            reason=reason,
            candidate_ece=candidate_ece,
            serving_ece=serving_ece,
        )
    gated = _Trained(onnx_bytes=trained.onnx_bytes, card=card, artifacts=trained.artifacts)
    key = {
        "code_hash": code_hash(spec.code_paths),
        "seed": seed,
        "rows": rows,
        "retrain": window,
    }
    result = publish_version(Path(repo_dir), spec, gated, key=key, log=log)
    return RetrainOutcome(
        True,
        candidate,
        serving_version,
        serving_f1,
        window,
        card,
        result,
        reason=reason,
        candidate_ece=candidate_ece,
        serving_ece=serving_ece,
    )


@dataclass(frozen=True)
class _Trained:
    onnx_bytes: bytes
    card: dict[str, Any]
    artifacts: dict[str, bytes]
