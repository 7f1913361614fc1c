"""A durable JetStream pull consumer that acks only after the handler's work committed.

Each worker kind is one durable consumer of the RIDES stream (so replicas of a kind share the
work and a restart resumes where it stopped). The loop pulls up to ``fetch_batch`` messages,
handles them concurrently, and for each message:

- handler succeeded (its database write committed)  -> ack;
- a dependency is down or slow (Triton, Postgres: the :class:`DependencyError` branch of the
  error tree, timeouts included) -> nak with a growing delay, forever:
  an outage never dead-letters an event, and nothing is acked unprocessed;
- anything else (a poison event: invalid JSON, a model error that retrying will not fix, a bug)
  -> nak with delay until it has been delivered ``max_deliveries`` times, then it is published to
  ``rides.dead.<worker>`` (headers name the reason and the original subject) and acked;
  an event that does not even parse is dead-lettered at once.

NATS outages: the connection reconnects by itself; meanwhile pulls fail and are retried with
backoff. An ack lost in an outage means a redelivery, which the idempotent handler absorbs.

    consumer = PullConsumer(name="tip", subject="rides.requested", handler=handle, ...)
    await consumer.run()
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState

from services.common.errors import (
    BrokerUnavailable,
    DependencyError,
    ModelfleetError,
)
from services.common.jetstream import (
    DEAD_LETTER_PREFIX,
    NATS_ERRORS,
    RIDES_STREAM,
    ensure_stream,
)
from services.common.metrics import observe_dependency
from services.common.nats import connect
from services.common.retry import exception_of, retry_forever
from services.domain.taxi.events import RideEvent
from services.workers.metrics import (
    ACK_PENDING,
    CONSUMER_LAG,
    DEAD_LETTERS,
    FAILED,
    PROCESSED,
    PROCESSING_SECONDS,
)
from services.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

_PULL_ERRORS: tuple[type[BaseException], ...] = (ModelfleetError, *NATS_ERRORS)

#: handler(event) -> True when it wrote something, False when the write changed nothing.
Handler = Callable[[RideEvent], Awaitable[bool]]


def pull_retrying(name: str) -> AsyncRetrying:
    """The consumer's retry policy for one pull (NATS away, stream or consumer not bound).

    Retried forever, pauses from 100 ms doubling to 2 s, each failure logged.
    """

    def log_failure(state: RetryCallState) -> None:
        log.warning("consumer %s cannot pull: %r", name, exception_of(state))

    return retry_forever(errors=_PULL_ERRORS, first_s=0.1, max_s=2.0, before_sleep=log_failure)


class PullConsumer:
    """One durable pull consumer of the RIDES stream and its processing loop."""

    def __init__(
        self, *, name: str, subject: str, handler: Handler, settings: WorkerSettings
    ) -> None:
        self.name = name
        self.subject = subject
        self.handler = handler
        self.settings = settings
        self.nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self.bound = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected and self.bound.is_set()

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        if self._sub is not None:
            return self._sub
        if self.nc is None:
            self.nc = await connect(self.settings.nats_url, name=f"worker-{self.name}")
        js = self.nc.jetstream(timeout=5.0)
        await ensure_stream(js)
        config = ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=max(1000, 4 * self.settings.fetch_batch),
        )
        try:
            with observe_dependency("nats", "pull_subscribe"):
                self._sub = await js.pull_subscribe(
                    self.subject, durable=self.name, stream=RIDES_STREAM, config=config
                )
        except NATS_ERRORS as exc:
            raise BrokerUnavailable(f"cannot bind consumer {self.name}") from exc
        self._js = js
        self.bound.set()
        log.info("consumer bound", extra={"consumer": self.name, "subject": self.subject})
        return self._sub

    async def run(self) -> None:
        """Pull and process until cancelled; outages are retried with jittered backoff."""
        lag_task = asyncio.create_task(self._watch_lag(), name=f"{self.name}-lag")
        try:
            while True:
                messages: list[Msg] = await pull_retrying(self.name)(self._pull)
                if messages:
                    await asyncio.gather(*(self._process(msg) for msg in messages))
        finally:
            lag_task.cancel()

    async def _pull(self) -> list[Msg]:
        """One long-poll for up to ``fetch_batch`` messages ([] when none came in time)."""
        try:
            sub = await self._subscribe()
            return await sub.fetch(self.settings.fetch_batch, timeout=self.settings.fetch_timeout_s)
        except nats.errors.TimeoutError:
            return []  # an empty long-poll (or the server is away: the next pull says)

    async def _process(self, msg: Msg) -> None:
        started = time.perf_counter()
        deliveries = msg.metadata.num_delivered or 1
        try:
            event = RideEvent.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._dead_letter(msg, reason="invalid-event", detail=str(exc)[:500])
            return
        try:
            wrote = await self.handler(event)
        except DependencyError as exc:
            FAILED.labels(self.name, type(exc).__name__).inc()
            await self._nak(msg, deliveries)
            return
        except Exception as exc:  # a poison event or a bug: bounded retries, then dead letter
            FAILED.labels(self.name, type(exc).__name__).inc()
            log.warning(
                "event failed", extra={"consumer": self.name, "error": repr(exc)}, exc_info=True
            )
            if deliveries >= self.settings.max_deliveries:
                await self._dead_letter(msg, reason=type(exc).__name__, detail=str(exc)[:500])
            else:
                await self._nak(msg, deliveries)
            return
        if await self._ack(msg):
            PROCESSED.labels(self.name, "written" if wrote else "unchanged").inc()
            PROCESSING_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    def _delay(self, deliveries: int) -> float:
        cap = min(self.settings.retry_delay_max_s, self.settings.retry_delay_s * 2**deliveries)
        return random.uniform(cap / 2, cap)

    async def _nak(self, msg: Msg, deliveries: int) -> None:
        try:
            await msg.nak(delay=self._delay(deliveries))
        except NATS_ERRORS:  # redelivered after ack_wait anyway
            pass

    async def _ack(self, msg: Msg) -> bool:
        try:
            with observe_dependency("nats", "ack"):
                await msg.ack()
        except NATS_ERRORS as exc:  # redelivered later; the handler is idempotent
            log.warning("ack failed: %r", exc)
            return False
        return True

    async def _dead_letter(self, msg: Msg, *, reason: str, detail: str) -> None:
        """Publish the event to ``rides.dead.<worker>`` and ack it (nak when that fails)."""
        js = self._js
        seq = msg.metadata.sequence.stream if msg.metadata.sequence else 0
        headers = {
            "Nats-Msg-Id": f"{self.name}:{seq}",
            "Modelfleet-Reason": reason,
            "Modelfleet-Detail": detail.replace("\n", " "),
            "Modelfleet-Subject": msg.subject,
            "Modelfleet-Deliveries": str(msg.metadata.num_delivered or 1),
        }
        try:
            if js is None:
                raise BrokerUnavailable("no JetStream context")
            with observe_dependency("nats", "dead_letter"):
                await js.publish(
                    DEAD_LETTER_PREFIX + self.name, msg.data, timeout=5.0, headers=headers
                )
            await msg.ack()
        except _PULL_ERRORS:
            await self._nak(msg, msg.metadata.num_delivered or 1)
            return
        DEAD_LETTERS.labels(self.name, reason).inc()
        log.error("event dead-lettered", extra={"consumer": self.name, "reason": reason})

    async def _watch_lag(self) -> None:
        """Refresh the lag gauges from the consumer's info every ``lag_interval_s``."""
        while True:
            await asyncio.sleep(self.settings.lag_interval_s)
            if self._js is None or not self.bound.is_set():
                continue
            try:
                with observe_dependency("nats", "consumer_info"):
                    info = await self._js.consumer_info(RIDES_STREAM, self.name, timeout=2.0)
            except NATS_ERRORS:
                continue
            CONSUMER_LAG.labels(self.name).set(info.num_pending or 0)
            ACK_PENDING.labels(self.name).set(info.num_ack_pending or 0)
