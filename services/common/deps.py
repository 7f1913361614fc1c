"""FastAPI dependency aliases for the shared clients, defined once.

Handlers declare what they use: ``async def predict(ride: Ride, triton: TritonDep)``. The clients
are created by the service's lifespan and kept on ``app.state``. Dependencies are ``async def``:
FastAPI runs a plain ``def`` dependency in a thread pool, a thread hop on every request.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.common.triton import TritonClient


async def get_triton(request: Request) -> TritonClient:
    client: TritonClient = request.app.state.triton
    return client


async def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


TritonDep = Annotated[TritonClient, Depends(get_triton)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
