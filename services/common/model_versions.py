"""The versions of a Triton model and their model cards, as every model service lists them.

The model repository (models/repository) writes each version's card into the model's config as
the parameter ``model_card.v<N>`` (a JSON string); ``GET /v1/models`` of a model service lists
the versions Triton knows with their cards:

    @router.get("/models", response_model=ModelList, dependencies=[require_scope("read")])
    async def list_models(state: StateDep) -> ModelList:
        return await list_model_versions(state.triton, state.predictor.model)
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from services.common.errors import TritonUnavailable
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
