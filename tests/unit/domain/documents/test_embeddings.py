"""Embeddings: pooling against a reference computation, tokeniser limits, the ORT path."""

from __future__ import annotations

import numpy as np

from services.domain.documents.embeddings import (
    EMBEDDING_DIM,
    PAD_MULTIPLE,
    OnnxEmbedder,
    encode,
    load_tokenizer,
    mean_pool,
)


def _reference(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling(mean) + Normalize, one row at a time."""
    out = []
    for row, row_mask in zip(hidden, mask, strict=True):
        tokens = row[row_mask.astype(bool)]
        vector = tokens.mean(axis=0)
        out.append(vector / np.linalg.norm(vector))
    return np.stack(out)


def test_mean_pool_equals_the_reference_and_ignores_padding() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 7, EMBEDDING_DIM)).astype(np.float32)
    mask = np.array([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]])
    pooled = mean_pool(hidden, mask)
    assert pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, _reference(hidden, mask), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)
    hidden[1, 3:] = 1000.0  # padding positions must not matter
    np.testing.assert_allclose(mean_pool(hidden, mask)[1], pooled[1], atol=1e-6)


def test_tokeniser_pads_per_batch_and_truncates() -> None:
    tokenizer = load_tokenizer(max_tokens=16)
    encoded = encode(tokenizer, ["short", "a much longer sentence " * 20])
    assert encoded.input_ids.shape == (2, 16)  # truncated to the limit
    assert encoded.input_ids.dtype == np.int64
    assert encoded.attention_mask[0].sum() == 3  # [CLS] short [SEP]
    small = encode(load_tokenizer(), ["one", "two words"])
    assert small.input_ids.shape[1] == PAD_MULTIPLE  # padded to the batch, not to 256
    assert small.input_ids[0, 0] == 101 and small.token_type_ids.sum() == 0  # [CLS], segment 0


def test_onnx_embedder_gives_unit_vectors_that_rank_paraphrases_first() -> None:
    embedder = OnnxEmbedder()
    vectors = embedder.embed_sync(
        [
            "How long is the warranty of the blender?",
            "The blender comes with a two-year warranty.",
            "Tigers are large striped cats.",
        ]
    )
    assert vectors.shape == (3, EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > 0.5 > unrelated
    assert embedder.embed_sync([]).shape == (0, EMBEDDING_DIM)
