"""The Kubernetes retraining trigger under the chart's own RBAC: the FAKE API server enforces the
classifier's rendered Role as the API server's authorizer would. With it the trigger starts a
run's Job and follows it; a Job status the API refuses to show (403) fails the run with the
API's reason and an error log instead of leaving it "running" until the stale timeout; a
transient error still leaves the run as it is."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from services.classifier.settings import ClassifierSettings
from services.classifier.triggers import KubernetesJobTrigger, KubernetesUnavailable
from tests.chart.conftest import NAMESPACE, Obj, by_kind, component, job_templates, render
from tests.fakes.kube_api import FakeKubeApi

#: The classifier's Role as 4b0104d rendered it: Jobs but not their status subresource.
WITHOUT_STATUS = {"rules": [{"apiGroups": ["batch"], "resources": ["jobs"],
                             "verbs": ["create", "get", "list", "watch"]}]}  # fmt: skip


@pytest.fixture(scope="module")
def chart() -> list[Obj]:
    return render({})


@pytest.fixture(scope="module")
def role(chart: list[Obj]) -> Obj:
    (role,) = [r for r in by_kind(chart, "Role") if component(r) == "classifier-retrain"]
    return role


def _trigger(tmp_path: Path, chart: list[Obj], api: FakeKubeApi) -> KubernetesJobTrigger:
    (template,) = job_templates(chart)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(template))
    settings = ClassifierSettings(
        retraining_trigger="kubernetes",
        retraining_job_template=path,
        retraining_kube_api_url=api.url,
        retraining_start_timeout_s=5,
    )
    return KubernetesJobTrigger.from_settings(settings)


async def test_the_charts_role_lets_the_trigger_start_and_follow_its_job(
    tmp_path: Path, chart: list[Obj], role: Obj
) -> None:
    with FakeKubeApi(role=role) as api:
        trigger = _trigger(tmp_path, chart, api)
        try:
            name = await trigger.start("r-1")
            assert await trigger.failure(name) is None
            api.set_failed(NAMESPACE, name)
            assert "BackoffLimitExceeded" in (await trigger.failure(name) or "")
        finally:
            await trigger.close()
    assert api.denied == []


async def test_a_status_the_role_forbids_fails_the_run_with_the_reason(
    tmp_path: Path, chart: list[Obj], caplog: pytest.LogCaptureFixture
) -> None:
    with FakeKubeApi(role=WITHOUT_STATUS) as api:
        trigger = _trigger(tmp_path, chart, api)
        try:
            name = await trigger.start("r-2")
            with caplog.at_level(logging.ERROR, logger="services.classifier.triggers"):
                reason = await trigger.failure(name)
        finally:
            await trigger.close()
    assert api.denied == [f"get jobs/status/{name}"]
    assert reason is not None and f"Job {name} cannot be read" in reason
    assert '403 Forbidden: jobs.batch "' in reason
    assert 'cannot get resource "jobs/status" in API group "batch"' in reason
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "jobs/status" in record.getMessage() and name in record.getMessage()


async def test_a_transient_error_leaves_the_run_to_the_stale_timeout(
    tmp_path: Path, chart: list[Obj], role: Obj
) -> None:
    with FakeKubeApi(role=role) as api:
        trigger = _trigger(tmp_path, chart, api)
        try:
            name = await trigger.start("r-3")
            api.fail_next_get = 503
            with pytest.raises(KubernetesUnavailable):
                await trigger.failure(name)
            assert await trigger.failure(name) is None  # the next read answers again
        finally:
            await trigger.close()
