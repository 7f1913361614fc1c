"""The Kubernetes retraining trigger against a FAKE API server, with the Job template the chart
renders (the ConfigMap the classifier mounts); the Job it creates must be a valid batch/v1 Job
carrying the run id."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.classifier.settings import ClassifierSettings
from services.classifier.triggers import (
    RUN_ID_ENV,
    RUN_LABEL,
    KubernetesJobTrigger,
    KubernetesUnavailable,
    SubprocessTrigger,
    job_manifest,
)
from services.common.errors import DependencyFailed
from tests.chart.conftest import NAMESPACE, job_templates, render
from tests.fakes.kube_api import FakeKubeApi


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    (job,) = job_templates(render({}))
    return job


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        yield fake


def _trigger(tmp_path: Path, template: dict[str, Any], api: FakeKubeApi) -> KubernetesJobTrigger:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(template))
    settings = ClassifierSettings(
        retraining_trigger="kubernetes",
        retraining_job_template=path,
        retraining_kube_api_url=api.url,
        retraining_start_timeout_s=5,
    )
    return KubernetesJobTrigger.from_settings(settings)


def test_the_manifest_adds_the_run_id_and_keeps_the_template(template: dict[str, Any]) -> None:
    job = job_manifest(template, run_id="r-1")
    assert job["metadata"]["labels"][RUN_LABEL] == "r-1"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert {"name": RUN_ID_ENV, "value": "r-1"} in container["env"]
    assert container["command"] == ["modelfleet", "train", "classifier"]
    assert RUN_ID_ENV not in str(template)  # the template itself is untouched


def test_a_template_that_is_not_a_job_is_refused(template: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="batch/v1 Job"):
        job_manifest({**template, "kind": "Pod"}, run_id="r")


async def test_start_creates_a_valid_job_in_the_release_namespace(
    tmp_path: Path, template: dict[str, Any], api: FakeKubeApi
) -> None:
    trigger = _trigger(tmp_path, template, api)
    try:
        name = await trigger.start("1f0c")
        assert await trigger.failure(name) is None
        api.set_failed(NAMESPACE, name)
        assert "BackoffLimitExceeded" in (await trigger.failure(name) or "")
    finally:
        await trigger.close()
    (created,) = api.created  # the fake validated it against the Kubernetes 1.30 schema
    assert trigger.namespace == NAMESPACE == created["metadata"]["namespace"]
    assert name.startswith(template["metadata"]["generateName"])
    assert created["spec"]["template"]["metadata"]["labels"][RUN_LABEL] == "1f0c"


@pytest.mark.parametrize(
    ("status", "error"), [(503, KubernetesUnavailable), (403, DependencyFailed)]
)
async def test_api_errors_map_to_the_exception_tree(
    tmp_path: Path, template: dict[str, Any], api: FakeKubeApi, status: int, error: type
) -> None:
    trigger = _trigger(tmp_path, template, api)
    api.fail_next_create = status
    try:
        with pytest.raises(error):
            await trigger.start("r")
    finally:
        await trigger.close()
    assert api.created == []


async def test_a_child_process_gets_the_run_id_and_its_exit_is_reported(tmp_path: Path) -> None:
    exits: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def on_exit(run_id: str, code: int) -> None:
        exits.append((run_id, code))
        done.set()

    out = tmp_path / "run-id"
    script = (
        f"import os, sys; open({str(out)!r}, 'w').write(os.environ[{RUN_ID_ENV!r}]); sys.exit(3)"
    )
    trigger = SubprocessTrigger((sys.executable, "-c", script), on_exit=on_exit, timeout_s=10)
    name = await trigger.start("run-7")
    await asyncio.wait_for(done.wait(), timeout=60)
    await trigger.close()
    assert name.startswith("pid-") and exits == [("run-7", 3)]
    assert out.read_text() == "run-7"


async def test_close_stops_a_running_child_and_reports_it(tmp_path: Path) -> None:
    exits: list[int] = []

    async def on_exit(run_id: str, code: int) -> None:
        exits.append(code)

    trigger = SubprocessTrigger(
        (sys.executable, "-c", "import time; time.sleep(600)"), on_exit=on_exit, timeout_s=10
    )
    await trigger.start("run-8")
    await trigger.close()
    assert exits == [-signal.SIGTERM]


async def test_a_missing_command_is_a_dependency_failure() -> None:
    async def on_exit(run_id: str, code: int) -> None:
        raise AssertionError("no process, no exit")

    trigger = SubprocessTrigger(("/nonexistent/modelfleet",), on_exit=on_exit, timeout_s=10)
    with pytest.raises(DependencyFailed):
        await trigger.start("run-9")
