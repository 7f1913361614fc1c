"""Rollout candidates of ride_duration: a deliberately worse and a better-or-equal version.

Rollout tests and demos need versions whose predictions really differ. Both are the same
pipeline as the served model (``train_model``: same features, split, ONNX export and check)
with other hyperparameters:

- ``worse``: 4 boosting iterations at a low learning rate, shallow trees: badly underfit, its
  MAE is several times the served model's;
- ``better``: a higher learning rate with fewer iterations: as good as the served model (within
  a few percent of its MAE) and quicker to train.

Each is written as the next version of ``<repo>/ride_duration`` without touching the build
stamp (a candidate is not what ``models build`` would make); the card says which candidate it
is. Triton (``version_policy: all``) loads it on ``load_model``; :func:`remove_version` takes a
candidate out again.

    result = publish_candidate(repo, quality="worse", seed=7, rows=40_000)
    await triton.load_model("ride_duration")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from models.repository import MODELS, SYNTHETIC_SOURCE, BuildResult, publish_version
from models.ride_duration.data import generate_trips
from models.ride_duration.train import HGB_PARAMS, MODEL_NAME, TrainedModel, train_model

Quality = Literal["worse", "better"]

CANDIDATE_PARAMS: Final[dict[str, dict[str, Any]]] = {
    "worse": {
        **HGB_PARAMS,
        "learning_rate": 0.05,
        "max_iter": 4,
        "max_leaf_nodes": 4,
    },
    "better": {
        **HGB_PARAMS,
        "learning_rate": 0.15,
        "max_iter": 200,
    },
}

SPEC: Final = next(spec for spec in MODELS if spec.name == MODEL_NAME)


def train_candidate(*, quality: Quality, seed: int, rows: int) -> TrainedModel:
    """Train the ``quality`` candidate on ``rows`` synthetic trips (seed ``seed``)."""
    trips = generate_trips(rows, seed=seed)
    trained = train_model(
        trips, seed=seed, source=SYNTHETIC_SOURCE, params=CANDIDATE_PARAMS[quality]
    )
    trained.card["candidate"] = quality
    return trained


def publish_candidate(
    repo_dir: Path,
    *,
    quality: Quality,
    seed: int,
    rows: int,
    log: Callable[[str], None] = lambda _: None,
) -> BuildResult:
    """Train the candidate and write it as the next version of ride_duration in ``repo_dir``."""
    trained = train_candidate(quality=quality, seed=seed, rows=rows)
    key = {"candidate": quality, "seed": seed, "rows": rows}
    return publish_version(repo_dir, SPEC, trained, key=key, log=log, stamp=False)
