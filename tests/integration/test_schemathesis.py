"""Generated requests against every service's OpenAPI in AUTH_MODE=jwt with a valid token.

Each service runs in this process (uvicorn in a thread) on the session's real Triton and
Postgres (a database of its own, so generated rows touch no other test) and NATS; a local issuer
serves the JWKS; the token carries the admin scope, so every route is reachable. schemathesis
(hypothesis) generates valid and invalid requests for every operation; every response must be
below 500 and every error response RFC 9457 problem+json.

``MODELFLEET_FUZZ_EXAMPLES`` (cases per operation and generation mode; default 25) scales the
run: ``make fuzz`` sets it high.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from tests.oidc import LocalIssuer
from tests.servers import serving

EXAMPLES = int(os.environ.get("MODELFLEET_FUZZ_EXAMPLES", "25"))
PROBLEM = "application/problem+json"


def _ride_duration(common: dict[str, Any], stack: StackSettings) -> FastAPI:
    from services.ride_duration.app import create_app
    from services.ride_duration.settings import RideDurationSettings

    return create_app(RideDurationSettings(**common))


def _backend(common: dict[str, Any], stack: StackSettings) -> FastAPI:
    from services.backend.app import create_app
    from services.backend.settings import BackendSettings

    url = f"http://{stack.host}:{stack.ride_duration_port}"
    return create_app(BackendSettings(**common, relay=False, ride_duration_url=url))


def _classifier(common: dict[str, Any], stack: StackSettings) -> FastAPI:
    from services.classifier.app import create_app
    from services.classifier.settings import ClassifierSettings

    harmless = (sys.executable, "-c", "pass")  # a manual retraining run starts nothing real
    return create_app(
        ClassifierSettings(**common, retraining_alerts=frozenset(), retraining_command=harmless)
    )


SERVICES: dict[str, Callable[[dict[str, Any], StackSettings], FastAPI]] = {
    "ride-duration": _ride_duration,
    "backend": _backend,
    "classifier": _classifier,
}


@pytest.fixture(scope="module")
def fuzz_database(stack: Stack, stack_settings: StackSettings) -> Iterator[str]:
    import asyncio

    name = f"fuzz_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(stack_settings.database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"create database {name}"))
    base = stack_settings.database_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(run(f"drop database {name} with (force)"))


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer().in_thread() as running:
        yield running


def problem_of(response: Any) -> str | None:
    """What is wrong with ``response`` (a schemathesis or requests response), or None."""
    if response.status_code >= 500:
        return f"server error {response.status_code}: {response.text[:200]}"
    if response.status_code >= 400:
        content_type = response.headers.get("content-type")
        if isinstance(content_type, list):  # schemathesis: every header is a list
            content_type = content_type[0] if content_type else None
        if content_type != PROBLEM:
            return f"{response.status_code} is {content_type}"
        body = response.json()
        if body.get("status") != response.status_code or not body.get("type"):
            return f"{response.status_code} with a malformed problem body {body}"
    return None


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_generated_requests(
    service: str,
    stack_settings: StackSettings,
    fuzz_database: str,
    issuer: LocalIssuer,
) -> None:
    common = {
        **issuer.settings(),
        "database_url": fuzz_database,
        "triton_grpc_url": stack_settings.triton_grpc_url,
        "nats_url": stack_settings.nats_url,
        "log_level": "ERROR",
        "request_timeout_s": 10.0,
    }
    app = SERVICES[service](common, stack_settings)
    headers = {"authorization": f"Bearer {issuer.token(sub='fuzzer', scopes=['admin'])}"}
    failures: list[str] = []
    cases = 0
    with serving(app) as base_url, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations, "no operation in the OpenAPI document"
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: Any) -> None:
                    nonlocal cases
                    cases += 1
                    response = case.call(
                        base_url=base_url, session=session, headers=headers, timeout=30
                    )
                    problem = problem_of(response)
                    if problem is not None:
                        failures.append(f"{case.method} {case.formatted_path}: {problem}")

                try:
                    run()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing in it can be made invalid
    print(f"{service}: {cases} generated cases over {len(operations)} operations")
    assert not failures, "\n".join(sorted(set(failures))[:20])
    assert cases >= 5 * len(operations)
