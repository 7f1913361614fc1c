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
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
import schemathesis.engine
from fastapi import FastAPI
from schemathesis.engine import events

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
    # a ride's event stream ends after 0.5 s (15 min by default): a client reads it to its end
    settings = BackendSettings(
        **common,
        relay=False,
        ride_duration_url=url,
        sse_max_duration_s=0.5,
        sse_recheck_interval_s=0.25,
    )
    return create_app(settings)


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


@dataclass
class FuzzReport:
    """What one schemathesis run found: its cases, each unique failure, each error."""

    operations: int = 0
    cases: int = 0
    cases_by_phase: dict[str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _describe(failure: Any, check: str, case: Any, interaction: Any) -> str:
    response = interaction.response if interaction is not None else None
    status = response.status_code if response is not None else "no response"
    body = response.text[:160] if response is not None else ""
    title = getattr(failure, "title", type(failure).__name__)
    message = " ".join(str(getattr(failure, "message", "")).split())[:300]
    sent = ""
    if interaction is not None:
        request = interaction.request
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        sent = f" | sent {request.uri} {headers} {str(request.body)[:300]!r}"
    return f"[{check}] {case.method} {case.path} -> {status}: {title}: {message} | {body!r}{sent}"


#: What ``positive_data_acceptance`` accepts for a valid request by default (schemathesis's own
#: list: a valid request may still meet an unknown id, 404, or the server's state, 409).
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
#: Operations whose valid input a JSON Schema cannot state, and the status their documents give
#: for it (docs/decisions.md, decision 48). Every other check, and this one with every other
#: status, still holds for them.
BEYOND_THE_SCHEMA: dict[tuple[str, str], list[str]] = {
    # the bytes of `image` are no image: 415 (a schema names a media type, it cannot check one)
    ("POST", "/v1/classify"): ["415"],
    # the file is no PDF (415), or a PDF without text, encrypted or unreadable (422)
    ("POST", "/v1/documents"): ["415", "422"],
    # a table's rules span its variants (exactly one stable, the served weights sum to 1) and
    # Triton's repository (every model version must be served): 422 naming each broken rule
    ("PUT", "/v1/admin/routing"): ["422"],
    # the Open Inference Protocol's request schema is one for every model: the inputs a model
    # takes (names, datatypes, shapes) are in its metadata (GET /v2/models/{name}); a request
    # without them is a 400 naming each (the protocol's status for an input error)
    ("POST", "/v2/models/{model_name}/infer"): ["400"],
    ("POST", "/v2/models/{model_name}/versions/{model_version}/infer"): ["400"],
}


def _operations_config() -> list[dict[str, Any]]:
    return [
        {
            "include-name": f"{method} {path}",  # two include-* keys would be either one
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES + statuses}
            },
        }
        for (method, path), statuses in BEYOND_THE_SCHEMA.items()
    ]


def _outcomes_once_each(context: Any, case: Any) -> bool:
    """A valid batch of outcomes names each prediction_id once (the description says so; a JSON
    Schema cannot: ``uniqueItems`` compares whole items): no positive case repeats one."""
    if case.operation.label != "POST /v1/outcomes" or case.meta is None:
        return True
    if not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return True
    ids = [o.get("prediction_id") for o in case.body.get("outcomes", []) if isinstance(o, dict)]
    return len(ids) == len(set(ids))


def run_schemathesis(base_url: str, *, token: str | None, examples: int) -> FuzzReport:
    """Every phase (examples, coverage, fuzzing, stateful) with every check schemathesis has.

    ``token``: the bearer token of the document's ``BearerToken`` scheme (AUTH_MODE=jwt), given
    as schemathesis's auth so ``ignored_auth`` can send each request without it and with a
    forged one.
    """
    auth = {"auth": {"openapi": {"BearerToken": {"bearer": token}}}} if token else {}
    config = schemathesis.Config.from_dict(
        {
            **auth,
            "operations": _operations_config(),
            "base-url": base_url,
            "request-timeout": 30,
            "continue-on-failure": True,
            "cache": {"enabled": False},
            "generation": {
                "max-examples": examples,
                "mode": "all",
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "phases": {"stateful": {"max-steps": 10, "generation": {"max-examples": examples}}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    schema.hook("filter_case")(_outcomes_once_each)
    report = FuzzReport(operations=len(list(schema.get_all_operations())))
    seen: set[Any] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            phase = event.phase.value
            report.cases += len(recorder.cases)
            report.cases_by_phase[phase] = report.cases_by_phase.get(phase, 0) + len(recorder.cases)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    info = check.failure_info
                    if info is None or info.failure in seen:
                        continue
                    seen.add(info.failure)
                    case_id_of = info.failure.case_id or case_id
                    report.findings.append(
                        _describe(
                            info.failure,
                            check.name,
                            recorder.cases[case_id_of].value,
                            recorder.interactions.get(case_id_of),
                        )
                    )
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.title}: {event.info.message[:300]}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            for failure in event.failures:
                report.findings.append(f"[after run] {failure.title}: {failure.message[:300]}")
    return report


AUTH_MODES = ("none", "jwt")
#: hypothesis warns when it prints a large generated body (a 2,000-character question)
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@pytest.mark.parametrize("auth_mode", AUTH_MODES)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_check_over_every_operation(
    service: str,
    auth_mode: str,
    stack_settings: StackSettings,
    fuzz_database: str,
    issuer: LocalIssuer,
) -> None:
    common = _common(issuer, stack_settings, fuzz_database)
    token = None
    if auth_mode == "jwt":
        token = issuer.token(sub="fuzzer", scopes=["admin"], exp=int(time.time()) + 4 * 3600)
    else:
        common = {key: value for key, value in common.items() if not key.startswith("auth_")}
    app = SERVICES[service](common, stack_settings)
    with serving(app) as base_url:
        operations = len(requests.get(f"{base_url}/openapi.json", timeout=30).json()["paths"])
        examples = max(EXAMPLES, math.ceil(MIN_CASES_PER_SERVICE / (2 * max(operations, 1))))
        report = run_schemathesis(base_url, token=token, examples=examples)
    phases = ", ".join(f"{phase} {n}" for phase, n in sorted(report.cases_by_phase.items()))
    print(
        f"schemathesis {service} AUTH_MODE={auth_mode}: {report.cases} cases over "
        f"{report.operations} operations ({phases}); {len(report.findings)} findings, "
        f"{len(report.errors)} errors"
    )
    for line in report.findings + report.errors:
        print("  " + line)
    assert not report.findings and not report.errors, (
        f"{len(report.findings)} findings, {len(report.errors)} errors"
    )
    assert report.cases >= MIN_CASES_PER_SERVICE // 2
