"""Generic Triton Python-backend model that runs ONNX Runtime on ``model.onnx`` (local only).

Copied into each version folder of a model as ``model.py``; the local Triton (pytriton's build,
which has only the Python backend) serves the same ``model.onnx`` as NVIDIA's image does with the
onnxruntime backend. Input/output names and dtypes come from the model config. All requests of
one ``execute()`` call are joined along the batch dimension into ONE ONNX Runtime run (so dynamic
batching pays off; requests whose inputs differ beyond the batch axis, such as token ids of
another length, get one run per shape) and the results are split back per request. A bad
request gets an error response of its own; the others in the batch are still answered.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

MODEL_FILE = "model.onnx"


class TritonPythonModel:
    """ONNX Runtime on CPU with one intra-op thread per model instance."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        version = str(args["model_version"])
        path = os.path.join(args["model_repository"], version, MODEL_FILE)
        if not os.path.exists(path):  # e.g. files supplied through the load API
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), MODEL_FILE)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [
            (spec["name"], pb_utils.triton_string_to_numpy(spec["data_type"]))
            for spec in config["input"]
        ]
        self.outputs = [
            (spec["name"], pb_utils.triton_string_to_numpy(spec["data_type"]))
            for spec in config["output"]
        ]
        self.output_names = [name for name, _ in self.outputs]

    def execute(self, requests):
        responses = [None] * len(requests)
        batch = []  # (request index, {input name: array}, rows)
        for index, request in enumerate(requests):
            try:
                feeds = self._feeds(request)
                batch.append((index, feeds, self._rows(feeds)))
            except Exception as exc:  # any bad input becomes that request's error
                responses[index] = self._error(exc)
        if batch:
            try:
                self._run_joined(batch, responses)
            except Exception:  # fall back to one run per request
                for index, feeds, _ in batch:
                    try:
                        results = self.session.run(self.output_names, feeds)
                        responses[index] = self._response(results)
                    except Exception as exc:
                        responses[index] = self._error(exc)
        return responses

    def finalize(self):
        self.session = None

    def _feeds(self, request):
        feeds = {}
        for name, dtype in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input '{name}'")
            array = tensor.as_numpy()
            if array.dtype != dtype:
                array = array.astype(dtype)
            feeds[name] = array
        return feeds

    @staticmethod
    def _rows(feeds):
        rows = {array.shape[0] if array.ndim else 0 for array in feeds.values()}
        if len(rows) != 1:
            raise ValueError(f"inputs disagree on the batch size: {sorted(rows)}")
        return rows.pop()

    def _run_joined(self, batch, responses):
        # Requests join only when their inputs agree beyond the batch axis (variable-length
        # inputs such as token ids: one run per distinct sequence length).
        groups = {}
        for item in batch:
            shape = tuple(item[1][name].shape[1:] for name, _ in self.inputs)
            groups.setdefault(shape, []).append(item)
        for group in groups.values():
            self._run_group(group, responses)

    def _run_group(self, batch, responses):
        if len(batch) == 1:
            index, feeds, _ = batch[0]
            responses[index] = self._response(self.session.run(self.output_names, feeds))
            return
        joined = {
            name: np.concatenate([feeds[name] for _, feeds, _ in batch], axis=0)
            for name, _ in self.inputs
        }
        results = self.session.run(self.output_names, joined)
        offset = 0
        for index, _, rows in batch:
            part = [result[offset : offset + rows] for result in results]
            responses[index] = self._response(part)
            offset += rows

    def _response(self, results):
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(result, dtype=dtype))
            for (name, dtype), result in zip(self.outputs, results, strict=True)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    @staticmethod
    def _error(exc):
        return pb_utils.InferenceResponse(
            output_tensors=[], error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
        )
