"""A FAKE Kubernetes API server for `helm install --dry-run=server`: discovery of the built-in
kinds the chart renders, GET of the objects it is given (``objects``), 404 for every other
object. Enough for Helm to run the chart's ``lookup`` calls against "a cluster" (no API server
can run on this machine).

    with FakeDiscoveryApi({("v1", "ns", "secrets", "name"): secret}) as api:
        manifest = api.install_dry_run(chart, "mf", "ns", values)
"""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Any

import helm_python
from helm_python import _native

from tests.fakes.threaded_server import ThreadedHttpServer

#: groupVersion -> (resource, kind) of every built-in kind the chart renders.
RESOURCES: dict[str, list[tuple[str, str]]] = {
    "v1": [("secrets", "Secret"), ("configmaps", "ConfigMap"), ("services", "Service"),
           ("serviceaccounts", "ServiceAccount"), ("pods", "Pod"), ("namespaces", "Namespace"),
           ("persistentvolumeclaims", "PersistentVolumeClaim")],
    "apps/v1": [("deployments", "Deployment"), ("statefulsets", "StatefulSet")],
    "batch/v1": [("jobs", "Job"), ("cronjobs", "CronJob")],
    "networking.k8s.io/v1": [("ingresses", "Ingress"), ("networkpolicies", "NetworkPolicy")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
    "rbac.authorization.k8s.io/v1": [("roles", "Role"), ("rolebindings", "RoleBinding")],
}  # fmt: skip
_OBJECT = re.compile(r"^/apis?/(.+)/namespaces/([^/]+)/([^/]+)/([^/]+)$")
Key = tuple[str, str, str, str]  # (groupVersion, namespace, resource, name)


class FakeDiscoveryApi(ThreadedHttpServer):
    """The fake server (a thread); use as a context manager."""

    def __init__(self, objects: dict[Key, dict[str, Any]] | None = None) -> None:
        self.objects = dict(objects or {})
        self.requests: list[str] = []
        super().__init__(self._handler())

    def install_dry_run(
        self, chart: helm_python.Chart, release: str, namespace: str, values: dict[str, Any]
    ) -> str:
        """`helm install --dry-run=server` against this server; the rendered manifest."""
        kubeconfig = json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        })  # fmt: skip
        options = {"namespace": namespace, "dry_run": "server",
                   "disable_openapi_validation": True}  # fmt: skip
        with helm_python.Config(
            kubeconfig_content=kubeconfig, namespace=namespace, storage_driver="memory"
        ) as config:
            payload = _native.call_string(
                "helm_install", config._raw(), _native.HANDLE(0), chart._raw(), None,
                release, json.dumps(values), json.dumps(options),
            )  # fmt: skip
        manifest: str = json.loads(payload)["manifest"]
        return manifest

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                fake.requests.append(path)
                if path == "/version":
                    self._send(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
                elif path == "/api":
                    self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
                elif path == "/apis":
                    self._send(200, _group_list())
                elif path.removeprefix("/api/").removeprefix("/apis/") in RESOURCES:
                    self._send(200, _resource_list(path.split("/", 2)[2]))
                elif (match := _OBJECT.match(path)) and match.groups() in fake.objects:
                    self._send(200, fake.objects[match.groups()])  # type: ignore[index]
                else:
                    self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "reason": "NotFound", "code": 404})  # fmt: skip

        return Handler


def _group_list() -> dict[str, Any]:
    groups = []
    for group_version in RESOURCES:
        if "/" in group_version:
            group, version = group_version.split("/")
            entry = {"groupVersion": group_version, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": name, "singularName": "", "namespaced": name != "namespaces", "kind": kind,
             "verbs": ["get", "list", "create", "update", "patch", "delete"]}
            for name, kind in RESOURCES[group_version]
        ],
    }  # fmt: skip
