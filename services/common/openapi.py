"""A service's OpenAPI document, made to tell the truth once for every route.

FastAPI writes an operation from its route: the parameters, the body, the success response's
model and what the route's ``responses`` declare. What a route answers besides is decided in
common places (the security layer, the error handlers, the state), so :func:`install_contract`,
which the app factory applies, adds it to every operation when the document is built, from the
route's policy (:func:`services.common.security.guard.policy_of_route`) and the settings:

    a body                       413 (over the route's body limit); a body FastAPI reads (a
                                 model): 400 (not parseable), 415 (a media type other than
                                 JSON), 422 (invalid fields); a route reading its own body
                                 declares those itself
    parameters                   422
    AUTH_MODE=jwt                401 (+ WWW-Authenticate), 403, and the security requirement (a
                                 bearer token, or an API key in X-API-Key); none in AUTH_MODE=none
    a rate limit (<P>_RATE_LIMIT_PER_S > 0)   429 (+ Retry-After)
    every route but the open paths            503 (+ Retry-After: a dependency down, the service
                                 still starting), 504 (the request deadline, a dependency's)

Every error status gets the :class:`~services.common.errors.Problem` schema as
``application/problem+json`` unless the route documents a body of its own (the Open Inference
Protocol's ``{"error"}``); every response names ``X-Request-ID``. Schemas given with local
``$defs`` (an event stream's, :func:`services.common.sse.openapi_content`) are moved into
``components``. ``tests/integration/test_schemathesis.py`` holds every service to its document.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from services.common.errors import PROBLEM_JSON, Problem
from services.common.logging import REQUEST_ID_HEADER
from services.common.security.guard import api_routes, policy_of_route
from services.common.settings import ServiceSettings

Document = dict[str, Any]
_COMPONENTS = "#/components/schemas/"
_DEFS = "#/$defs/"
_PROBLEM_REF = {"$ref": _COMPONENTS + "Problem"}
_BEARER, _API_KEY = "BearerToken", "ApiKey"
SECURITY_SCHEMES: dict[str, Any] = {
    _BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "An OIDC access token, or an API key (`mfk_...`) as the bearer token.",
    },
    _API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key (`modelfleet apikey create`).",
    },
}


def _header(description: str, *, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


RETRY_AFTER = {"Retry-After": _header("Seconds to wait before retrying.")}
_REQUEST_ID = {
    REQUEST_ID_HEADER: _header("The request's id (the caller's X-Request-ID, else a new one).")
}

#: status -> (description, headers) of what a route answers through its policy.
_STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The body is not JSON, or cannot be parsed as the media type it names", {}),
    401: (
        "No credentials, or invalid ones",
        {"WWW-Authenticate": _header("The challenge: `Bearer ...`.")},
    ),
    403: ("The credentials lack the route's scope", {}),
    413: ("The body is over the route's limit", {}),
    415: ("A content type the route does not take", {}),
    422: ("Invalid input: `errors` names each invalid field", {}),
    429: ("Over the caller's rate limit", RETRY_AFTER),
    503: ("A dependency is unavailable, or the service is still starting", RETRY_AFTER),
    504: ("The request, or a dependency, missed its deadline", {}),
}


def policy_statuses(
    *,
    body: bool,
    model_body: bool,
    parameters: bool,
    guarded: bool,
    scoped: bool,
    settings: ServiceSettings,
) -> list[int]:
    """The statuses a route answers through its policy (see the module's table).

    ``model_body``: FastAPI reads the body (a pydantic model): 400, 415 (the layer) and 422 are
    its; a route that reads its own body (``body`` only) gets 413 and declares the rest itself.
    """
    statuses: list[int] = []
    if body:
        statuses.append(413)
    if model_body:
        statuses += [400, 415, 422]
    elif parameters:
        statuses.append(422)
    if guarded:
        if settings.auth_mode == "jwt":
            statuses += [401, 403] if scoped else [401]
        if settings.rate_limit_per_s > 0:
            statuses.append(429)
        statuses += [503, 504]
    return sorted(statuses)


def _rewrite_refs(node: Any) -> Any:
    """``node`` with every ``#/$defs/X`` reference made ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {
            key: (
                _COMPONENTS + value.removeprefix(_DEFS)
                if key == "$ref" and isinstance(value, str) and value.startswith(_DEFS)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def hoist_defs(node: Any, schemas: dict[str, Any]) -> Any:
    """``node`` without local ``$defs``: each moved into ``schemas``, references rewritten."""
    if isinstance(node, list):
        return [hoist_defs(item, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: hoist_defs(value, schemas) for key, value in node.items()}
    defs = node.pop("$defs", None)
    if defs is None:
        return node
    for name, schema in defs.items():
        schema = _rewrite_refs(schema)
        existing = schemas.setdefault(name, schema)
        if existing != schema:
            raise ValueError(f"two different schemas are named {name!r} in one document")
    return _rewrite_refs(node)


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _without_null(parameter: dict[str, Any]) -> None:
    """An optional parameter's schema without FastAPI's ``null``: a header or query value is
    text, so "no value" is leaving the parameter out, never the text ``null``."""
    schema = parameter.get("schema", {})
    variants = schema.get("anyOf")
    if isinstance(variants, list):
        kept = [v for v in variants if v != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(variants):
            del schema["anyOf"]
            schema.update(kept[0])


def _document_operation(operation: dict[str, Any], statuses: list[int], *, secured: bool) -> None:
    for parameter in operation.get("parameters", []):
        _without_null(parameter)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in statuses:
        description, headers = _STATUSES[status]
        response = responses.setdefault(str(status), {"description": description})
        for name, header in headers.items():
            response.setdefault("headers", {}).setdefault(name, header)
    for code, response in responses.items():
        if code.isdigit() and int(code) >= 400:
            if _is_fastapi_validation_error(response) or not response.get("content"):
                response["content"] = {PROBLEM_JSON: {"schema": dict(_PROBLEM_REF)}}
        response.setdefault("headers", {}).update(copy.deepcopy(_REQUEST_ID))
    operation.pop("security", None)
    if secured:
        operation["security"] = [{_BEARER: []}, {_API_KEY: []}]


def _declares_parameters(dependant: Dependant) -> bool:
    """A path, query or header parameter in the route or its dependencies (FastAPI checks it)."""
    own = dependant.path_params or dependant.query_params or dependant.header_params
    return bool(own) or any(_declares_parameters(d) for d in dependant.dependencies)


def _references(node: Any, name: str) -> bool:
    if isinstance(node, dict):
        return any(
            (key == "$ref" and value == _COMPONENTS + name) or _references(value, name)
            for key, value in node.items()
        )
    if isinstance(node, list):
        return any(_references(item, name) for item in node)
    return False


def contract(
    document: Document, app: FastAPI, settings: ServiceSettings, open_paths: Collection[str]
) -> Document:
    """``document`` (FastAPI's) with what every route answers through its policy."""
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=_COMPONENTS + "{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    jwt = settings.auth_mode == "jwt"
    paths: dict[str, Any] = document.get("paths", {})
    for path, route in api_routes(app.routes):
        item = paths.get(path)
        if item is None or not route.include_in_schema:
            continue
        guarded = path not in open_paths
        scoped = guarded and policy_of_route(route, settings).scope is not None
        # parameters FastAPI validates (422); one only documented (openapi_extra) is the route's
        parameters = _declares_parameters(route.dependant)
        model_body = route.body_field is not None
        for method in route.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            statuses = policy_statuses(
                body="requestBody" in operation,
                model_body=model_body,
                parameters=parameters,
                guarded=guarded,
                scoped=scoped,
                settings=settings,
            )
            _document_operation(operation, statuses, secured=jwt and guarded)
    document["paths"] = hoist_defs(paths, schemas)
    components.pop("securitySchemes", None)
    if jwt:
        components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and not _references(document, unused):
            del schemas[unused]
    return document


def install_contract(
    app: FastAPI, settings: ServiceSettings, *, open_paths: Collection[str]
) -> None:
    """Make ``app.openapi()`` the document :func:`contract` completes (built once, then kept)."""
    generate: Callable[[], Document] = app.openapi
    built: list[Document] = []

    def openapi() -> Document:
        if not built:
            built.append(contract(generate(), app, settings, open_paths))
            app.openapi_schema = built[0]
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]
