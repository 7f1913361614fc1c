"""Fakes of what cannot run here: a language model. Small on purpose, named fakes.

- :func:`write_fake_llm_model`: a Triton Python-backend model ``fake_llm`` with the tensors of the
  vLLM / TensorRT-LLM backends (``text_input`` BYTES [1], ``max_tokens`` INT32 [1] ->
  ``text_output`` BYTES [1]), served by the real local Triton. It answers
  ``"fake-llm (<max_tokens>): <the text of source [1]>"``, so a test sees that the prompt carried
  the retrieved sources and the token limit.
- :func:`fake_openai_reply`: the body an OpenAI-compatible ``/v1/chat/completions`` answers,
  for ``tests/httpstub.py`` (the fake OpenAI-compatible server).
"""

from __future__ import annotations

from pathlib import Path

import orjson

FAKE_LLM = "fake_llm"

_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [
  {{ name: "text_input" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "max_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true }}
]
output [ {{ name: "text_output" data_type: TYPE_STRING dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

_MODEL = '''\
"""Fake LLM for tests: answers with the text of source [1] of the prompt."""
import re

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            prompt = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy()[0]
            prompt = prompt.decode("utf-8") if isinstance(prompt, bytes) else str(prompt)
            limit = pb_utils.get_input_tensor_by_name(request, "max_tokens")
            tokens = int(limit.as_numpy()[0]) if limit is not None else 0
            match = re.search(r"^\\[1\\] \\([^)]*\\) (.*)$", prompt, re.MULTILINE)
            source = match.group(1) if match else "no sources"
            text = f"fake-llm ({tokens}): {source} [1]".encode("utf-8")
            out = pb_utils.Tensor("text_output", np.array([text], dtype=np.object_))
            responses.append(pb_utils.InferenceResponse([out]))
        return responses
'''


def write_fake_llm_model(repository: Path, name: str = FAKE_LLM) -> Path:
    """Write the fake LLM (version 1) into a Triton model repository."""
    folder = repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(_CONFIG.format(name=name))
    (folder / "1" / "model.py").write_text(_MODEL)
    return folder


def fake_openai_reply(content: str, *, prompt_tokens: int, completion_tokens: int) -> bytes:
    """A /v1/chat/completions response body with ``content`` and usage figures."""
    return orjson.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )
