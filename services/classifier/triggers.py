"""How the classifier starts one retraining run (``CLASSIFIER_RETRAINING_TRIGGER``).

- ``subprocess`` (the local stack): ``CLASSIFIER_RETRAINING_COMMAND`` (default
  ``python -m services.cli retrain classifier``) as a child process; a watcher marks the run
  failed when the child exits without having finished it.
- ``kubernetes`` (the chart): a ``batch/v1`` Job created through the official ``kubernetes``
  client from the Job template the chart renders into a ConfigMap (mounted at
  ``CLASSIFIER_RETRAINING_JOB_TEMPLATE``). A Job that Kubernetes reports as failed marks its run
  failed when the run is read. So does a Job whose status the API refuses to show (401/403:
  the Role lacks ``get`` on ``batch`` ``jobs/status``, or the token is bad): no retry fixes
  that, and a run that cannot be followed must not look running until the stale timeout
  (an error log names the refusal; the dependency metric counts ``KubernetesForbidden``).
  Transient errors (429, 5xx, timeouts) still raise: the run stays as it is.

Both pass the run id to the job as ``CLASSIFIER_RETRAIN_RUN_ID``; the job reports its progress
in ``classifier_retraining_runs`` itself. Every call has a deadline and a
``modelfleet_dependency_request_duration_seconds`` sample.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, cast

import urllib3
import yaml
from kubernetes import client as kube
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from services.classifier.settings import ClassifierSettings
from services.common.errors import DependencyError, DependencyFailed, DependencyTimeout
from services.common.metrics import observe_dependency

log = logging.getLogger(__name__)

RUN_ID_ENV = "CLASSIFIER_RETRAIN_RUN_ID"
RUN_LABEL = "modelfleet.dev/retraining-run"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

#: Called by the subprocess trigger when a child exits: (run id, exit code).
OnExit = Callable[[str, int], Awaitable[None]]


class KubernetesUnavailable(DependencyError):
    type_slug = "kubernetes-unavailable"
    title = "Kubernetes API unavailable"
    dependency = "kubernetes"


class KubernetesForbidden(DependencyFailed):
    """The API refused the classifier's ServiceAccount (401/403): RBAC or its token."""

    type_slug = "kubernetes-forbidden"
    title = "Kubernetes API refused the classifier's account"


class Trigger(Protocol):
    """Starts the job of one run; ``start`` returns the job's name (pid or Job name)."""

    name: str

    async def start(self, run_id: str) -> str: ...

    async def failure(self, job_name: str) -> str | None:
        """Why the run failed, if its job's runtime says so or refuses for good to say how the
        job is doing (None: running or finished fine); raises on transient errors."""
        ...

    async def close(self) -> None: ...


