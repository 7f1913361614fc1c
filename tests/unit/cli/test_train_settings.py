"""`modelfleet train classifier` talks to the servers its environment names (a pod), else to the
local stack's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services import cli
from services.jobs import classifier_retrain


def run_train(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *argv: str) -> Any:
    seen: dict[str, Any] = {}

    async def fake_run_retrain(**kwargs: Any) -> Any:
        seen.update(kwargs)
        outcome = SimpleNamespace(
            serving_macro_f1=None, candidate_macro_f1=0.9, serving_version="1"
        )
        return SimpleNamespace(run_id=1, status="rejected", outcome=outcome)

    monkeypatch.setattr(classifier_retrain, "run_retrain", fake_run_retrain)
    monkeypatch.setenv("MODELFLEET_HOME", str(tmp_path))
    monkeypatch.setenv("MODELFLEET_POSTGRES_PORT", "6543")
    monkeypatch.setenv("MODELFLEET_TRITON_GRPC_PORT", "9101")
    assert cli.main(["train", "classifier", *argv]) == 0
    return seen["settings"]


def test_local_stack_urls_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TRITON_GRPC_URL", raising=False)
    settings = run_train(monkeypatch, tmp_path)
    assert ":6543/" in settings.database_url
    assert settings.triton_grpc_url.endswith(":9101")


def test_environment_urls_win_in_a_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://modelfleet@db.internal:5432/modelfleet")
    monkeypatch.setenv("TRITON_GRPC_URL", "triton.internal:8001")
    settings = run_train(monkeypatch, tmp_path)
    assert settings.database_url == "postgresql://modelfleet@db.internal:5432/modelfleet"
    assert settings.triton_grpc_url == "triton.internal:8001"


def test_the_gate_and_seed_come_from_the_environment_unless_flags_say(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A Job's ConfigMap tunes the retraining (CLASSIFIER_RETRAIN_*); the CLI's flags used to
    # override it with their own defaults (min_gain 0.0, seed 43).
    monkeypatch.setenv("CLASSIFIER_RETRAIN_MIN_GAIN", "-1")
    monkeypatch.setenv("CLASSIFIER_RETRAIN_SEED", "7")
    settings = run_train(monkeypatch, tmp_path)
    assert (settings.min_gain, settings.seed) == (-1.0, 7)
    settings = run_train(monkeypatch, tmp_path, "--min-gain", "0.02", "--seed", "3")
    assert (settings.min_gain, settings.seed) == (0.02, 3)
    monkeypatch.delenv("CLASSIFIER_RETRAIN_MIN_GAIN")
    monkeypatch.delenv("CLASSIFIER_RETRAIN_SEED")
    settings = run_train(monkeypatch, tmp_path)
    assert (settings.min_gain, settings.seed) == (0.0, 43)
