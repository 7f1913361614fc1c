"""Prediction ids that carry their creation time (UUID version 7, RFC 9562).

A prediction row is written behind the answer (a COPY every ``CLASSIFIER_PREDICTION_FLUSH_
INTERVAL_S``), so feedback may arrive before its row. The id says when the prediction was made:
feedback on a recent id that is not in the table yet waits for the row, feedback on an old or
foreign id (any other UUID version) is a 404 at once.

    prediction_id = new_prediction_id()
    made_at(prediction_id)  # seconds since the epoch; None for an id this service never makes
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1


def new_prediction_id() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | _VERSION_7 | ((rand >> 62) & _RAND_A) << 64 | _VARIANT | rand & _RAND_B
    return uuid.UUID(int=value)


def made_at(prediction_id: uuid.UUID) -> float | None:
    """When a UUIDv7 was made (seconds since the epoch); None for any other UUID."""
    if prediction_id.version != 7:
        return None
    return (prediction_id.int >> 80) / 1000.0
