"""Product -> features -> Triton -> category probabilities. The only place the service touches
the model.

Features come from :mod:`services.domain.catalog.features`, the module training uses too. The
category of each output column is in the model card of the version that answered (the card
travels in Triton's model config, parameter ``model_card.v<N>``, key ``classes``), looked up
once per version, so a new version with other categories is read correctly from its first call.
The card's ``calibration.ece_after`` is read with them. ``Scores.distribution`` is the whole
(calibrated) probability vector, for the estimated quality (``estimated_quality``). Concurrent
classifications share one Triton call (:class:`services.common.batching.Coalescer`; idle, a
call goes out at once) unless ``CLASSIFIER_COALESCE_REQUESTS=false``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.common.batching import Coalescer
from services.common.errors import DependencyFailed, TritonUnavailable
from services.common.model_versions import cards_from_config
from services.common.triton import TritonClient
from services.domain.catalog import features

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
#: Image decoding runs in a worker thread (a large JPEG takes milliseconds of CPU).
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Scores:
    """The answer of one classification: categories by falling probability."""

    categories: list[str]
    probabilities: list[float]
    model_version: str
    distribution: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    """Every category's probability, in the model's column order."""
    ece: float | None = None
    """The answering version's calibration error, from its card (None: not recorded)."""


async def product_features(*, title: str, description: str, image: bytes | None) -> FloatArray:
    """The (1, N_FEATURES) model input; image decoding runs off the event loop.

    Raises :class:`features.NotAnImage` / :class:`features.ImageTooLarge` for bad images.
    """
    text = features.text_features(title, description)
    if image is None:
        pixels = features.image_features(None)
    else:
        pixels = await asyncio.to_thread(features.image_features, image)
    return np.concatenate([text, pixels]).reshape(1, features.N_FEATURES)


class CategoryPredictor:
    """Classifies products with the Triton model ``model``."""

    def __init__(
        self,
        triton: TritonClient,
        *,
        model: str,
        coalesce: bool = True,
        coalesce_max_rows: int = 64,
        coalesce_max_in_flight: int = 2,
    ) -> None:
        self.triton = triton
        self.model = model
        self._classes: dict[str, list[str]] = {}
        self._ece: dict[str, float] = {}
        self.latest_version: str | None = None
        self._coalescer: Coalescer[FloatArray, FloatArray, str] | None = (
            Coalescer(
                self._infer_rows, max_items=coalesce_max_rows, max_in_flight=coalesce_max_in_flight
            )
            if coalesce
            else None
        )

    async def _infer_rows(self, rows: list[FloatArray]) -> tuple[list[FloatArray], str]:
        """One Triton call for these feature rows: a probability row each, the version."""
        x = rows[0].reshape(1, -1) if len(rows) == 1 else np.stack(rows)
        result = await self.triton.infer(self.model, {INPUT_NAME: x}, outputs=[OUTPUT_NAME])
        probabilities = result.outputs[OUTPUT_NAME]
        return [probabilities[i] for i in range(len(rows))], result.model_version

    async def _load_classes(self) -> None:
        cards = cards_from_config(await self.triton.model_config(self.model))
        for version, card in cards.items():
            classes = card.get("classes")
            if isinstance(classes, list) and all(isinstance(c, str) for c in classes):
                self._classes[version] = list(classes)
            calibration = card.get("calibration")
            ece = calibration.get("ece_after") if isinstance(calibration, dict) else None
            if isinstance(ece, int | float):
                self._ece[version] = float(ece)

    async def classes(self, version: str) -> list[str]:
        """The categories of ``version``'s outputs; DependencyFailed when its card has none."""
        if version not in self._classes:
            await self._load_classes()
        classes = self._classes.get(version)
        if classes is None:
            raise DependencyFailed(
                f"model {self.model!r} version {version} has no category list in its card"
            )
        return classes

    async def known_categories(self, version: str) -> set[str]:
        """Categories a label for a prediction of ``version`` may name.

        ``version``'s own classes while Triton still has its card; otherwise those of every
        version seen (an old version's card leaves the config when the version is removed).
        """
        try:
            return set(await self.classes(version))
        except DependencyFailed:
            return {c for classes in self._classes.values() for c in classes}

    async def classify(self, x: FloatArray, *, top_k: int) -> Scores:
        """Top ``top_k`` categories of the one product in ``x`` and the answering version."""
        row = x.reshape(-1)
        rows: Sequence[FloatArray]
        if self._coalescer is None:
            rows, version = await self._infer_rows([row])
        else:
            rows, version = await self._coalescer.submit((row,))
        probabilities = rows[0].reshape(-1).astype(np.float64)
        classes = self._classes.get(version) or await self.classes(version)
        if len(classes) != probabilities.shape[0]:
            raise DependencyFailed(
                f"model {self.model!r} version {version} answered "
                f"{probabilities.shape[0]} probabilities for {len(classes)} categories"
            )
        self.latest_version = version
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        return Scores(
            categories=[classes[int(i)] for i in order],
            probabilities=[round(float(probabilities[i]), 6) for i in order],
            model_version=version,
            distribution=probabilities,
            ece=self._ece.get(version),
        )

    async def ready(self) -> None:
        """Readiness: the model itself is loaded (server-wide readiness flaps during reloads)."""
        if not await self.triton.model_ready(self.model):
            raise TritonUnavailable(f"model {self.model!r} is not ready in Triton")
