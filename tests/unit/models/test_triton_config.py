"""Unit tests of the Triton configs: every model's config parsed back into ``ModelConfig``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from models.repository import MODELS, write_configs
from models.repository.registry import ModelSpec
from models.repository.triton_config import HEADER, card_json, model_config, render_config
from services.domain.taxi.features import N_FEATURES, N_SENSOR_FEATURES

FP32, INT64 = model_config_pb2.TYPE_FP32, model_config_pb2.TYPE_INT64
TRICKY = 'say "hi" \\ back\nslash \x01 caf\u00e9 \u2603 \U0001f600\t\r end'
"""Quotes, backslashes, newlines, control and non-ASCII characters: what a card may hold."""
CLASSIFIER = next(spec for spec in MODELS if spec.name == "classifier")
EXPECTED: dict[str, dict[str, Any]] = {
    "ride_duration": {
        "inputs": [("features", FP32, [N_FEATURES])],
        "outputs": [("duration_minutes", FP32, [1])],
        "max_batch_size": 1024,
        "policy": "all",
    },
    "ride_duration_sensor": {
        "inputs": [("features", FP32, [N_SENSOR_FEATURES])],
        "outputs": [("duration_minutes", FP32, [1])],
        "max_batch_size": 1024,
        "policy": "latest",
    },
    "tip_amount": {
        "inputs": [("features", FP32, [N_FEATURES])],
        "outputs": [("tip_amount", FP32, [1])],
        "max_batch_size": 1024,
        "policy": "latest",
    },
    "total_amount": {
        "inputs": [("features", FP32, [N_FEATURES])],
        "outputs": [("total_amount", FP32, [1])],
        "max_batch_size": 1024,
        "policy": "latest",
    },
    "classifier": {
        "inputs": [("features", FP32, [CLASSIFIER.input_dim])],
        "outputs": [(CLASSIFIER.output, FP32, [-1])],
        "max_batch_size": 1024,
        "policy": "latest",
    },
    "minilm_l6_v2": {
        "inputs": [
            ("input_ids", INT64, [-1]),
            ("attention_mask", INT64, [-1]),
            ("token_type_ids", INT64, [-1]),
        ],
        "outputs": [("last_hidden_state", FP32, [-1, 384])],
        "max_batch_size": 64,
        "policy": "latest",
    },
}


def _parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.mark.parametrize("local", [False, True], ids=["onnxruntime", "python"])
@pytest.mark.parametrize("spec", MODELS, ids=[spec.name for spec in MODELS])
def test_config_fields(spec: ModelSpec, local: bool) -> None:
    cards = {1: {"name": spec.name, "version": 1}, 3: {"name": spec.name, "version": 3}}
    text = render_config(local=local, cards=cards, spec=spec)
    assert text.startswith(HEADER)
    config = _parse(text)
    assert config == model_config(spec, local=local, cards=cards)
    want = EXPECTED[spec.name]
    assert config.name == spec.name
    assert (config.backend, config.platform) == (
        ("python", "") if local else ("", "onnxruntime_onnx")
    )
    assert config.max_batch_size == want["max_batch_size"]
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == want["inputs"]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == want["outputs"]
    assert config.dynamic_batching.max_queue_delay_microseconds == 200
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_CPU, 2)
    ]
    if want["policy"] == "all":
        assert config.version_policy.WhichOneof("policy_choice") == "all"
    else:
        assert config.version_policy.WhichOneof("policy_choice") == "latest"
        assert config.version_policy.latest.num_versions == 1
    assert set(config.parameters) == {"model_card.v1", "model_card.v3"}
    for version, card in cards.items():
        assert json.loads(config.parameters[f"model_card.v{version}"].string_value) == card


def test_card_with_quotes_backslashes_newlines_and_non_ascii_round_trips(tmp_path: Path) -> None:
    card = {"name": "ride_duration", "version": 2, "note": TRICKY, TRICKY: [TRICKY, 1.5]}
    model_dir = tmp_path / "ride_duration"
    (model_dir / "2").mkdir(parents=True)
    (model_dir / "2" / "model_card.json").write_text(json.dumps(card, ensure_ascii=False))
    assert write_configs(model_dir, MODELS[0]) == {2: card}
    for path in (model_dir / "config.pbtxt", model_dir / "configs" / "local.pbtxt"):
        value = _parse(path.read_text()).parameters["model_card.v2"].string_value
        assert value == card_json(card)
        assert json.loads(value) == card
        assert json.loads(value)["note"] == TRICKY


def test_raw_string_parameter_round_trips() -> None:
    """The text format escapes any string (not only JSON, which is ASCII already)."""
    config = model_config(MODELS[0], local=True, cards={})
    config.parameters["k"].string_value = TRICKY
    assert _parse(text_format.MessageToString(config)).parameters["k"].string_value == TRICKY
