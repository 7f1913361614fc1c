"""The versions of a Triton model and their model cards, as every model service lists them.

The model repository (models/repository) writes each version's card into the model's config as
the parameter ``model_card.v<N>`` (a JSON string); ``GET /v1/models`` of a model service lists
the versions Triton knows with their cards. A service adds the route to its router once:

    add_models_route(router, model_of=lambda state: state.predictor.model)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from services.common.errors import TritonUnavailable
from services.common.security import require_scope
from services.common.state import state_of
from services.common.triton import TritonClient

CARD_PARAMETER_PREFIX = "model_card.v"


class ModelVersion(BaseModel):
    name: str
    version: str
    state: str
    card: dict[str, object] | None = None


class ModelList(BaseModel):
    models: list[ModelVersion]


def cards_from_config(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{version: model card} from a Triton model config (``model_card.v<N>`` parameters)."""
    cards: dict[str, dict[str, Any]] = {}
    for key, value in config.get("parameters", {}).items():
        if not key.startswith(CARD_PARAMETER_PREFIX):
            continue
        try:
            card = json.loads(value.get("string_value", ""))
        except (ValueError, AttributeError):
            continue
        if isinstance(card, dict):
            cards[key.removeprefix(CARD_PARAMETER_PREFIX)] = card
    return cards


async def list_model_versions(triton: TritonClient, model: str) -> ModelList:
    """Every version of ``model`` Triton has, oldest first, with its card; 503 when none."""
    index = await triton.repository_index()
    versions = [entry for entry in index if entry.name == model and entry.version]
    if not versions:
        raise TritonUnavailable(f"Triton has no version of model {model!r}")
    cards = cards_from_config(await triton.model_config(model))
    return ModelList(
        models=[
            ModelVersion(
                name=entry.name,
                version=entry.version,
                state=entry.state,
                card=cards.get(entry.version),
            )
            for entry in sorted(
                versions, key=lambda e: int(e.version) if e.version.isdigit() else 0
            )
        ]
    )


def add_models_route(router: APIRouter, *, model_of: Callable[[Any], str]) -> None:
    """``GET <prefix>/models`` on ``router``: the versions of the model ``model_of(state)`` names.

    ``state`` is the service's state (:mod:`services.common.state`); its Triton client answers.
    """

    @router.get(
        "/models",
        response_model=ModelList,
        summary="Model versions and their model cards",
        responses={503: {"description": "Triton is unavailable or has no version (Retry-After)"}},
        dependencies=[require_scope("read")],
    )
    async def list_models(connection: HTTPConnection) -> ModelList:
        state = state_of(connection)
        if state.triton is None:
            raise RuntimeError("this service opened no Triton client")
        return await list_model_versions(state.triton, model_of(state))
