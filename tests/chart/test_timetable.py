"""The batch jobs' timetable: the CronJobs the chart renders carry the deployment timetable
(scoring every 2 h at :20, ingestion and retraining every 4 h, apart), Forbid, both deadlines,
history limits and retries; and the local stack's scheduler (services/stack/timetable.py) runs
exactly what Helm renders: same schedule, command, deadlines and retries per job."""

from __future__ import annotations

from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest

from services.stack.timetable import load_jobs
from tests.chart.conftest import by_kind, component, render
from tests.chart.test_values_schema import _schema

ALL_ON = {
    "cronJobs": {
        name: {"enabled": True}
        for name in ("ride-scoring", "documents-ingest", "classifier-retrain")
    }
}
TIMETABLE = {
    "ride-scoring": ("20 */2 * * *", 1800),
    "documents-ingest": ("40 */4 * * *", 7200),
    "classifier-retrain": ("40 2-22/4 * * *", 7200),
}


@pytest.fixture(scope="module")
def crons() -> dict[str, dict[str, Any]]:
    return {component(c): c for c in by_kind(render(ALL_ON), "CronJob")}


def test_the_cronjobs_carry_the_timetable(crons: dict[str, dict[str, Any]]) -> None:
    assert set(crons) == set(TIMETABLE)
    for name, (schedule, deadline) in TIMETABLE.items():
        cron = crons[name]
        kubernetes_validate.validate(cron, "1.30", strict=True)
        spec = cron["spec"]
        assert spec["schedule"] == schedule, name
        assert spec["timeZone"] == "Etc/UTC"
        assert spec["concurrencyPolicy"] == "Forbid"
        assert 0 < spec["startingDeadlineSeconds"] <= 3600
        assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 3
        job = spec["jobTemplate"]["spec"]
        assert job["activeDeadlineSeconds"] == deadline, name
        assert job["backoffLimit"] >= 1, name  # a database crash is retried (and resumed)


def test_the_local_scheduler_runs_what_helm_renders(crons: dict[str, dict[str, Any]]) -> None:
    local = {job.name: job for job in load_jobs()}
    assert set(local) == set(crons)
    for name, cron in crons.items():
        spec = cron["spec"]
        job = spec["jobTemplate"]["spec"]
        (container,) = job["template"]["spec"]["containers"]
        rendered = (
            spec["schedule"],
            tuple(container["command"]),
            spec["startingDeadlineSeconds"],
            job["activeDeadlineSeconds"],
            job["backoffLimit"],
        )
        mine = local[name]
        assert rendered == (
            mine.schedule,
            mine.command,
            mine.starting_deadline_s,
            mine.active_deadline_s,
            mine.backoff_limit,
        ), name
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        assert {k: env[k] for k in mine.env} == dict(mine.env), name


@pytest.mark.parametrize("schedule", ["20 */2 * *", "every two hours", "20 */2 * * * *"])
def test_the_schema_refuses_a_schedule_that_is_not_five_cron_fields(schedule: str) -> None:
    values = {"cronJobs": {"ride-scoring": {"schedule": schedule}}}
    with pytest.raises(helm_python.HelmValuesError, match="schedule"):
        render(values)
    for good in TIMETABLE.values():
        entry = _schema()["$defs"]["cronJob"]["properties"]["schedule"]
        jsonschema.validate(good[0], entry)
