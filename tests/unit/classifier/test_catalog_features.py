"""The shared catalogue feature code: shapes, determinism, text hashing, image statistics."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.domain.catalog import features


def _image(colour: tuple[int, int, int], fmt: str = "PNG", size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def test_vector_layout_and_determinism() -> None:
    x = features.feature_vector(title="Wireless headphones", description="40mm drivers")
    y = features.feature_vector(title="Wireless headphones", description="40mm drivers")
    assert x.shape == (features.N_FEATURES,) and x.dtype == np.float32
    assert np.array_equal(x, y)
    text = x[: features.TEXT_DIM]
    assert np.isclose(np.linalg.norm(text), 1.0)
    assert not x[features.TEXT_DIM :].any()  # no image: zeros, has_image flag 0


def test_text_is_case_and_punctuation_insensitive() -> None:
    a = features.text_features("Running Shoes, Men!", "")
    b = features.text_features("running shoes men", "")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, features.text_features("", "running shoes men"))


def test_empty_text_is_zero() -> None:
    assert not features.text_features("", " ").any()


def test_image_features_carry_colour() -> None:
    red = features.image_features(_image((220, 20, 20)))
    blue = features.image_features(_image((20, 20, 220), fmt="JPEG"))
    assert red.shape == (features.IMAGE_DIM,) and red[0] == 1.0 and blue[0] == 1.0
    names = list(features.IMAGE_FEATURE_NAMES)
    assert red[names.index("mean_r")] > 0.8 > blue[names.index("mean_r")]
    assert blue[names.index("mean_b")] > 0.8


def test_not_an_image_and_too_large() -> None:
    with pytest.raises(features.NotAnImage):
        features.image_features(b"definitely not an image")
    header = io.BytesIO()
    Image.new("L", (5000, 4000)).save(header, format="PNG")
    with pytest.raises(features.ImageTooLarge):
        features.image_features(header.getvalue())


def test_matrix_equals_rows() -> None:
    png = _image((10, 200, 30))
    m = features.feature_matrix(["a b", "c"], ["d", ""], [png, None])
    assert np.array_equal(m[0], features.feature_vector(title="a b", description="d", image=png))
    assert np.array_equal(m[1], features.feature_vector(title="c", description=""))
    with pytest.raises(ValueError):
        features.feature_matrix(["a"], [], [None])
