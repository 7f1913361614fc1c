"""Building the repository: train and write a new version of each model unless already built.

``build_models(repo_dir)`` builds every model of ``MODELS`` by one code path and returns a
result per model; ``build_repository(repo_dir)`` does the same and returns ride_duration's
result (what its callers show). A model is skipped when its build stamp shows the same code
hash, seed, rows and data were already built (unless ``force``); otherwise it gets version
max+1 (``publishing.write_version``). The data is made or loaded once per call, and only when
some model needs a build.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from models.repository.publishing import BuildResult, log_info, write_configs, write_version
from models.repository.registry import (
    DEFAULT_TRIPS,
    MODELS,
    ModelSpec,
    code_hash,
    default_catalogue_rows,
)
from models.repository.stamps import data_fingerprint, stamped_version
from models.repository.storage import locked, read_card, versions
from models.repository.training_data import TrainingData, training_data
from models.repository.triton_config import LOCAL_CONFIG_NAME


def build_repository(
    repo_dir: Path,
    *,
    seed: int = 42,
    rows: int = DEFAULT_TRIPS,
    data_path: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = log_info,
    catalogue_rows: int | None = None,
    catalogue_path: Path | None = None,
) -> BuildResult:
    """Build every model of ``MODELS`` (see :func:`build_models`); return ride_duration's result."""
    results = build_models(
        repo_dir,
        seed=seed,
        rows=rows,
        data_path=data_path,
        force=force,
        log=log,
        catalogue_rows=catalogue_rows,
        catalogue_path=catalogue_path,
    )
    return results[0]


def build_models(
    repo_dir: Path,
    *,
    seed: int = 42,
    rows: int = DEFAULT_TRIPS,
    data_path: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = log_info,
    models: tuple[ModelSpec, ...] = MODELS,
    catalogue_rows: int | None = None,
    catalogue_path: Path | None = None,
) -> list[BuildResult]:
    """Train and write a new version of each model in ``repo_dir`` unless already built.

    ``data_path``: real TLC parquet/CSV file or folder (else synthetic trips from ``seed``);
    at most ``rows`` trips are used (a seeded sample of real data). ``catalogue_path``: a real
    product catalogue (JSON lines/CSV, see ``models.classifier.data.load_catalogue``), else
    ``catalogue_rows`` synthetic products (default: see ``TRIPS_PER_PRODUCT``); at most
    ``catalogue_rows`` products of a real one. One result per model, in ``models`` order.
    """
    if catalogue_rows is None:
        catalogue_rows = default_catalogue_rows(rows)
    if rows <= 0 or catalogue_rows <= 0:
        raise ValueError("rows must be positive")
    sources = training_data(
        seed=seed,
        rows=rows,
        data_path=data_path,
        catalogue_rows=catalogue_rows,
        catalogue_path=catalogue_path,
        log=log,
    )
    return [
        _build_one(Path(repo_dir), spec, trips=sources[spec.data], force=force, log=log)
        for spec in models
    ]


def _build_one(
    repo_dir: Path,
    spec: ModelSpec,
    *,
    trips: TrainingData,
    force: bool,
    log: Callable[[str], None],
) -> BuildResult:
    model_dir = repo_dir / spec.name
    model_dir.mkdir(parents=True, exist_ok=True)
    data_path = trips.data_path
    key = {
        "code_hash": code_hash(spec.code_paths),
        "seed": trips.seed,
        "rows": trips.rows,
        "data_path": str(data_path.resolve()) if data_path is not None else None,
        "data_fingerprint": data_fingerprint(data_path),
    }
    with locked(model_dir):
        for stale in model_dir.glob(".staging-*"):  # left by a crashed build
            shutil.rmtree(stale, ignore_errors=True)
        skipped = None if force else _up_to_date(model_dir, key)
        if skipped is not None:
            version, card = skipped
            if (
                not (model_dir / "config.pbtxt").exists()
                or not (model_dir / "configs" / f"{LOCAL_CONFIG_NAME}.pbtxt").exists()
            ):
                write_configs(model_dir, spec)
            log(
                f"{spec.name}: version {version} is up to date "
                f"(seed {trips.seed}, {trips.rows} rows)"
            )
            return BuildResult(spec.name, version, False, card, model_dir / str(version))
        return _build(model_dir, spec, key=key, trips=trips, log=log)


def _up_to_date(model_dir: Path, key: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The stamped version and its card when it was built from ``key`` and is still complete."""
    version = stamped_version(model_dir, key)
    if version is None:
        return None
    version_dir = model_dir / str(version)
    card = read_card(version_dir)
    if card is None or not (version_dir / "model.onnx").is_file():
        return None
    return version, card


def _build(
    model_dir: Path,
    spec: ModelSpec,
    *,
    key: dict[str, Any],
    trips: TrainingData,
    log: Callable[[str], None],
) -> BuildResult:
    existing = versions(model_dir)
    data = trips.get() if spec.data != "none" else pd.DataFrame()
    log(f"{spec.name}: training version {(existing[-1] if existing else 0) + 1}")
    trained = spec.train(data, seed=trips.seed, source=trips.source)
    return write_version(model_dir, spec, trained, key=key, log=log)
