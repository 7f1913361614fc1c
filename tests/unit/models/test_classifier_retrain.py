"""Classifier retraining: the quality gate against the serving version, feedback as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from models import repository
from models.classifier.retrain import classifier_spec, retrain_classifier


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("repo")
    repository.build_models(
        path,
        seed=1,
        rows=1_000,
        catalogue_rows=600,
        models=(classifier_spec(),),
        log=lambda _m: None,
    )
    return path


def _versions(repo: Path) -> list[int]:
    return sorted(int(p.name) for p in (repo / "classifier").iterdir() if p.name.isdigit())


def test_gate_rejects_and_writes_nothing(repo: Path) -> None:
    outcome = retrain_classifier(repo, seed=2, rows=500, min_gain=1.0, log=lambda _m: None)
    assert not outcome.accepted and outcome.result is None
    assert outcome.serving_version == 1 and outcome.serving_macro_f1 is not None
    assert 0.0 < outcome.serving_macro_f1 <= 1.0
    assert _versions(repo) == [1]
    assert outcome.reason.startswith("macro-F1 ") and "ECE" not in outcome.reason


def test_gate_rejects_a_worse_calibrated_candidate(repo: Path) -> None:
    # F1 passes (min_gain -1), calibration cannot: ECE must be under the serving one's - 1.
    outcome = retrain_classifier(
        repo, seed=2, rows=500, min_gain=-1.0, max_ece_increase=-1.0, log=lambda _m: None
    )
    assert not outcome.accepted and outcome.result is None and _versions(repo) == [1]
    assert outcome.candidate_ece is not None and outcome.serving_ece is not None
    assert outcome.reason == (
        f"ECE {outcome.candidate_ece:.4f} > serving {outcome.serving_ece:.4f} + -1.0"
    )
    assert outcome.candidate_ece == outcome.card["calibration"]["ece_after"]
    assert outcome.card["metrics"]["serving_ece_on_same_test"] == round(outcome.serving_ece, 4)
    assert 0.0 < outcome.serving_ece < 0.2


def test_accepted_candidate_becomes_the_next_version_with_feedback(repo: Path) -> None:
    card_v1 = json.loads((repo / "classifier" / "1" / "model_card.json").read_text())
    serving_classes = card_v1["classes"]
    feedback = pd.DataFrame(
        {
            "prediction_id": ["a", "b"],
            "title": ["sonix wireless headphones", "oakridge office chair"],
            "description": ["", "lumbar support"],
            "true_category": [serving_classes[0], serving_classes[1]],
            "labelled_at": [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)],
        }
    )
    outcome = retrain_classifier(
        repo, seed=3, rows=500, feedback=feedback, min_gain=-1.0, log=lambda _m: None
    )
    assert outcome.accepted and outcome.result is not None and outcome.result.version == 2
    assert _versions(repo) == [1, 2]
    card = outcome.result.card
    assert card["classes"] == serving_classes  # the serving column order is kept
    assert card["data"]["window"]["feedback_rows"] == 2
    assert card["data"]["window"]["feedback_from"].startswith("2026-01-01")
    assert card["metrics"]["serving_macro_f1_on_same_test"] == outcome.serving_macro_f1
    assert (outcome.result.path / "confusion_matrix.png").is_file()
    assert outcome.reason.startswith("macro-F1 ") and " and ECE " in outcome.reason
