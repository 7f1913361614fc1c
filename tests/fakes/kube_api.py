"""A FAKE Kubernetes API server: just enough of ``batch/v1`` Jobs for the classifier's
retraining trigger (no API server can run on this machine).

It answers ``POST /apis/batch/v1/namespaces/{ns}/jobs`` (validates the body against the
Kubernetes 1.30 schema with ``kubernetes_validate``, fills ``metadata.name`` from
``generateName``, keeps it) and ``GET .../jobs/{name}[/status]``. ``created`` holds what was
POSTed; ``fail_next_create`` / ``fail_next_get`` make the next POST / GET answer that status;
``set_failed(name)`` marks a Job failed as the Job controller would.

Given ``role`` (a rendered RBAC Role), it authorizes every request as the API server's RBAC
authorizer would for the classifier's ServiceAccount: POST needs ``create`` on ``jobs``, GET of
``.../status`` ``get`` on ``jobs/status``, GET of the Job ``get`` on ``jobs``; a request the Role
does not allow answers 403 with the API server's message, and ``denied`` records it.

    with FakeKubeApi(role=classifier_role) as api:
        settings = ClassifierSettings(retraining_kube_api_url=api.url, ...)
"""

from __future__ import annotations

import itertools
import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Any

import kubernetes_validate

from tests.fakes.threaded_server import ThreadedHttpServer

K8S_VERSION = "1.30"
USER = "system:serviceaccount:modelfleet:mf-modelfleet-classifier"
_JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+?))?(/status)?/?$")


class FakeKubeApi(ThreadedHttpServer):
    """The fake server (a thread); use as a context manager."""

    def __init__(
        self,
        address: tuple[str, int] = ("127.0.0.1", 0),
        *,
        role: dict[str, Any] | None = None,
        user: str = USER,
    ) -> None:
        self.created: list[dict[str, Any]] = []
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_next_create: int | None = None
        self.fail_next_get: int | None = None
        self.role = role
        self.user = user
        self.denied: list[str] = []
        self._counter = itertools.count(1)
        super().__init__(self._handler(), address)

    def set_failed(self, namespace: str, name: str, message: str = "BackoffLimitExceeded") -> None:
        self.jobs[(namespace, name)]["status"] = {
            "failed": 2,
            "conditions": [
                {"type": "Failed", "status": "True", "reason": message, "message": message}
            ],
        }

    def allowed(self, verb: str, resource: str, name: str) -> bool:
        """Whether ``role`` allows ``verb`` on the ``batch`` ``resource`` (e.g. jobs/status)."""
        if self.role is None:
            return True
        return any(
            verb in rule["verbs"]
            and resource in rule["resources"]
            and "batch" in rule["apiGroups"]
            and name in rule.get("resourceNames", [name])
            for rule in self.role.get("rules") or []
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": reason, "message": message, "code": code})  # fmt: skip

            def _authorized(self, verb: str, resource: str, namespace: str, name: str) -> bool:
                if fake.allowed(verb, resource, name):
                    return True
                fake.denied.append(f"{verb} {resource}/{name}")
                subject = f'jobs.batch "{name}"' if name else "jobs.batch"
                self._status(403, "Forbidden",
                             f'{subject} is forbidden: User "{fake.user}" cannot {verb} resource'
                             f' "{resource}" in API group "batch" in the namespace'
                             f' "{namespace}"')  # fmt: skip
                return False

            def do_POST(self) -> None:
                match = _JOBS.match(self.path.split("?")[0])
                if not match or match.group(2):
                    return self._status(404, "NotFound", self.path)
                if not self._authorized("create", "jobs", match.group(1), ""):
                    return None
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if fake.fail_next_create is not None:
                    code, fake.fail_next_create = fake.fail_next_create, None
                    return self._status(code, "InternalError", "fake failure")
                try:
                    kubernetes_validate.validate(body, K8S_VERSION, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    return self._status(422, "Invalid", str(exc))
                namespace = match.group(1)
                meta = body["metadata"]
                if meta.get("namespace", namespace) != namespace:
                    return self._status(400, "BadRequest", "namespace does not match the path")
                if "name" not in meta:
                    if "generateName" not in meta:
                        return self._status(422, "Invalid", "name or generateName is required")
                    meta["name"] = f"{meta['generateName']}{next(fake._counter):05d}"
                meta["namespace"] = namespace
                fake.created.append(body)
                fake.jobs[(namespace, meta["name"])] = {**body, "status": {}}
                self._send(201, fake.jobs[(namespace, meta["name"])])

            def do_GET(self) -> None:
                match = _JOBS.match(self.path.split("?")[0])
                if match and match.group(2):
                    resource = "jobs/status" if match.group(3) else "jobs"
                    if not self._authorized("get", resource, match.group(1), match.group(2)):
                        return None
                if fake.fail_next_get is not None:
                    code, fake.fail_next_get = fake.fail_next_get, None
                    return self._status(code, "InternalError", "fake failure")
                job = fake.jobs.get((match.group(1), match.group(2) or "")) if match else None
                if job is None:
                    return self._status(404, "NotFound", self.path)
                self._send(200, job)

        return Handler
