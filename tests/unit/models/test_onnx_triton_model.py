"""Unit tests of the generic Triton Python-backend ONNX model, with a small named fake of
``triton_python_backend_utils`` (Triton itself runs in the integration tests)."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ONNX_MODEL_PY = Path(__file__).resolve().parents[3] / "models" / "triton" / "onnx_model.py"


class _FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _FakeRequest:
    def __init__(self, **inputs: np.ndarray) -> None:
        self.inputs = {k: _FakeTensor(k, v) for k, v in inputs.items()}


class _FakeResponse:
    def __init__(self, output_tensors: list[_FakeTensor], error: Any = None) -> None:
        self.output_tensors, self.error = output_tensors, error


class _FakeError:
    def __init__(self, message: str) -> None:
        self.message = message


def _fake_pb_utils() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = _FakeTensor  # type: ignore[attr-defined]
    module.InferenceResponse = _FakeResponse  # type: ignore[attr-defined]
    module.TritonError = _FakeError  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda r, n: r.inputs.get(n)  # type: ignore[attr-defined]
    module.triton_string_to_numpy = {"TYPE_FP32": np.float32}.__getitem__  # type: ignore[attr-defined]
    return module


def _sum_model() -> bytes:
    """features [N, 3] -> duration_minutes [N, 1] = row sums."""
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceSum", ["features", "axes"], ["duration_minutes"], keepdims=1)
    graph = helper.make_graph(
        [node],
        "sum",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("duration_minutes", TensorProto.FLOAT, [None, 1])],
        initializer=[axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def triton_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb_utils())
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(_sum_model())
    spec = importlib.util.spec_from_file_location("fake_triton_onnx_model", ONNX_MODEL_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    config = {
        "input": [{"name": "features", "data_type": "TYPE_FP32", "dims": [3]}],
        "output": [{"name": "duration_minutes", "data_type": "TYPE_FP32", "dims": [1]}],
    }
    model.initialize(
        {
            "model_config": json.dumps(config),
            "model_repository": str(tmp_path / "m"),
            "model_version": "1",
        }
    )
    yield model
    model.finalize()


def test_requests_are_joined_into_one_run_and_split_back(triton_model: Any) -> None:
    calls: list[int] = []
    real_run = triton_model.session.run

    def counting_run(names: list[str], feeds: dict[str, np.ndarray]) -> Any:
        calls.append(len(feeds["features"]))
        return real_run(names, feeds)

    triton_model.session = types.SimpleNamespace(run=counting_run)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((1, 3), dtype=np.float64)  # cast to the config dtype
    c = np.full((3, 3), 2.0, dtype=np.float32)
    responses = triton_model.execute(
        [_FakeRequest(features=a), _FakeRequest(features=b), _FakeRequest(features=c)]
    )
    assert calls == [6]
    outs = [r.output_tensors[0].as_numpy() for r in responses]
    assert all(r.error is None for r in responses)
    np.testing.assert_allclose(outs[0], [[3.0], [12.0]])
    np.testing.assert_allclose(outs[1], [[3.0]])
    np.testing.assert_allclose(outs[2], [[6.0]] * 3)
    assert outs[0].dtype == np.float32 and responses[0].output_tensors[0].name() == (
        "duration_minutes"
    )


def test_bad_requests_get_their_own_errors(triton_model: Any) -> None:
    good = np.ones((2, 3), dtype=np.float32)
    wrong_width = np.ones((1, 5), dtype=np.float32)
    responses = triton_model.execute(
        [_FakeRequest(features=good), _FakeRequest(), _FakeRequest(features=wrong_width)]
    )
    assert responses[0].error is None
    np.testing.assert_allclose(responses[0].output_tensors[0].as_numpy(), [[3.0], [3.0]])
    assert "missing input 'features'" in responses[1].error.message
    assert responses[2].error is not None and responses[2].output_tensors == []
