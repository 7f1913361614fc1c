"""Each job runs in an image that has what its command imports: the commands that need the
training extra (pandas, scikit-learn ...) run in the model-builder image, the others in the
service image. What a command needs is measured, not listed: its modules are imported in a
child interpreter where the training extra's packages cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from functools import cache

import helm_python
import pytest

from tests.chart.conftest import ROOT, by_kind, component, job_specs, render

# The top-level packages of pyproject's `train` extra (the model-builder image has them).
TRAIN_PACKAGES = ("sklearn", "skl2onnx", "onnx", "pandas", "pyarrow", "PIL", "fpdf")
# `modelfleet <subcommand>` -> the modules services/cli/ imports to run it.
COMMAND_MODULES = {
    "train": ["services.jobs.classifier_retrain"],
    "ingest": ["services.jobs.ingest"],
    "score": ["services.jobs.scoring.settings", "services.jobs.scoring.runner"],
}
WITHOUT_TRAIN = """
import importlib, importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
for module in sys.argv[2:]:
    importlib.import_module(module)
"""
ALL_JOBS = {
    "cronJobs": {
        "classifier-retrain": {"enabled": True},
        "ride-scoring": {"enabled": True},
        "documents-ingest": {"enabled": True},
    }
}


@cache
def _needs_training_extra(subcommand: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TRAIN, ",".join(TRAIN_PACKAGES),
         *COMMAND_MODULES[subcommand]],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    if result.returncode and "ModuleNotFoundError" not in result.stderr:
        pytest.fail(result.stderr)
    return result.returncode != 0


def test_the_training_commands_need_the_extra_and_scoring_does_not() -> None:
    assert _needs_training_extra("train") and _needs_training_extra("ingest")
    assert not _needs_training_extra("score")


def test_each_job_runs_in_an_image_with_what_its_command_imports() -> None:
    objects = render(ALL_JOBS)
    service_image = "modelfleet:0.1.0"
    builder_image = "modelfleet-model-builder:0.1.0"
    specs = job_specs(objects)
    assert {name for name, _ in specs} == {"classifier-retrain", "ride-scoring", "documents-ingest"}
    assert len(specs) == 4  # the retraining Job template and three CronJobs
    for name, job in specs:
        (container,) = job["template"]["spec"]["containers"]
        assert container["command"][0] == "modelfleet", name
        needs = _needs_training_extra(container["command"][1])
        assert container["image"] == (builder_image if needs else service_image), name
    # The Deployments keep the service image (Triton its own).
    for deployment in by_kind(objects, "Deployment"):
        if component(deployment) != "triton":
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert container["image"] == service_image


def test_the_builder_image_follows_its_values() -> None:
    builder = {"repository": "ecr.example/builder", "tag": "abc", "pullPolicy": "Always"}
    objects = render({"modelRepository": {"builder": builder}})
    for _, job in job_specs(objects):
        (container,) = job["template"]["spec"]["containers"]
        assert container["image"] == "ecr.example/builder:abc"
        assert container["imagePullPolicy"] == "Always"


def test_the_image_key_is_checked_by_the_schema() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="image"):
        render({"cronJobs": {"ride-scoring": {"image": "python"}}})
