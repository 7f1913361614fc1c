"""Builds the Triton model repository (see docs/architecture.md).

The package, one concern a module:

- ``registry``: ``MODELS`` (``ModelSpec``: name, tensors, trainer, code paths), the
  ``Trainer``/``Trained`` protocols, default data sizes, ``code_hash``;
- ``triton_config``: a model's config as a ``tritonclient.grpc.model_config_pb2.ModelConfig``
  message, written with ``google.protobuf.text_format``;
- ``storage``: a model folder on disk: version folders and their cards, atomic writes, the lock;
- ``stamps``: build stamps (what the newest version was built from, to skip rebuilds);
- ``publishing``: write, publish and remove a version, and the configs listing the versions;
- ``training_data``: the trips and catalogue a build trains on, made or loaded on first use;
- ``build``: ``build_models`` and ``build_repository``.

Per model a build writes::

    <repo_dir>/<model>/
      config.pbtxt          platform "onnxruntime_onnx" (NVIDIA's Triton image)
      configs/local.pbtxt   backend "python" (local Triton, --model-config-name=local)
      <N>/model.onnx        the model
      <N>/model.py          copy of models/triton/onnx_model.py
      <N>/model_card.json   the model card of version N
      <N>/<artifact>        extra files of the trainer (classifier: confusion_matrix.png)
      build-stamp.json      what the newest version was built from (to skip rebuilds)

Both configs carry every present version's card as parameter ``model_card.v<N>`` (a JSON string).
A build is skipped when the stamp shows the same code hash, seed, rows and data were already
built (unless ``force``); otherwise it writes version max+1 and keeps the 3 newest versions.
A version is built in a staging folder and renamed into place, config and stamp files are
replaced atomically, so a crashed build never leaves a half-written version behind.

The names callers use are re-exported here.
"""

from __future__ import annotations

from models.repository.build import build_models, build_repository
from models.repository.publishing import (
    ONNX_MODEL_PY,
    BuildResult,
    publish_version,
    remove_version,
    write_configs,
    write_version,
)
from models.repository.registry import (
    DEFAULT_TRIPS,
    MODELS,
    ModelSpec,
    Tensor,
    Trained,
    Trainer,
    code_hash,
    default_catalogue_rows,
)
from models.repository.stamps import STAMP_FILE
from models.repository.training_data import SYNTHETIC_CATALOGUE, SYNTHETIC_SOURCE
from models.repository.triton_config import model_config, render_config

__all__ = [
    "DEFAULT_TRIPS",
    "MODELS",
    "ONNX_MODEL_PY",
    "STAMP_FILE",
    "SYNTHETIC_CATALOGUE",
    "SYNTHETIC_SOURCE",
    "BuildResult",
    "ModelSpec",
    "Tensor",
    "Trained",
    "Trainer",
    "build_models",
    "build_repository",
    "code_hash",
    "default_catalogue_rows",
    "model_config",
    "publish_version",
    "remove_version",
    "render_config",
    "write_configs",
    "write_version",
]
