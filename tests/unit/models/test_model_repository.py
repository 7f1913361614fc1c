"""Unit tests of the Triton model repository build (layout, skip, versions, atomicity)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from models import repository
from models.repository import BuildResult, build_repository, publishing
from models.ride_duration.data import clean_trips, generate_trips
from models.ride_duration.train import onnx_session, trip_features
from services.domain.taxi.features import FEATURE_NAMES, N_FEATURES

ROWS = 6_000


def _config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildResult]:
    repo = tmp_path_factory.mktemp("repo")
    return repo, build_repository(repo, seed=1, rows=ROWS, log=lambda _m: None)


def test_layout_configs_and_card(built: tuple[Path, BuildResult]) -> None:
    repo, result = built
    assert result.built and result.version == 1 and result.model == "ride_duration"
    model_dir = repo / "ride_duration"
    version_dir = model_dir / "1"
    assert result.path == version_dir
    assert {p.name for p in version_dir.iterdir()} == {"model.onnx", "model.py", "model_card.json"}
    assert (version_dir / "model.py").read_bytes() == repository.ONNX_MODEL_PY.read_bytes()
    card = json.loads((version_dir / "model_card.json").read_text())
    assert card == result.card
    assert card["version"] == 1 and card["name"] == "ride_duration"
    assert card["features"] == list(FEATURE_NAMES)
    assert card["data"]["source"] == "synthetic-tlc" and card["data"]["seed"] == 1
    assert card["code_hash"] == repository.code_hash()
    assert {"rmse", "mae", "baseline_rmse", "baseline_mae", "rmse_improvement_vs_baseline"} <= set(
        card["metrics"]
    )
    for config_path, local in (
        (model_dir / "config.pbtxt", False),
        (model_dir / "configs" / "local.pbtxt", True),
    ):
        config = _config(config_path)
        assert config.name == "ride_duration"
        assert (config.backend, config.platform) == (
            ("python", "") if local else ("", "onnxruntime_onnx")
        )
        assert config.max_batch_size == 1024
        assert config.dynamic_batching.max_queue_delay_microseconds == 200
        assert config.instance_group[0].count == 2
        assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert config.version_policy.HasField("all")  # every version: routing picks one
        assert [(i.name, list(i.dims)) for i in config.input] == [("features", [N_FEATURES])]
        assert [(o.name, list(o.dims)) for o in config.output] == [("duration_minutes", [1])]
        assert config.input[0].data_type == model_config_pb2.TYPE_FP32
        assert json.loads(config.parameters["model_card.v1"].string_value) == card


def test_onnx_in_repository_predicts(built: tuple[Path, BuildResult]) -> None:
    repo, _ = built
    onnx_bytes = (repo / "ride_duration" / "1" / "model.onnx").read_bytes()
    x = trip_features(clean_trips(generate_trips(500, seed=99)))
    (pred,) = onnx_session(onnx_bytes).run(["duration_minutes"], {"features": x})
    assert pred.shape == (len(x), 1) and np.isfinite(pred).all() and (pred > 0).mean() > 0.99


def test_second_build_is_skipped(built: tuple[Path, BuildResult]) -> None:
    repo, first = built
    messages: list[str] = []
    again = build_repository(repo, seed=1, rows=ROWS, log=messages.append)
    assert not again.built and again.version == 1 and again.card == first.card
    assert "up to date" in messages[-1]
    assert sorted(p.name for p in (repo / "ride_duration").iterdir() if p.name.isdigit()) == ["1"]


def test_new_seed_builds_v2_and_keeps_three_versions(tmp_path: Path) -> None:
    def quiet(_message: str) -> None:
        return None

    first = build_repository(tmp_path, seed=1, rows=3_000, log=quiet)
    second = build_repository(tmp_path, seed=2, rows=3_000, log=quiet)
    assert (first.version, second.version, second.built) == (1, 2, True)
    config = _config(tmp_path / "ride_duration" / "configs" / "local.pbtxt")
    assert set(config.parameters) == {"model_card.v1", "model_card.v2"}
    assert json.loads(config.parameters["model_card.v2"].string_value)["data"]["seed"] == 2
    build_repository(tmp_path, seed=2, rows=3_000, force=True, log=quiet)
    fourth = build_repository(tmp_path, seed=3, rows=3_000, log=quiet)
    assert fourth.version == 4
    versions = sorted(
        int(p.name) for p in (tmp_path / "ride_duration").iterdir() if p.name.isdigit()
    )
    assert versions == [2, 3, 4]
    config = _config(tmp_path / "ride_duration" / "config.pbtxt")
    assert set(config.parameters) == {"model_card.v2", "model_card.v3", "model_card.v4"}


def test_crashed_build_leaves_no_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(publishing.shutil, "copyfile", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_repository(tmp_path, seed=1, rows=2_000, log=lambda _m: None)
    model_dir = tmp_path / "ride_duration"
    assert not [p for p in model_dir.iterdir() if p.name.isdigit() or p.name.startswith(".stag")]
    assert not (model_dir / repository.STAMP_FILE).exists()


def test_real_data_path_is_used(tmp_path: Path) -> None:
    data = tmp_path / "trips.parquet"
    generate_trips(3_000, seed=11).to_parquet(data, index=False)
    result = build_repository(
        tmp_path / "repo", seed=4, rows=2_500, data_path=data, log=lambda _m: None
    )
    assert result.card["data"]["source"] == str(data)
    assert result.card["data"]["rows_raw"] == 2_500


def test_registry_builds_tip_and_cost_beside_ride_duration(
    built: tuple[Path, BuildResult],
) -> None:
    repo, _ = built
    results = repository.build_models(repo, seed=1, rows=ROWS, log=lambda _m: None)
    assert [r.model for r in results] == [
        "ride_duration",
        "ride_duration_sensor",
        "tip_amount",
        "total_amount",
        "classifier",
        "minilm_l6_v2",
    ]
    assert not any(r.built for r in results)  # built together by the fixture's call
    for name in ("config.pbtxt", "configs/local.pbtxt"):  # both parse as ModelConfig
        embedding = _config(repo / "minilm_l6_v2" / name)
        assert [(i.name, list(i.dims)) for i in embedding.input] == [
            ("input_ids", [-1]),
            ("attention_mask", [-1]),
            ("token_type_ids", [-1]),
        ]
        assert [(o.name, list(o.dims)) for o in embedding.output] == [
            ("last_hidden_state", [-1, 384])
        ]
        assert embedding.max_batch_size == 64 and embedding.HasField("dynamic_batching")
    embedder = results[5]
    assert embedder.card["sha256"] and embedder.card["metrics"]["paraphrase_cosine"] > 0.5
    sensor = _config(repo / "ride_duration_sensor" / "configs" / "local.pbtxt")
    assert [(i.name, list(i.dims)) for i in sensor.input] == [("features", [N_FEATURES + 1])]
    for result in results[2:4]:
        config = _config(repo / result.model / "configs" / "local.pbtxt")
        assert config.name == result.model and config.backend == "python"
        assert [(o.name, list(o.dims)) for o in config.output] == [(result.model, [1])]
        assert [(i.name, list(i.dims)) for i in config.input] == [("features", [N_FEATURES])]
        card = json.loads(config.parameters["model_card.v1"].string_value)
        assert card == result.card and card["metrics"]["unit"] == "USD"
        spec = next(s for s in repository.MODELS if s.name == result.model)
        assert card["code_hash"] == repository.code_hash(spec.code_paths)
        x = trip_features(clean_trips(generate_trips(200, seed=9)))
        onnx_bytes = (result.path / "model.onnx").read_bytes()
        (pred,) = onnx_session(onnx_bytes).run([result.model], {"features": x})
        assert pred.shape == (len(x), 1) and np.isfinite(pred).all()
