"""Calibration of the classifier's probabilities: ECE, temperature scaling, per-class isotonic.

- ``expected_calibration_error(probabilities, labels)``: top-label ECE over ``ECE_BINS`` (15)
  equal-width confidence bins, ``sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|``
  (Guo et al. 2017); bin ``b`` holds confidences in ``(b/15, (b+1)/15]`` (0 goes to the first).
- ``fit_temperature(logits, labels)``: the one ``T > 0`` minimising the negative log-likelihood
  of ``softmax(logits / T)`` on held-out data; it keeps the argmax (F1 and accuracy unchanged)
  and is one Div node in the ONNX graph.
- ``IsotonicCalibrator``: one isotonic regression per class (one-vs-rest on that class's
  probability), renormalised; measured against temperature at training time (card:
  ``calibration.isotonic_ece``), not exported (no ONNX op for it, and it can change the argmax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression

ECE_BINS: Final = 15
TEMPERATURE_BOUNDS: Final = (0.05, 20.0)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
    """Row-wise ``softmax(logits / temperature)`` (stable)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def expected_calibration_error(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, bins: int = ECE_BINS
) -> float:
    """Top-label ECE with ``bins`` equal-width bins (0.0 for no rows)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.shape[0] == 0:
        return 0.0
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    acc_sum = np.bincount(index, weights=correct, minlength=bins)
    return float(np.abs(acc_sum - conf_sum).sum() / p.shape[0])


def negative_log_likelihood(logits: npt.ArrayLike, labels: npt.ArrayLike, t: float) -> float:
    """Mean NLL of ``softmax(logits / t)``."""
    z = np.asarray(logits, dtype=np.float64) / t
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    y = np.asarray(labels, dtype=np.int64)
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The temperature minimising held-out NLL (searched on log T within the bounds)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return negative_log_likelihood(z, y, float(np.exp(log_t)))

    # Golden-section search on log T (the NLL of temperature scaling is unimodal in T).
    lo, hi = float(np.log(TEMPERATURE_BOUNDS[0])), float(np.log(TEMPERATURE_BOUNDS[1]))
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > 1e-6:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2.0))


@dataclass(frozen=True)
class IsotonicCalibrator:
    """One isotonic map per class on that class's probability, rows renormalised."""

    regressors: tuple[IsotonicRegression | None, ...]

    @classmethod
    def fit(cls, probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> IsotonicCalibrator:
        p = np.asarray(probabilities, dtype=np.float64)
        y = np.asarray(labels, dtype=np.int64)
        regressors: list[IsotonicRegression | None] = []
        for k in range(p.shape[1]):
            target = (y == k).astype(np.float64)
            if target.min(initial=1.0) == target.max(initial=0.0):
                regressors.append(None)  # the class is absent (or alone): keep its column
                continue
            regressor = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            regressor.fit(p[:, k], target)
            regressors.append(regressor)
        return cls(tuple(regressors))

    def transform(self, probabilities: npt.ArrayLike) -> FloatArray:
        p = np.asarray(probabilities, dtype=np.float64)
        out = np.column_stack(
            [
                p[:, k] if r is None else np.asarray(r.predict(p[:, k]), dtype=np.float64)
                for k, r in enumerate(self.regressors)
            ]
        )
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.asarray(np.where(total > 0, out / np.where(total > 0, total, 1.0), uniform))
