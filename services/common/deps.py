"""FastAPI dependency aliases for the shared clients, defined once.

Handlers declare what they use: ``async def predict(ride: Ride, triton: TritonDep)``. The clients
are opened by the service's lifespan and kept on its typed state (:mod:`services.common.state`).
Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in a thread pool, a
thread hop on every request.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends
from starlette.requests import HTTPConnection

from services.common.state import state_of
from services.common.triton import TritonClient


async def get_triton(connection: HTTPConnection) -> TritonClient:
    triton = state_of(connection).triton
    if triton is None:
        raise RuntimeError("this service opened no Triton client")
    return triton


async def get_pool(connection: HTTPConnection) -> asyncpg.Pool:
    pool = state_of(connection).pool
    if pool is None:
        raise RuntimeError("this service opened no Postgres pool")
    return pool


TritonDep = Annotated[TritonClient, Depends(get_triton)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