class SubprocessTrigger:
    """One child process per run (the local stack's trigger)."""

    name = "subprocess"

    def __init__(self, command: tuple[str, ...], *, on_exit: OnExit, timeout_s: float) -> None:
        self._command = command
        self._on_exit = on_exit
        self._timeout_s = timeout_s
        self._children: dict[str, asyncio.subprocess.Process] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self, run_id: str) -> str:
        env = {**os.environ, RUN_ID_ENV: run_id}
        with observe_dependency("subprocess", "start_retraining"):
            try:
                process = await asyncio.wait_for(
                    asyncio.create_subprocess_exec(
                        *self._command, env=env, stdin=subprocess.DEVNULL
                    ),
                    self._timeout_s,
                )
            except TimeoutError as exc:
                raise DependencyTimeout("the retraining process did not start in time") from exc
            except OSError as exc:
                raise DependencyFailed(f"cannot start {self._command[0]!r}: {exc}") from exc
        self._children[run_id] = process
        watcher = asyncio.create_task(self._watch(run_id, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        log.info("retraining run %s: started process %d", run_id, process.pid)
        return f"pid-{process.pid}"

    async def _watch(self, run_id: str, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self._children.pop(run_id, None)
        log.info("retraining run %s: process %d exited with %d", run_id, process.pid, code)
        try:
            await self._on_exit(run_id, code)
        except Exception:
            log.exception("retraining run %s: exit not recorded", run_id)

    async def failure(self, job_name: str) -> str | None:
        return None  # the watcher records exits as they happen

    async def close(self) -> None:
        """Stop running children (SIGTERM, then SIGKILL after 10 s) and record their end."""
        for process in list(self._children.values()):
            if process.returncode is None:
                process.terminate()
        if self._watchers:
            _, pending = await asyncio.wait(set(self._watchers), timeout=10.0)
            for process in list(self._children.values()):
                if process.returncode is None:
                    process.kill()
            if pending:
                await asyncio.wait(pending, timeout=5.0)


def _api_message(exc: ApiException) -> str:
    """The ``message`` of the API's Status body (it names the user, verb and resource)."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return str(exc.body or "")[:500]
    return str(body.get("message", "")) if isinstance(body, dict) else str(body)[:500]


def job_manifest(template: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """The Job of one run: the chart's template + the run id (label, env of every container)."""
    job = copy.deepcopy(template)
    if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        raise ValueError("the retraining job template must be a batch/v1 Job")
    metadata = job.setdefault("metadata", {})
    metadata.setdefault("labels", {})[RUN_LABEL] = run_id
    pod = job["spec"]["template"]
    pod.setdefault("metadata", {}).setdefault("labels", {})[RUN_LABEL] = run_id
    for container in pod["spec"]["containers"]:
        env = [e for e in container.get("env", []) if e.get("name") != RUN_ID_ENV]
        container["env"] = [*env, {"name": RUN_ID_ENV, "value": run_id}]
    return job


class KubernetesJobTrigger:
    """One Kubernetes Job per run, created from the chart's template."""

    name = "kubernetes"

    def __init__(
        self, *, template: dict[str, Any], namespace: str, api: kube.ApiClient, timeout_s: float
    ) -> None:
        self._template = template
        self.namespace = namespace
        self._api = api
        self._batch = kube.BatchV1Api(api)
        self._timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: ClassifierSettings) -> KubernetesJobTrigger:
        """Read the template (fails at start when missing) and the API configuration."""
        template = yaml.safe_load(settings.retraining_job_template.read_text())
        job_manifest(template, run_id="check")  # the template is a Job: fail fast otherwise
        configuration = kube.Configuration()
        if settings.retraining_kube_api_url:
            configuration.host = settings.retraining_kube_api_url
        else:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        configuration.retries = 0  # one attempt per call: the caller (Alertmanager) retries
        namespace = (
            settings.retraining_namespace
            or template.get("metadata", {}).get("namespace")
            or (
                SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
                if SERVICE_ACCOUNT_NAMESPACE.is_file()
                else "default"
            )
        )
        return cls(
            template=template,
            namespace=namespace,
            api=kube.ApiClient(configuration),
            timeout_s=settings.retraining_start_timeout_s,
        )

    async def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        with observe_dependency("kubernetes", operation):
            try:
                return await asyncio.to_thread(call)
            except ApiException as exc:
                if exc.status in (429, 500, 502, 503, 504):
                    detail = f"Kubernetes API: {exc.status} {exc.reason}"
                    raise KubernetesUnavailable(detail) from exc
                if exc.status in (401, 403):
                    raise KubernetesForbidden(
                        f"Kubernetes API refused {operation}: {exc.status} {exc.reason}: "
                        f"{_api_message(exc)}"
                    ) from exc
                raise DependencyFailed(
                    f"Kubernetes API refused {operation}: {exc.status} {exc.reason}"
                ) from exc
            except urllib3.exceptions.TimeoutError as exc:
                raise DependencyTimeout(f"Kubernetes API: {operation} timed out") from exc
            except urllib3.exceptions.HTTPError as exc:
                raise KubernetesUnavailable(f"Kubernetes API unreachable: {exc}") from exc

    async def start(self, run_id: str) -> str:
        body = job_manifest(self._template, run_id=run_id)
        created = await self._call(
            "create_job",
            lambda: self._batch.create_namespaced_job(
                self.namespace, cast(Any, body), _request_timeout=self._timeout_s
            ),
        )
        name = str(created.metadata.name)
        log.info("retraining run %s: created Job %s/%s", run_id, self.namespace, name)
        return name

    async def failure(self, job_name: str) -> str | None:
        try:
            job = await self._call(
                "read_job",
                lambda: self._batch.read_namespaced_job_status(
                    job_name, self.namespace, _request_timeout=self._timeout_s
                ),
            )
        except KubernetesForbidden as exc:
            log.error(
                "retraining Job %s/%s: its status cannot be read, the run is marked failed"
                " (the classifier's Role needs get on batch jobs/status): %s",
                self.namespace, job_name, exc.detail,
            )  # fmt: skip
            return (
                f"the status of Job {job_name} cannot be read ({exc.detail}); marked failed,"
                " the Job itself may still run"
            )
        for condition in (job.status.conditions if job.status else None) or []:
            if condition.type == "Failed" and condition.status == "True":
                return f"Job {job_name} failed: {condition.reason}: {condition.message or ''}"
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self._api.close)


def make_trigger(settings: ClassifierSettings, *, on_exit: OnExit) -> Trigger:
    """The trigger ``CLASSIFIER_RETRAINING_TRIGGER`` names."""
    if settings.retraining_trigger == "kubernetes":
        return KubernetesJobTrigger.from_settings(settings)
    return SubprocessTrigger(
        settings.retraining_command, on_exit=on_exit, timeout_s=settings.retraining_start_timeout_s
    )
