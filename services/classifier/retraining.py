"""Retraining routes of the classifier: Alertmanager's webhook and the status of runs.

- ``POST /v1/alerts``: Alertmanager's webhook body (version 4). Firing alerts named in
  ``CLASSIFIER_RETRAINING_ALERTS`` about this model start one run: 202 ``{"action": "started"}``
  with ``Location: /v1/retraining/<run>``. While a run is queued or running (on any replica) the
  answer is 202 ``{"action": "already_running"}`` with that run's URL: Alertmanager repeats
  firing notifications, and a 2xx tells it the notification was handled. Notifications with no
  such alert (resolved, other alerts) answer 200 ``{"action": "ignored"}``. A body that is not a
  version-4 notification answers 422.
- ``POST /v1/retraining``: start a run by hand (202, or 409 naming the active run).
- ``GET /v1/retraining``: the latest runs, newest first (``active``: the queued/running one);
  ``GET /v1/retraining/{run_id}``: one run.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Query, Response

from services.classifier import runs
from services.classifier.alerts import AlertNotification, retraining_alerts
from services.classifier.schemas import AlertCounts, RetrainingAction, RetrainingRun, RetrainingRuns
from services.classifier.state import ClassifierState, StateDep
from services.common.errors import (
    Conflict,
    DependencyError,
    ModelfleetError,
    NotFound,
)
from services.common.security import require_scope

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["retraining"])

_START_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"description": "The job could not be started (the run is marked failed)"},
    503: {"description": "Postgres or the Kubernetes API is unavailable (Retry-After)"},
}
_LOCATION = {
    "Location": {
        "description": "The run's status URL (/v1/retraining/{run_id}).",
        "required": True,
        "schema": {"type": "string"},
    }
}


def _url(run: dict[str, Any]) -> str:
    return f"/v1/retraining/{run['run_id']}"


def _answer(response: Response, action: RetrainingAction, *, status_code: int) -> RetrainingAction:
    """The answer of a start (the route sends only the fields set: no ``url`` without a run);
    its status and ``Location`` go on ``response``."""
    response.status_code = status_code
    if action.url is not None:
        response.headers["Location"] = action.url
    return action


async def _claim_and_start(
    state: ClassifierState, *, reason: str, alert: dict[str, Any] | None
) -> runs.Claim:
    """Claim the run lock and start the job; a job that cannot start fails its run."""
    settings, trigger, pool = state.settings, state.retraining_trigger, state.pool
    timeout = settings.database_timeout_s
    claim = await runs.claim_run(
        pool,
        model=settings.triton_model,
        reason=reason,
        trigger=trigger.name,
        alert=alert,
        stale_after_s=settings.retraining_stale_after_s,
        timeout_s=timeout,
    )
    if not claim.created:
        return claim
    run_id = claim.run["run_id"]
    try:
        job_name = await trigger.start(run_id)
    except ModelfleetError as exc:
        await runs.fail_run(pool, run_id, f"could not start: {exc.detail}", timeout_s=timeout)
        raise
    await runs.set_job_name(pool, run_id, job_name, timeout_s=timeout)
    return runs.Claim(True, {**claim.run, "job_name": job_name})


@router.post(
    "/alerts",
    status_code=202,
    response_model=RetrainingAction,
    response_model_exclude_unset=True,
    summary="Alertmanager webhook: a firing classifier-F1 alert starts a retraining run",
    responses={
        200: {"description": "No alert here asks for retraining", "model": RetrainingAction},
        202: {"description": "A run started, or one is already running", "headers": _LOCATION},
        422: {"description": "Not an Alertmanager version-4 notification (problem+json)"},
        **_START_ERRORS,
    },
    dependencies=[require_scope("admin")],
)
async def alerts(
    notification: AlertNotification, state: StateDep, response: Response
) -> RetrainingAction:
    settings = state.settings
    matched = retraining_alerts(
        notification, alert_names=settings.retraining_alerts, model=settings.triton_model
    )
    counts = AlertCounts(received=len(notification.alerts), matched=len(matched))
    if not matched:
        ignored = RetrainingAction(action="ignored", alerts=counts, run=None)
        return _answer(response, ignored, status_code=200)
    first = matched[0]
    alert = {
        "labels": first.labels,
        "annotations": first.annotations,
        "starts_at": first.starts_at.isoformat(),
        "fingerprint": first.fingerprint,
        "group_key": notification.group_key,
    }
    claim = await _claim_and_start(state, reason="alert", alert=alert)
    action = "started" if claim.created else "already_running"
    log.info("alert %s: retraining run %s %s", first.labels.get("alertname"),
             claim.run["run_id"], action)  # fmt: skip
    return _answer(
        response,
        RetrainingAction(
            action=action,
            alerts=counts,
            run=RetrainingRun.model_validate(claim.run),
            url=_url(claim.run),
        ),
        status_code=202,
    )


@router.post(
    "/retraining",
    status_code=202,
    response_model=RetrainingAction,
    response_model_exclude_unset=True,
    summary="Start a retraining run by hand",
    responses={
        202: {"description": "The run started", "headers": _LOCATION},
        409: {"description": "A run is already queued or running"},
        **_START_ERRORS,
    },
    dependencies=[require_scope("admin")],
)
async def start_retraining(state: StateDep, response: Response) -> RetrainingAction:
    claim = await _claim_and_start(state, reason="manual", alert=None)
    if not claim.created:
        raise Conflict(
            f"run {claim.run['run_id']} is {claim.run['status']}",
            extra={"run": claim.run, "url": _url(claim.run)},
        )
    return _answer(
        response,
        RetrainingAction(
            action="started", run=RetrainingRun.model_validate(claim.run), url=_url(claim.run)
        ),
        status_code=202,
    )


async def _reconciled(state: ClassifierState, run: dict[str, Any]) -> dict[str, Any]:
    """``run``, marked failed first when its job's runtime reports the job failed."""
    trigger, pool = state.retraining_trigger, state.pool
    if run["status"] not in runs.ACTIVE or not run["job_name"] or run["trigger"] != trigger.name:
        return run
    try:
        reason = await trigger.failure(run["job_name"])
    except DependencyError as exc:  # transient: the stale timeout stays
        # (a refusal for good, e.g. RBAC's 403, comes back from failure() as the run's reason)
        log.warning("retraining run %s: job status unknown: %s", run["run_id"], exc.detail)
        return run
    if reason is None:
        return run
    timeout = state.settings.database_timeout_s
    await runs.fail_run(pool, run["run_id"], reason, timeout_s=timeout)
    return await runs.get_run(pool, uuid.UUID(run["run_id"]), timeout_s=timeout) or run


@router.get(
    "/retraining",
    response_model=RetrainingRuns,
    summary="The latest retraining runs, newest first",
    dependencies=[require_scope("admin")],
)
async def list_retraining(
    state: StateDep, limit: int = Query(default=20, ge=1, le=200)
) -> RetrainingRuns:
    settings = state.settings
    latest = await runs.recent_runs(
        state.pool, model=settings.triton_model, limit=limit, timeout_s=settings.database_timeout_s
    )
    latest = [await _reconciled(state, run) for run in latest]
    active = next((run for run in latest if run["status"] in runs.ACTIVE), None)
    return RetrainingRuns.model_validate({"active": active, "runs": latest})


@router.get(
    "/retraining/{run_id}",
    response_model=RetrainingRun,
    summary="One retraining run",
    responses={404: {"description": "Unknown run id"}},
    dependencies=[require_scope("admin")],
)
async def get_retraining(run_id: uuid.UUID, state: StateDep) -> RetrainingRun:
    run = await runs.get_run(state.pool, run_id, timeout_s=state.settings.database_timeout_s)
    if run is None:
        raise NotFound(f"no retraining run {run_id}")
    return RetrainingRun.model_validate(await _reconciled(state, run))
