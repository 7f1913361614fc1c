"""Versions of a model in the repository: publish, write, remove, and the configs that list them.

``write_version`` stages a new version (max+1: ONNX model, the Python-backend ``model.py``, the
card, the trainer's extra files) in a ``.staging-*`` folder and renames it into place, keeps the
``KEEP_VERSIONS`` newest, rewrites both configs (``write_configs``: every present version's card
as a config parameter) and the build stamp. ``publish_version`` and ``remove_version`` do it
under the model folder's build lock, for jobs that train (and gate) a model first or take a
rollout candidate out again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from models.repository.registry import MODELS, ModelSpec, Trained, code_hash
from models.repository.stamps import write_stamp
from models.repository.storage import CARD_FILE, locked, read_card, versions, write_atomic
from models.repository.triton_config import LOCAL_CONFIG_NAME, render_config

ONNX_MODEL_PY: Final = Path(__file__).resolve().parents[1] / "triton" / "onnx_model.py"
KEEP_VERSIONS: Final = 3

_logger = logging.getLogger(__name__)


def log_info(message: str) -> None:
    """The default ``log`` of a build: an INFO record."""
    _logger.info(message)


@dataclass(frozen=True)
class BuildResult:
    """Outcome of ``build_repository``: ``built`` is False when an identical build was found."""

    model: str
    version: int
    built: bool
    card: dict[str, Any]
    path: Path
    """The version folder."""


def write_configs(model_dir: Path, spec: ModelSpec = MODELS[0]) -> dict[int, dict[str, Any]]:
    """(Re)write both configs with the cards of the versions present; returns those cards."""
    cards = {
        version: card
        for version in versions(model_dir)
        if (card := read_card(model_dir / str(version))) is not None
    }
    write_atomic(
        model_dir / "config.pbtxt", render_config(local=False, cards=cards, spec=spec).encode()
    )
    write_atomic(
        model_dir / "configs" / f"{LOCAL_CONFIG_NAME}.pbtxt",
        render_config(local=True, cards=cards, spec=spec).encode(),
    )
    return cards


def publish_version(
    repo_dir: Path,
    spec: ModelSpec,
    trained: Trained,
    *,
    key: dict[str, Any],
    log: Callable[[str], None] = log_info,
    stamp: bool = True,
) -> BuildResult:
    """Write an already trained model as the next version of ``spec`` (under the build lock).

    For retraining jobs that train (and gate) first; ``key`` goes into the build stamp.
    ``stamp=False`` leaves the build stamp alone (a rollout candidate is not what the next
    build would make, so the next ``models build`` must not think it is up to date or stale).
    """
    model_dir = Path(repo_dir) / spec.name
    model_dir.mkdir(parents=True, exist_ok=True)
    with locked(model_dir):
        return write_version(model_dir, spec, trained, key=key, log=log, stamp=stamp)


def remove_version(repo_dir: Path, spec: ModelSpec, version: int) -> None:
    """Delete version ``version`` of ``spec`` (under the build lock) and rewrite its configs.

    For rollout candidates taken out again; Triton drops the version on the next
    ``load_model``.
    """
    model_dir = Path(repo_dir) / spec.name
    with locked(model_dir):
        if version in versions(model_dir):
            shutil.rmtree(model_dir / str(version))
        write_configs(model_dir, spec)


def write_version(
    model_dir: Path,
    spec: ModelSpec,
    trained: Trained,
    *,
    key: dict[str, Any],
    log: Callable[[str], None],
    stamp: bool = True,
) -> BuildResult:
    """Version max+1 of ``model_dir`` from ``trained``: staged, renamed into place, configs and
    stamp (unless ``stamp`` is false) replaced atomically, only the newest ``KEEP_VERSIONS``
    kept. Call under the lock."""
    existing = versions(model_dir)
    version = (existing[-1] if existing else 0) + 1
    card: dict[str, Any] = {
        "name": spec.name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in trained.card.items() if k != "name"},
        "code_hash": key.get("code_hash", code_hash(spec.code_paths)),
    }
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
    try:
        (staging / "model.onnx").write_bytes(trained.onnx_bytes)
        shutil.copyfile(ONNX_MODEL_PY, staging / "model.py")
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
        artifacts: dict[str, bytes] = getattr(trained, "artifacts", None) or {}
        for name, content in artifacts.items():
            (staging / Path(name).name).write_bytes(content)
        for file in staging.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        staging.chmod(0o755)
        os.rename(staging, model_dir / str(version))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in versions(model_dir)[:-KEEP_VERSIONS]:
        log(f"{spec.name}: removing old version {old}")
        shutil.rmtree(model_dir / str(old), ignore_errors=True)
    write_configs(model_dir, spec)
    if stamp:
        write_stamp(model_dir, key=key, version=version, built_at=card["created_at"])
    _log_written(spec, version, card["metrics"], log)
    return BuildResult(spec.name, version, True, card, model_dir / str(version))


def _log_written(
    spec: ModelSpec, version: int, metrics: dict[str, Any], log: Callable[[str], None]
) -> None:
    if "paraphrase_cosine" in metrics:
        log(
            f"{spec.name}: version {version} written: paraphrase cosine "
            f"{metrics['paraphrase_cosine']:.2f}, unrelated {metrics['unrelated_cosine']:.2f}"
        )
    elif "macro_f1" in metrics:
        log(
            f"{spec.name}: version {version} written: macro-F1 {metrics['macro_f1']:.3f} "
            f"(baseline {metrics['baseline_macro_f1']:.3f})"
        )
    else:
        log(
            f"{spec.name}: version {version} written: rmse {metrics['rmse']:.2f} {spec.unit} "
            f"(baseline {metrics['baseline_rmse']:.2f}, "
            f"{metrics['rmse_improvement_vs_baseline']:.0%} better)"
        )
