"""The routing table a replica serves: kept current, and every prediction call routed through it.

:class:`LiveRouting` holds the compiled :class:`~services.ride_duration.routing.table.Snapshot` of
its service. A table written by any replica reaches every replica within milliseconds through
Postgres LISTEN/NOTIFY, and within ``routing_poll_interval_s`` through a poll when a notification is
lost (the listener re-reads the table after every reconnect too). The new snapshot replaces the old
one in one assignment, so a request sees either table, never a mix. When Postgres is unreachable the
replica keeps serving the last table it read.

Per request the cost is the snapshot's ``choose`` (a hash when the table splits traffic), the
variant's metric observations and, when a shadow is configured, one ``put_nowait``.

    routing = LiveRouting(pool, settings, default_model="ride_duration", call=predict_variant)
    await routing.start()
    answer = await routing.serve([ride], key=ride.user_id, request=ride)
    answer.values, answer.version, answer.route.name
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.common.errors import ModelfleetError, TritonUnavailable
from services.common.pg_listen import PgListener
from services.common.tasks import cancel_and_wait
from services.ride_duration.routing import store
from services.ride_duration.routing.metrics import ROUTING_ERRORS, ROUTING_RELOADS, ROUTING_VERSION
from services.ride_duration.routing.settings import ModelServiceSettings
from services.ride_duration.routing.shadow import ShadowJob, ShadowRunner, VariantCall
from services.ride_duration.routing.table import Route, RoutingTable, Snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answered:
    """The values of one routed call, the Triton version that computed them, and the variant."""

    values: list[float]
    version: str
    route: Route


class LiveRouting:
    """The current routing snapshot of one service, and the calls routed through it."""

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        settings: ModelServiceSettings,
        *,
        default_model: str,
        call: VariantCall,
    ) -> None:
        self.pool = pool
        self.service = settings.service_name
        self.default_model = default_model
        self.poll_interval_s = settings.routing_poll_interval_s
        self.timeout_s = settings.database_timeout_s
        self._call = call
        self.snapshot = Snapshot.compile(store.unconfigured(self.service, default_model))
        self.shadow = ShadowRunner(
            self.service,
            call=call,
            queue_size=settings.shadow_queue_size,
            concurrency=settings.shadow_concurrency,
            abs_tolerance=settings.shadow_abs_tolerance,
            rel_tolerance=settings.shadow_rel_tolerance,
        )
        self._listener = (
            PgListener(
                pool,
                store.CHANNEL,
                on_notify=self._on_notify,
                on_connected=self._on_connected,
                timeout_s=self.timeout_s,
            )
            if pool is not None
            else None
        )
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._version_gauge = ROUTING_VERSION.labels(self.service)
        self._version_gauge.set(0)

    # -- keeping the snapshot current ---------------------------------------------------------
    async def start(self) -> None:
        """Read the table once (a failure leaves the default table), then keep it current.

        Without a pool (``routing_table`` off) the default table is served, unchanged.
        """
        self.shadow.start()
        if self._listener is None:
            return
        await self.refresh("start")
        self._tasks = [
            asyncio.create_task(self._listener.run(), name="routing-listen"),
            asyncio.create_task(self._watch(), name="routing-watch"),
        ]

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.shadow.close()

    def _on_notify(self, payload: str) -> None:
        if payload == self.service:
            self._wake.set()

    async def _on_connected(self) -> None:
        self._wake.set()  # a change may have been missed while the listener was down

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
            source = "notify" if self._wake.is_set() else "poll"
            self._wake.clear()
            await self.refresh(source)

    async def refresh(self, source: str) -> bool:
        """Load the table if its version moved; True when the snapshot was replaced."""
        if self.pool is None:
            return False
        try:
            if source == "poll":
                version = await store.current_version(
                    self.pool, service=self.service, timeout_s=self.timeout_s
                )
                if version == self.snapshot.version:
                    return False
            table = await store.read_table(
                self.pool,
                service=self.service,
                default_model=self.default_model,
                timeout_s=self.timeout_s,
            )
        except ModelfleetError as exc:
            ROUTING_ERRORS.labels(self.service).inc()
            log.warning(
                "routing table not read; serving version %s",
                self.snapshot.version,
                extra={"error": str(exc)},
            )
            return False
        if table.version == self.snapshot.version:
            return False
        self.swap(table, source=source)
        return True

    def swap(self, table: RoutingTable, *, source: str) -> None:
        """Serve ``table`` from the next request on (one assignment: atomic for the loop)."""
        self.snapshot = Snapshot.compile(table)
        self._version_gauge.set(table.version)
        ROUTING_RELOADS.labels(self.service, source).inc()
        log.info(
            "routing table loaded",
            extra={
                "routing_version": table.version,
                "source": source,
                "variants": {v.name: (v.role, v.model_version, v.weight) for v in table.variants},
            },
        )

    # -- routed calls -------------------------------------------------------------------------
    async def _answer(self, snapshot: Snapshot, route: Route, items: Sequence[Any]) -> Answered:
        start = time.perf_counter()
        try:
            values, version = await self._call(route, items)
        except TritonUnavailable as exc:
            route.metrics.error(exc)
            if route is snapshot.stable:
                raise
            # The candidate's version is gone (unloaded, failed): the stable variant answers.
            return await self._answer(snapshot, snapshot.stable, items)
        except Exception as exc:
            route.metrics.error(exc)
            raise
        elapsed = time.perf_counter() - start
        route.metrics.observe(values, elapsed)
        if snapshot.shadows:
            self._mirror(snapshot, items, values, elapsed)
        return Answered(values, version, route)

    def _mirror(
        self, snapshot: Snapshot, items: Sequence[Any], values: list[float], elapsed: float
    ) -> None:
        for shadow in snapshot.mirrors():
            if shadow.segment_values is None:
                self.shadow.submit(ShadowJob(shadow, items, values, elapsed))
                continue
            picked = [i for i, item in enumerate(items) if shadow.matches(item)]
            if picked:
                self.shadow.submit(
                    ShadowJob(
                        shadow, [items[i] for i in picked], [values[i] for i in picked], elapsed
                    )
                )

    async def serve(self, items: Sequence[Any], *, key: str | None, request: Any) -> Answered:
        """Route one call (all ``items`` to one variant, chosen for ``key`` / ``request``)."""
        snapshot = self.snapshot
        return await self._answer(snapshot, snapshot.choose(key, request), items)

    async def serve_each(
        self, items: Sequence[Any], keys: Sequence[str | None]
    ) -> list[tuple[float, Answered]]:
        """Route every item on its own (a batch of users): (value, its call's answer) per item.

        Items routed to the same variant share one call; the calls run concurrently.
        """
        snapshot = self.snapshot
        groups: dict[str, tuple[Route, list[int]]] = {}
        for i, (item, key) in enumerate(zip(items, keys, strict=True)):
            route = snapshot.choose(key, item)
            groups.setdefault(route.name, (route, []))[1].append(i)
        if len(groups) == 1:
            ((route, _),) = groups.values()
            answered = await self._answer(snapshot, route, items)
            return [(value, answered) for value in answered.values]
        parts = list(groups.values())
        answers = await asyncio.gather(
            *(self._answer(snapshot, route, [items[i] for i in idx]) for route, idx in parts)
        )
        out: list[tuple[float, Answered] | None] = [None] * len(items)
        for (_, idx), answered in zip(parts, answers, strict=True):
            for i, value in zip(idx, answered.values, strict=True):
                out[i] = (value, answered)
        return [pair for pair in out if pair is not None]
