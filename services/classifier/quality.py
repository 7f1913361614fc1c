"""Quality of labelled predictions: macro-F1 and accuracy (pure Python, no sklearn at serving).

Macro-F1 follows sklearn's ``f1_score(average="macro", zero_division=0)``: the mean F1 over every
category that occurs as a true label or a prediction in the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Quality:
    macro_f1: float
    accuracy: float
    labels: int


def quality(predicted: Sequence[str], true: Sequence[str]) -> Quality:
    """Macro-F1 and accuracy of ``predicted`` against ``true`` (same length)."""
    if len(predicted) != len(true):
        raise ValueError("predicted and true differ in length")
    if not true:
        return Quality(0.0, 0.0, 0)
    tp: Counter[str] = Counter()
    pred_count: Counter[str] = Counter(predicted)
    true_count: Counter[str] = Counter(true)
    for p, t in zip(predicted, true, strict=True):
        if p == t:
            tp[p] += 1
    classes = set(pred_count) | set(true_count)
    f1s = []
    for c in classes:
        denominator = pred_count[c] + true_count[c]
        f1s.append(2.0 * tp[c] / denominator if denominator else 0.0)
    return Quality(
        macro_f1=sum(f1s) / len(f1s),
        accuracy=sum(tp.values()) / len(true),
        labels=len(true),
    )
