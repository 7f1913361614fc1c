"""Estimated quality before the labels arrive: CBPE over a rolling window of predictions.

Confidence-based performance estimation (CBPE, as NannyML defines it): with calibrated
probabilities (the classifier's ONNX graph applies its temperature, ``models.classifier.train``),
a prediction of class ``c`` with probability vector ``p`` is expected to add ``p[c]`` to class
``c``'s true positives, ``1 - p[c]`` to its false positives, and ``p[k]`` to the false negatives
of every other class ``k``. The window's expected confusion cells give, per class,
``F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k)``; the estimated macro-F1 is their mean over every
class of the model (each has a non-zero expected support), the estimated accuracy
``sum_k TP_k / n``.

Per serving version (``model``, ``version``), the last ``CLASSIFIER_ESTIMATE_WINDOW`` predictions,
labelled or not, are kept with running sums of TP, FP and FN per class: a prediction entering
adds its contribution, the one it pushes out subtracts its own, so a prediction costs O(classes)
and the window is never recomputed. The gauges (``metrics.ESTIMATED_*``) are read at scrape
time from those sums. The share of the window labelled so far comes from the feedback this
process receives (:func:`labelled`). The card's ECE of the version (``calibration.ece_after``)
is exported with the window (``metrics.CARD_ECE``); a version's gauges go with its window when
another version of the model answers.

The window lives in the process: with several replicas each one estimates from the predictions
it served (labelled share: from the feedback it received), unlike the labelled gauges, which
every replica recomputes from Postgres.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from services.classifier import metrics
from services.classifier.predictor import Scores
from services.classifier.settings import ClassifierSettings

FloatArray = npt.NDArray[np.float64]

GAUGES: Final = (
    metrics.ESTIMATED_MACRO_F1,
    metrics.ESTIMATED_ACCURACY,
    metrics.ESTIMATE_PREDICTIONS,
    metrics.ESTIMATE_LABELLED_SHARE,
    metrics.CARD_ECE,
)


@dataclass(frozen=True)
class Estimate:
    """The window's estimate: macro-F1, accuracy, predictions in it and the share labelled."""

    macro_f1: float
    accuracy: float
    predictions: int
    labelled_share: float


@dataclass
class _Entry:
    predicted: int
    probability: FloatArray
    labelled: bool = False


