"""JetStream, written once: the rides stream, publishing with dedupe, and error translation.

The taxi app keeps every ride event in one stream, ``RIDES`` (subjects ``rides.>``, file storage):
``rides.requested`` and ``rides.telemetry`` (relayed from the backend's outbox) and
``rides.dead.<worker>`` (dead letters). A publish carries ``Nats-Msg-Id`` so a repeat inside the
stream's duplicate window is dropped by the server (the outbox relay may publish an event twice
after a crash). nats-py errors leave as :class:`services.common.errors.BrokerUnavailable`
(server unreachable, no answer in time) with ``raise ... from exc``.

    js = nc.jetstream()
    await ensure_stream(js)
    duplicate = await publish(js, "rides.requested", body, msg_id=str(event_id), timeout_s=2.0)
"""

from __future__ import annotations

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from services.common.errors import BrokerUnavailable
from services.common.metrics import observe_dependency

RIDES_STREAM = "RIDES"
RIDES_SUBJECTS = ["rides.>"]
RIDE_REQUESTED = "rides.requested"
RIDE_TELEMETRY = "rides.telemetry"
DEAD_LETTER_PREFIX = "rides.dead."
#: Longer than any outage the relay rides out while still holding an event it has sent once.
DUPLICATE_WINDOW_S = 15 * 60.0

#: nats-py errors that mean "the server cannot be used now".
NATS_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    nats.errors.Error,
)


async def ensure_stream(js: JetStreamContext, *, timeout_s: float = 5.0) -> None:
    """Create the RIDES stream if it is missing (idempotent; safe from many processes)."""
    config = StreamConfig(
        name=RIDES_STREAM,
        subjects=RIDES_SUBJECTS,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
    )
    try:
        with observe_dependency("nats", "ensure_stream"):
            try:
                await js.stream_info(RIDES_STREAM)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
    except nats.js.errors.BadRequestError:  # created meanwhile by another process
        return
    except NATS_ERRORS as exc:
        raise BrokerUnavailable(f"cannot set up JetStream stream {RIDES_STREAM}") from exc


async def publish(
    js: JetStreamContext, subject: str, data: bytes, *, msg_id: str, timeout_s: float
) -> bool:
    """Publish with ``Nats-Msg-Id`` and wait for the PubAck; True when it was a duplicate."""
    try:
        with observe_dependency("nats", "publish"):
            ack = await js.publish(
                subject, data, timeout=timeout_s, headers={"Nats-Msg-Id": msg_id}
            )
    except NATS_ERRORS as exc:
        raise BrokerUnavailable(f"cannot publish to {subject}") from exc
    return bool(ack.duplicate)
