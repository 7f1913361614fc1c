"""Liveness and readiness endpoints, the same in every service.

``/healthz`` (liveness) answers 200 while the process can serve HTTP: it checks nothing else, so a
dependency outage never makes Kubernetes restart healthy pods. ``/readyz`` (readiness) runs
every check the service registered (its real dependencies: Postgres, NATS, the Triton *model* it
serves) concurrently with a deadline, and answers 503 problem+json naming the failing ones.

    register_readiness(app, "triton", check_model)                    # 503 when it fails
    register_readiness(app, "postgres", check_db, critical=False)     # reported, still 200

A non-critical check is one whose failure degrades the service without stopping it from doing
its job (e.g. a prediction log): it shows in the report, but the pod stays in rotation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from services.common.errors import problem_response
from services.common.fastroute import JsonResponse

ReadinessCheck = Callable[[], Awaitable[None]]

READINESS_TIMEOUT_S = 2.0

router = APIRouter(tags=["health"])


def register_readiness(
    app: FastAPI, name: str, check: ReadinessCheck, *, critical: bool = True
) -> None:
    """Add a readiness check; call it from the service's lifespan once the client exists."""
    app.state.readiness[name] = (check, critical)


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "degraded"] = Field(
        description="degraded: a check that is not critical fails (the service still serves)."
    )
    checks: dict[str, str] = Field(description="Each check: `ok`, or what fails.")


_LIVE = Liveness(status="ok")


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process serves HTTP")
async def healthz() -> Liveness:
    return _LIVE


async def _run_check(check: ReadinessCheck) -> str:
    try:
        await asyncio.wait_for(check(), timeout=READINESS_TIMEOUT_S)
    except TimeoutError:
        return f"timed out after {READINESS_TIMEOUT_S:g}s"
    except Exception as exc:  # reported, not raised: readiness must always answer
        return str(exc) or type(exc).__name__
    return "ok"


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: every dependency of this service is usable",
    responses={
        503: {
            "description": "A critical check fails: problem+json whose `checks` names each",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before asking again.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def readyz(request: Request) -> Response:
    checks: dict[str, tuple[ReadinessCheck, bool]] = request.app.state.readiness
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[name][0]) for name in names))
    report = dict(zip(names, results, strict=True))
    failing = [name for name, result in report.items() if result != "ok" and checks[name][1]]
    if failing:
        return problem_response(
            status=503,
            type_slug="not-ready",
            title="Not ready",
            detail=f"not ready: {', '.join(failing)}",
            instance="/readyz",
            headers={"Retry-After": "1"},
            checks=report,
        )
    status = "ready" if all(result == "ok" for result in results) else "degraded"
    # a Response (the OIP's /v2/health/ready reads its status): the model, as JSON
    return JsonResponse(Readiness(status=status, checks=report).model_dump(mode="json"))
