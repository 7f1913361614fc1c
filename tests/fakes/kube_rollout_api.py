"""A FAKE Kubernetes API server for `modelfleet rollout` (no API server can run on this machine):
GET and PATCH (strategic merge) of Deployments, Services and Ingresses in one namespace, and
nothing else.

It serves the objects it is given (the chart's rendered objects), answers 403 for any request
the given RBAC Role does not allow (verb + resource + resourceNames, as the API server's RBAC
authorizer would for the rollout's ServiceAccount), and 422 when a patch would make the object
invalid for Kubernetes 1.30 (``kubernetes_validate``). ``patches`` records every accepted PATCH.

PATCH bodies are merged by the fake's own strategic merge (tests/fakes/strategic_merge.py, a
FAKE of the API server's, 400 for what it does not fake), never by the controller's
``services.rollout.kube.strategic_merge``: what the tests read back is what the API server would
hold, whatever the code under test computed. ``refuse`` makes the server answer 500 to one
exact PATCH (as a failing admission webhook would), to drive a rollback mid-promotion.

    with FakeKubeRolloutApi(objects, role=role, namespace="modelfleet") as api:
        api.kubeconfig(tmp_path / "config")       # for KUBECONFIG
        before = api.snapshot()
        api.get("Ingress", "mf-modelfleet-ride-duration-canary")
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.fakes.strategic_merge import PatchNotSupported, apply_patch
from tests.fakes.threaded_server import ThreadedHttpServer

K8S_VERSION = "1.30"
_PATHS = re.compile(
    r"^/(?:api/v1|apis/(apps|networking\.k8s\.io)/v1)/namespaces/([^/]+)/"
    r"(deployments|services|ingresses)/([^/]+)$"
)
_KINDS = {"deployments": "Deployment", "services": "Service", "ingresses": "Ingress"}
_GROUPS = {"deployments": "apps", "services": "", "ingresses": "networking.k8s.io"}
Obj = dict[str, Any]


class FakeKubeRolloutApi(ThreadedHttpServer):
    """The fake server (a thread); use as a context manager."""

    def __init__(self, objects: list[Obj], *, role: Obj, namespace: str) -> None:
        self.namespace = namespace
        self.role = role
        self.objects = {
            (o["kind"], o["metadata"]["name"]): copy.deepcopy(o)
            for o in objects
            if o["kind"] in _KINDS.values()
        }
        self.patches: list[tuple[str, str, Obj]] = []
        self.denied: list[str] = []
        self.refusals: list[tuple[str, str, Obj]] = []
        self.refused: list[tuple[str, str, Obj]] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file naming this server (no credentials)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "rollout", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "rollout",
                                                      "namespace": self.namespace}}],
            "current-context": "fake",
        }  # fmt: skip
        path.write_text(yaml.safe_dump(config))
        return path

    def get(self, kind: str, name: str) -> Obj:
        with self._lock:
            return copy.deepcopy(self.objects[(kind, name)])

    def snapshot(self) -> dict[tuple[str, str], Obj]:
        """Every object the server holds, by (kind, name), as it holds them now."""
        with self._lock:
            return copy.deepcopy(self.objects)

    def refuse(self, kind: str, name: str, body: Obj) -> None:
        """From now on answer 500 to a PATCH of ``kind``/``name`` with exactly ``body``
        (recorded in ``refused``); any other PATCH goes through."""
        with self._lock:
            self.refusals.append((kind, name, copy.deepcopy(body)))

    def _allowed(self, verb: str, resource: str, name: str) -> bool:
        return any(
            verb in rule["verbs"]
            and resource in rule["resources"]
            and _GROUPS[resource] in rule["apiGroups"]
            and name in rule.get("resourceNames", [name])
            for rule in self.role["rules"]
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Obj) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": reason, "message": message, "code": code})  # fmt: skip

            def _target(self, verb: str) -> tuple[str, str] | None:
                match = _PATHS.match(self.path.split("?")[0])
                if not match or match.group(2) != fake.namespace:
                    self._status(404, "NotFound", self.path)
                    return None
                resource, name = match.group(3), match.group(4)
                if not fake._allowed(verb, resource, name):
                    fake.denied.append(f"{verb} {resource}/{name}")
                    self._status(403, "Forbidden", f"cannot {verb} {resource}/{name}")
                    return None
                if (_KINDS[resource], name) not in fake.objects:
                    self._status(404, "NotFound", f"{resource}/{name}")
                    return None
                return _KINDS[resource], name

            def do_GET(self) -> None:
                target = self._target("get")
                if target is not None:
                    self._send(200, fake.get(*target))

            def do_PATCH(self) -> None:
                target = self._target("patch")
                if target is None:
                    return
                if self.headers["Content-Type"] != "application/strategic-merge-patch+json":
                    return self._status(415, "UnsupportedMediaType", self.headers["Content-Type"])
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    if (*target, body) in fake.refusals:
                        fake.refused.append((*target, body))
                        return self._status(500, "InternalError", "refused by the test")
                    try:
                        patched = apply_patch(target[0], fake.objects[target], body)
                    except PatchNotSupported as exc:
                        return self._status(400, "BadRequest", f"not faked: {exc}")
                    try:
                        kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
                    except kubernetes_validate.ValidationError as exc:
                        return self._status(422, "Invalid", str(exc))
                    fake.objects[target] = patched
                    fake.patches.append((*target, body))
                self._send(200, patched)

        return Handler
