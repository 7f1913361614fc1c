"""The admin API of a model service's routing table (every model service includes this router).

    GET  /v1/admin/routing            the table in force (version 0: nobody wrote one)
    PUT  /v1/admin/routing            a new version: RoutingSpec with expected_version
                                      (409 when the table moved on, 422 when a rule is broken)
    GET  /v1/admin/routing/history    the newest versions, newest first (?limit=, max 100)

Every route needs the ``admin`` scope (:func:`services.common.security.require_scope`). The
service's state (:class:`~services.ride_duration.state.RideDurationState`) holds its
:class:`~services.ride_duration.routing.live.LiveRouting` and its Triton client. A write
checks the model versions against Triton's repository index (READY versions only), is stored as
a new version with who wrote it and why, is recorded in ``audit_log`` in the same transaction
(before and after), and is served by this replica at once, by the others on the NOTIFY.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Request

from services.common.errors import NotFound
from services.common.security import actor_name, current_identity, require_scope
from services.common.triton import TritonClient
from services.ride_duration.routing import store
from services.ride_duration.routing.live import LiveRouting
from services.ride_duration.routing.table import (
    RoutingHistory,
    RoutingSpec,
    RoutingTable,
    validate_variants,
)
from services.ride_duration.state import RideDurationState, StateDep

router = APIRouter(
    prefix="/v1/admin/routing",
    tags=["admin: routing"],
    dependencies=[require_scope("admin")],
)

ACTOR_HEADER = "x-modelfleet-actor"
MAX_HISTORY = 100

_ERRORS: dict[int | str, dict[str, str]] = {
    409: {"description": "expected_version is not the version in force (problem+json)"},
    422: {"description": "a rule of the table is broken; `errors` names each (problem+json)"},
    503: {"description": "Postgres or Triton is unavailable"},
}


def _live(state: RideDurationState) -> tuple[LiveRouting, asyncpg.Pool]:
    routing = state.routing
    if routing.pool is None:
        raise NotFound("this service runs without a routing table (<PREFIX>_ROUTING_TABLE=false)")
    return routing, routing.pool


def actor(request: Request) -> str:
    """Who made the change: the authenticated identity; for an anonymous caller
    (``AUTH_MODE=none``) the name it gives in ``X-Modelfleet-Actor`` (a tool such as the
    rollout controller), with its address."""
    identity = current_identity()
    if identity is not None and identity.kind != "anonymous":
        return identity.label
    name = request.headers.get(ACTOR_HEADER, "").strip()[:64]
    who = identity.label if identity is not None else actor_name()
    return f"{name} ({who})" if name and name.isprintable() else who


async def served_versions(triton: TritonClient) -> set[tuple[str, str]]:
    """(model, version) of every READY model version in Triton, plus (model, "") per model."""
    ready = {
        (entry.name, entry.version)
        for entry in await triton.repository_index()
        if entry.state == "READY" and entry.version
    }
    return ready | {(model, "") for model, _ in ready}


@router.get("", response_model=RoutingTable, summary="The routing table in force")
async def get_routing(state: StateDep) -> RoutingTable:
    routing, pool = _live(state)
    return await store.read_table(
        pool, service=routing.service, default_model=routing.default_model
    )


@router.put(
    "",
    response_model=RoutingTable,
    summary="Replace the routing table (optimistic concurrency on expected_version)",
    responses=_ERRORS,
)
async def put_routing(spec: RoutingSpec, request: Request, state: StateDep) -> RoutingTable:
    routing, pool = _live(state)
    served = await served_versions(state.triton)
    validate_variants(
        spec.variants,
        known=lambda model, version: (model, "" if version is None else str(version)) in served,
    )
    table = await store.write_table(
        pool, service=routing.service, spec=spec, updated_by=actor(request)
    )
    if table.version > routing.snapshot.version:
        routing.swap(table, source="write")
    return table


@router.get(
    "/history", response_model=RoutingHistory, summary="Past versions of the table, newest first"
)
async def get_history(
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 20,
) -> RoutingHistory:
    routing, pool = _live(state)
    return RoutingHistory(tables=await store.history(pool, service=routing.service, limit=limit))
