"""Triton's model repository: one pod by default (emptyDir, trained in its init container);
several pods only with a shared repository, a ReadWriteMany claim (built once, by the first pod;
Triton in explicit model-control mode so the retraining job's load_model swaps versions) or the
published copy synced from S3. The schema and the chart refuse scaling on an emptyDir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import pytest

from tests.chart.conftest import Obj, by_kind, component, job_specs, render, scenario_values

SHARED = {"modelRepository": {"volume": {"type": "persistentVolumeClaim", "create": True,
                                         "storageClass": "efs-sc"}}}  # fmt: skip
SCALED = {"components": {"triton": {"autoscaling": {"enabled": True, "maxReplicas": 4}}}}


def _triton(objects: list[Obj]) -> Obj:
    (deployment,) = [d for d in by_kind(objects, "Deployment") if component(d) == "triton"]
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = _merge(merged[key], value)
            else:
                merged[key] = value
    return merged


@pytest.mark.parametrize("scenario", ["default", "minikube"])
def test_with_an_emptydir_triton_runs_one_pod(scenario: str) -> None:
    objects = render(scenario_values(scenario))
    assert not [h for h in by_kind(objects, "HorizontalPodAutoscaler") if component(h) == "triton"]
    (deployment,) = [d for d in by_kind(objects, "Deployment") if component(d) == "triton"]
    assert deployment["spec"]["replicas"] == 1
    volume = next(v for v in _triton(objects)["volumes"] if v["name"] == "models")
    assert "emptyDir" in volume


@pytest.mark.parametrize(
    "scaling",
    [
        SCALED,
        {"components": {"triton": {"replicas": 2}}},
        {"components": {"triton": {"autoscaling": {"enabled": True}}}},  # maxReplicas from default
    ],
)
def test_scaling_triton_on_an_emptydir_is_refused(scaling: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmError, match="modelRepository"):
        render(scaling)


def test_scaling_on_a_claim_the_chart_cannot_share_is_refused() -> None:
    rwo = _merge(
        SHARED, SCALED, {"modelRepository": {"volume": {"accessModes": ["ReadWriteOnce"]}}}
    )
    with pytest.raises(helm_python.HelmError, match="ReadWriteMany"):
        render(rwo)
    with pytest.raises(helm_python.HelmValuesError, match="existingClaim"):
        render({"modelRepository": {"volume": {"type": "persistentVolumeClaim"}}})


def test_a_shared_claim_serves_every_triton_pod_and_the_jobs() -> None:
    values = _merge(SHARED, SCALED, {"cronJobs": {"classifier-retrain": {"enabled": True}}})
    objects = render(values)
    (claim,) = by_kind(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "mf-modelfleet-model-repository"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "efs-sc"
    (hpa,) = [h for h in by_kind(objects, "HorizontalPodAutoscaler") if component(h) == "triton"]
    assert hpa["spec"]["maxReplicas"] == 4
    spec = _triton(objects)
    volume = next(v for v in spec["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"] == {"claimName": "mf-modelfleet-model-repository"}
    for _, job in job_specs(objects):
        models = next(v for v in job["template"]["spec"]["volumes"] if v["name"] == "models")
        assert models == volume
    args = spec["containers"][0]["args"]
    assert "--model-control-mode=explicit" in args and "--load-model=*" in args
    (builder,) = spec["initContainers"]
    assert builder["command"][:2] == ["sh", "-c"]
    # A single pod on an emptyDir keeps Triton's default mode and always builds.
    single = _triton(render({}))
    assert not any("model-control-mode" in a for a in single["containers"][0]["args"])
    assert "command" not in single["initContainers"][0]


def test_the_builder_builds_a_shared_repository_once(tmp_path: Path) -> None:
    """The init container's command, run with a stand-in `python` that records its arguments."""
    (builder,) = _triton(render(SHARED))["initContainers"]
    repo = tmp_path / "models"
    repo.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stand_in = bin_dir / "python"
    stand_in.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    stand_in.chmod(0o755)
    script = builder["command"][2].replace("/models", str(repo))
    args = [a.replace("/models", str(repo)) for a in builder["args"]]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for _ in range(3):  # the first pod, a second pod, a restart
        subprocess.run(
            ["sh", "-c", script, "model-builder", *args], env=env, check=True, timeout=30
        )
    (call,) = calls.read_text().splitlines()
    assert call.startswith(f"-m models.ride_duration --repo {repo}")


def test_a_failed_build_is_retried_by_the_next_pod(tmp_path: Path) -> None:
    (builder,) = _triton(render(SHARED))["initContainers"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text("#!/bin/sh\nexit 3\n")
    (bin_dir / "python").chmod(0o755)
    script = builder["command"][2].replace("/models", str(tmp_path))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["sh", "-c", script, "model-builder"], env=env, timeout=30)
    assert result.returncode != 0 and not (tmp_path / ".modelfleet-built").exists()


def test_eks_scales_triton_on_copies_synced_from_s3() -> None:
    objects = render(scenario_values("eks"))
    (hpa,) = [h for h in by_kind(objects, "HorizontalPodAutoscaler") if component(h) == "triton"]
    assert hpa["spec"]["maxReplicas"] > 1
    (sync,) = _triton(objects)["initContainers"]
    assert sync["command"][:3] == ["aws", "s3", "sync"]