@dataclass
class VersionWindow:
    """The last ``size`` predictions of one model version and their expected confusion sums."""

    classes: int
    size: int
    tp: FloatArray = field(init=False)
    fp: FloatArray = field(init=False)
    fn: FloatArray = field(init=False)
    labelled_count: int = field(init=False, default=0)
    _order: deque[object] = field(init=False, default_factory=deque)
    _entries: dict[object, _Entry] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.classes < 1 or self.size < 1:
            raise ValueError("a window needs at least one class and one prediction")
        self.tp = np.zeros(self.classes)
        self.fp = np.zeros(self.classes)
        self.fn = np.zeros(self.classes)

    def __len__(self) -> int:
        return len(self._order)

    def _apply(self, entry: _Entry, sign: float) -> None:
        c, p = entry.predicted, entry.probability
        self.fn += sign * p
        self.fn[c] -= sign * p[c]
        self.tp[c] += sign * p[c]
        self.fp[c] += sign * (1.0 - p[c])

    def add(self, key: object, probabilities: npt.ArrayLike) -> None:
        """One prediction (``key``: its id) with its calibrated probability vector."""
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if p.shape[0] != self.classes:
            raise ValueError(f"{p.shape[0]} probabilities for a window of {self.classes} classes")
        if key in self._entries:
            return
        if len(self._order) >= self.size:
            oldest = self._entries.pop(self._order.popleft())
            self._apply(oldest, -1.0)
            self.labelled_count -= oldest.labelled
        entry = _Entry(predicted=int(p.argmax()), probability=p)
        self._entries[key] = entry
        self._order.append(key)
        self._apply(entry, 1.0)

    def mark_labelled(self, key: object) -> bool:
        """Count the prediction ``key`` as labelled (False: not in the window, or already)."""
        entry = self._entries.get(key)
        if entry is None or entry.labelled:
            return False
        entry.labelled = True
        self.labelled_count += 1
        return True

    def macro_f1(self) -> float:
        if not self._order:
            return 0.0
        tp = np.clip(self.tp, 0.0, None)  # running sums: keep rounding residue non-negative
        denominator = 2.0 * tp + np.clip(self.fp, 0.0, None) + np.clip(self.fn, 0.0, None)
        f1 = np.divide(2.0 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        return float(f1.mean())

    def accuracy(self) -> float:
        return float(np.clip(self.tp, 0.0, None).sum() / len(self._order)) if self._order else 0.0

    def labelled_share(self) -> float:
        return self.labelled_count / len(self._order) if self._order else 0.0

    def estimate(self) -> Estimate:
        return Estimate(self.macro_f1(), self.accuracy(), len(self._order), self.labelled_share())


class Estimates:
    """The windows of the versions serving now, one per model, exported as gauges."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], VersionWindow] = {}

    def window(self, model: str, version: str) -> VersionWindow | None:
        return self._windows.get((model, version))

    def record(
        self,
        model: str,
        version: str,
        key: object,
        probabilities: npt.ArrayLike,
        *,
        window: int,
        ece: float | None = None,
    ) -> None:
        """A prediction of ``version``; a new version of ``model`` replaces the old window.

        ``ece``: the version's card ECE, exported with its window."""
        current = self._windows.get((model, version))
        size = np.asarray(probabilities).size
        # A window of another class count is stale (a rebuilt repository reuses version 1): it
        # is replaced, never allowed to fail the prediction that meets it.
        if current is None or current.classes != size:
            for old in [k for k in self._windows if k[0] == model]:
                self.forget(*old)
            current = self._windows[(model, version)] = VersionWindow(classes=size, size=window)
            _export(model, version, current)
            if ece is not None:
                metrics.CARD_ECE.labels(model, version).set(ece)
        current.add(key, probabilities)

    def labelled(self, model: str, version: str, key: object) -> None:
        """The prediction ``key`` of ``version`` got its first label."""
        current = self._windows.get((model, version))
        if current is not None:
            current.mark_labelled(key)

    def forget(self, model: str, version: str) -> None:
        """Drop a version's window and its gauges."""
        self._windows.pop((model, version), None)
        for gauge in GAUGES:
            try:
                gauge.remove(model, version)
            except KeyError:
                pass


def _export(model: str, version: str, window: VersionWindow) -> None:
    """Gauges that read the window's sums when scraped (nothing on the classify path)."""
    metrics.ESTIMATED_MACRO_F1.labels(model, version).set_function(window.macro_f1)
    metrics.ESTIMATED_ACCURACY.labels(model, version).set_function(window.accuracy)
    metrics.ESTIMATE_PREDICTIONS.labels(model, version).set_function(lambda: len(window))
    metrics.ESTIMATE_LABELLED_SHARE.labels(model, version).set_function(window.labelled_share)


ESTIMATES: Final = Estimates()
"""The process's windows (the classifier records every stored prediction here)."""


def record(model: str, scores: Scores, key: object, settings: ClassifierSettings) -> None:
    """Add one stored prediction (``scores.distribution``) to its version's window; scores
    without a distribution, or with ``CLASSIFIER_ESTIMATE_QUALITY`` off, are not counted."""
    if not settings.estimate_quality or scores.distribution.size == 0:
        return
    ESTIMATES.record(
        model,
        scores.model_version,
        key,
        scores.distribution,
        window=settings.estimate_window,
        ece=scores.ece,
    )


def labelled(model: str, version: str, key: object) -> None:
    """A label for the prediction ``key`` of ``version`` (a repeat counts once)."""
    ESTIMATES.labelled(model, version, key)
