"""Product features: THE feature code shared by classifier training and the classifier service.

What ONNX cannot do runs here, in Python, identically for training (models/classifier) and
serving (services/classifier): text tokenisation and hashing, image decoding and resizing. The
model (plain ONNX: one linear layer + softmax) takes the result as one float32 vector:

    [ text: TEXT_DIM hashed tokens | image: IMAGE_DIM statistics ]

Text: lower-cased ``[a-z0-9]+`` tokens; title unigrams (``t:``), title bigrams (``tb:``) and
description unigrams (``d:``) are hashed with CRC-32 (stable across processes, unlike
``hash()``) into ``TEXT_DIM`` buckets; counts -> log1p -> L2-normalised.

Image: decoded with Pillow (any format it reads), RGB, resized to ``GRID`` x ``GRID``; features
are a has-image flag, mean and std per channel, a saturation-weighted hue histogram, mean
saturation and value, horizontal/vertical edge energy, centre-minus-border brightness and an
``POOL`` x ``POOL`` grayscale thumbnail. No image -> zeros (the flag says so).

    x = feature_vector(title="Wireless headphones", description="...", image=png_bytes)
    x.shape == (N_FEATURES,)
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

TEXT_DIM: Final = 2048
GRID: Final = 32
POOL: Final = 8
HUE_BINS: Final = 12
IMAGE_FEATURE_NAMES: Final[tuple[str, ...]] = (
    "has_image",
    *(f"mean_{c}" for c in "rgb"),
    *(f"std_{c}" for c in "rgb"),
    *(f"hue_{i}" for i in range(HUE_BINS)),
    "mean_saturation",
    "mean_value",
    "edge_horizontal",
    "edge_vertical",
    "centre_minus_border",
    *(f"gray_{i}" for i in range(POOL * POOL)),
)
IMAGE_DIM: Final = len(IMAGE_FEATURE_NAMES)
N_FEATURES: Final = TEXT_DIM + IMAGE_DIM
MAX_IMAGE_PIXELS: Final = 4096 * 4096
"""Larger images are refused (decompression bombs) with :class:`ImageTooLarge`."""

_TOKEN = re.compile(r"[a-z0-9]+")

FloatArray = npt.NDArray[np.float32]


class NotAnImage(ValueError):
    """The bytes are not an image Pillow can decode."""


class ImageTooLarge(ValueError):
    """The image has more than ``MAX_IMAGE_PIXELS`` pixels."""


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens of ``text``."""
    return _TOKEN.findall(text.lower())


def _bucket(token: str) -> int:
    return zlib.crc32(token.encode()) % TEXT_DIM


def text_features(title: str, description: str) -> FloatArray:
    """The hashed, log-scaled, L2-normalised text vector (``TEXT_DIM``) of one product."""
    out = np.zeros(TEXT_DIM, dtype=np.float32)
    title_tokens = tokens(title)
    names = [f"t:{t}" for t in title_tokens]
    names += [f"tb:{a}_{b}" for a, b in zip(title_tokens, title_tokens[1:], strict=False)]
    names += [f"d:{t}" for t in tokens(description)]
    if names:  # one bincount, not a numpy scalar update per token (~12% of a classify)
        out += np.bincount([_bucket(name) for name in names], minlength=TEXT_DIM)
    np.log1p(out, out=out)
    norm = float(np.linalg.norm(out))
    if norm > 0.0:
        out /= norm
    return out


def decode_image(data: bytes) -> Image.Image:
    """Decode image bytes (RGB); :class:`NotAnImage` or :class:`ImageTooLarge` otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageTooLarge(f"image of {width}x{height} pixels is too large")
            probe.draft("RGB", (GRID * 2, GRID * 2))  # JPEG: decode at reduced size
            return probe.convert("RGB")
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(f"not a decodable image: {exc}") from exc


def image_features(image: Image.Image | bytes | None) -> FloatArray:
    """The ``IMAGE_DIM`` statistics of one image (bytes are decoded); zeros for ``None``."""
    out = np.zeros(IMAGE_DIM, dtype=np.float32)
    if image is None:
        return out
    if isinstance(image, bytes | bytearray):
        image = decode_image(bytes(image))
    small = image.convert("RGB").resize((GRID, GRID), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    hue_bins = np.minimum((hsv[..., 0] * HUE_BINS).astype(np.int64), HUE_BINS - 1)
    hue_hist = np.bincount(
        hue_bins.ravel(), weights=hsv[..., 1].ravel().astype(np.float64), minlength=HUE_BINS
    ) / float(GRID * GRID)
    edge_h = float(np.mean(np.abs(np.diff(gray, axis=1))))
    edge_v = float(np.mean(np.abs(np.diff(gray, axis=0))))
    quarter = GRID // 4
    centre = float(np.mean(gray[quarter:-quarter, quarter:-quarter]))
    border_mask = np.ones((GRID, GRID), dtype=bool)
    border_mask[quarter:-quarter, quarter:-quarter] = False
    border = float(np.mean(gray[border_mask]))
    pooled = gray.reshape(POOL, GRID // POOL, POOL, GRID // POOL).mean(axis=(1, 3))
    values = [
        1.0,
        *rgb.mean(axis=(0, 1)).tolist(),
        *rgb.std(axis=(0, 1)).tolist(),
        *hue_hist.tolist(),
        float(hsv[..., 1].mean()),
        float(hsv[..., 2].mean()),
        edge_h,
        edge_v,
        centre - border,
        *pooled.ravel().tolist(),
    ]
    out[:] = np.asarray(values, dtype=np.float32)
    return out


def feature_vector(
    *, title: str, description: str, image: Image.Image | bytes | None = None
) -> FloatArray:
    """The model's ``N_FEATURES`` float32 input of one product."""
    return np.concatenate([text_features(title, description), image_features(image)])


def feature_matrix(
    titles: Sequence[str],
    descriptions: Sequence[str],
    images: Sequence[Image.Image | bytes | None],
) -> FloatArray:
    """``(n, N_FEATURES)`` float32: :func:`feature_vector` of each product, in order."""
    if not len(titles) == len(descriptions) == len(images):
        raise ValueError("titles, descriptions and images differ in length")
    out = np.zeros((len(titles), N_FEATURES), dtype=np.float32)
    for row, (title, description, image) in enumerate(
        zip(titles, descriptions, images, strict=True)
    ):
        out[row] = feature_vector(title=title, description=description, image=image)
    return out
