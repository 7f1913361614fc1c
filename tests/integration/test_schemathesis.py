"""Every service in AUTH_MODE=jwt: each route's guard, then generated requests against its OpenAPI.

Each service runs in this process (uvicorn in a thread) on the session's real Triton and
Postgres (a database of its own, so generated rows touch no other test) and NATS; a local issuer
serves the JWKS.

- The route matrix: every route but the open ones (health, metrics, docs) refuses a request
  without credentials (401 + WWW-Authenticate), refuses a token without the route's scope (403)
  and lets a token holding exactly that scope through (the handler answers: 2xx or its own 4xx).
- schemathesis (hypothesis) generates valid and invalid requests for every operation with an
  admin token, so every route is reachable; every response must be below 500 and every error
  response RFC 9457 problem+json.

``MODELFLEET_FUZZ_EXAMPLES`` (cases per operation and generation mode; default 25) scales the
run: ``make fuzz`` sets it high. A service with few operations gets more per operation, so every
service gets about ``16 x MODELFLEET_FUZZ_EXAMPLES`` cases (400 by default) or more.
"""

from __future__ import annotations

import math
import os
import re
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

from services.common.security.guard import OPEN_PATHS, api_routes, policy_of_route
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from tests.oidc import LocalIssuer
from tests.servers import serving

EXAMPLES = int(os.environ.get("MODELFLEET_FUZZ_EXAMPLES", "25"))
MIN_CASES_PER_SERVICE = 16 * EXAMPLES
PROBLEM = "application/problem+json"
#: What uvicorn answers (text/plain) to bytes that are not valid HTTP, e.g. a header value with a
#: control character: refused by the server before any application code runs.
MALFORMED_HTTP = "Invalid HTTP request received."


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


def _chatbot(common: dict[str, Any], stack: StackSettings) -> FastAPI:
    from services.chatbot.app import create_app
    from services.chatbot.settings import ChatbotSettings

    # no answer cache: the NATS KV bucket is the session chatbot's too
    return create_app(ChatbotSettings(**common, cache_enabled=False))


SERVICES: dict[str, Callable[[dict[str, Any], StackSettings], FastAPI]] = {
    "ride-duration": _ride_duration,
    "backend": _backend,
    "classifier": _classifier,
    "chatbot": _chatbot,
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
            if response.status_code == 400 and response.text == MALFORMED_HTTP:
                return None  # uvicorn refused the bytes as HTTP: the request never reached us
            return f"{response.status_code} is {content_type}: {response.text[:120]!r}"
        body = response.json()
        if body.get("status") != response.status_code or not body.get("type"):
            return f"{response.status_code} with a malformed problem body {body}"
    return None


def _common(issuer: LocalIssuer, stack: StackSettings, database_url: str) -> dict[str, Any]:
    """Settings every service gets here: jwt mode on the local issuer, the session's servers."""
    return {
        **issuer.settings(),
        "database_url": database_url,
        "triton_grpc_url": stack.triton_grpc_url,
        "nats_url": stack.nats_url,
        "log_level": "ERROR",
        "request_timeout_s": 10.0,
    }


def guarded_routes(app: FastAPI) -> dict[tuple[str, str], str]:
    """(method, path template) -> the scope it needs, for every route but the open paths."""
    open_paths = app.security.open_paths  # type: ignore[attr-defined]
    routes: dict[tuple[str, str], str] = {}
    for path, route in api_routes(app.routes):
        if path not in open_paths:
            scope = policy_of_route(route).scope
            assert scope is not None, f"{path} declares no scope"
            routes.update({(method, path): scope for method in route.methods or ()})
    fast = getattr(app, "fast_routes", {})
    routes.update({key: route.scope for key, route in fast.items()})  # served before FastAPI
    return routes


def _concrete(template: str) -> str:
    """A path of the template: every parameter an unknown id (the guard comes first)."""
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), template)


#: A scope each scope does not include (admin includes every other).
LACKING = {"read": "write", "write": "read", "admin": "write"}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_route_refuses_what_it_must_and_serves_what_it_should(
    service: str,
    stack_settings: StackSettings,
    fuzz_database: str,
    issuer: LocalIssuer,
) -> None:
    app = SERVICES[service](_common(issuer, stack_settings, fuzz_database), stack_settings)
    routes = guarded_routes(app)
    failures: list[str] = []
    with serving(app) as base_url, requests.Session() as session:
        # every operation of the OpenAPI document is one of the routes walked here
        document = session.get(f"{base_url}/openapi.json", timeout=30).json()
        operations = {
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method in item
            if (method.upper(), path) not in {("GET", p) for p in OPEN_PATHS}
        }
        assert operations and operations <= set(routes), operations - set(routes)

        def call(method: str, path: str, scopes: list[str] | None) -> requests.Response:
            headers = {}
            if scopes is not None:
                token = issuer.token(sub=f"matrix-{service}", scopes=scopes)
                headers["authorization"] = f"Bearer {token}"
            return session.request(method, base_url + path, headers=headers, timeout=30)

        for (method, template), scope in sorted(routes.items()):
            path, where = _concrete(template), f"{method} {template} ({scope})"
            anonymous = call(method, path, None)
            if anonymous.status_code != 401 or "www-authenticate" not in anonymous.headers:
                failures.append(f"{where} without credentials: {anonymous.status_code}")
            for lacking in ([], [LACKING[scope]]):
                refused = call(method, path, lacking)
                if refused.status_code != 403:
                    failures.append(f"{where} with {lacking}: {refused.status_code}")
            for response in (anonymous, refused):
                problem = problem_of(response)
                if problem is not None:
                    failures.append(f"{where}: {problem}")
            served = call(method, path, [scope])
            if served.status_code in (401, 403) or served.status_code >= 500:
                failures.append(f"{where} with {scope!r}: {served.status_code} {served.text[:120]}")
    print(f"{service}: {len(routes)} guarded routes")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_generated_requests(
    service: str,
    stack_settings: StackSettings,
    fuzz_database: str,
    issuer: LocalIssuer,
) -> None:
    app = SERVICES[service](_common(issuer, stack_settings, fuzz_database), stack_settings)
    headers = {"authorization": f"Bearer {issuer.token(sub='fuzzer', scopes=['admin'])}"}
    failures: list[str] = []
    cases = 0
    with serving(app) as base_url, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations, "no operation in the OpenAPI document"
        examples = max(EXAMPLES, math.ceil(MIN_CASES_PER_SERVICE / (2 * len(operations))))
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=examples,
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
    assert cases >= 5 * len(operations) and cases >= MIN_CASES_PER_SERVICE // 2
