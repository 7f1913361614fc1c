"""Rolling quality figures agree with sklearn's macro-F1 and accuracy."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from services.classifier.quality import quality


def test_matches_sklearn_on_random_labels() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 200))
        true = [f"c{int(v)}" for v in rng.integers(0, 6, size=n)]
        pred = [t if rng.random() < 0.7 else f"c{int(rng.integers(0, 8))}" for t in true]
        got = quality(pred, true)
        assert np.isclose(got.macro_f1, f1_score(true, pred, average="macro", zero_division=0))
        assert np.isclose(got.accuracy, accuracy_score(true, pred))
        assert got.labels == n


def test_empty_window() -> None:
    assert quality([], []).labels == 0
