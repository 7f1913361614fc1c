"""The Kubernetes target: a rollout of a chart component's canary or blue/green objects.

Through the official ``kubernetes`` client, with only ``get`` and ``patch`` on the objects the
chart names (the Role of charts/modelfleet/templates/rollout.yaml):

- canary: a step patches the canary Ingress's ``nginx.ingress.kubernetes.io/canary-weight``;
  promotion patches the stable Deployment's container image to the canary's and the weight
  back to 0; rollback puts the weight (and the stable image) back as recorded.
- blueGreen: the one step patches the Service's selector to the new colour; rollback patches
  it back (instant: the old colour's pods never stopped).

Before every PATCH the object is read, the patch is applied to it here (a strategic merge of
maps and of lists keyed by ``name``, all these patches need) and the result is validated against
the Kubernetes 1.30 schema with ``kubernetes_validate``: an invalid object is never sent.

    api = kube_api_client(settings)            # in-cluster or kubeconfig
    target = KubernetesRolloutTarget(spec.target, api)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from services.rollout.settings import RolloutSettings
from services.rollout.spec import KubernetesTarget
from services.rollout.targets import TargetError

K8S_VERSION = "1.30"
TRACK = "modelfleet.io/track"
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"

Obj = dict[str, Any]


def kube_api_client(settings: RolloutSettings) -> k8s.ApiClient:
    """An API client from the pod's ServiceAccount or the local kubeconfig."""
    configuration = k8s.Configuration()
    if settings.kube_in_cluster:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config_file = None if settings.kubeconfig is None else str(settings.kubeconfig)
        k8s_config.load_kube_config(config_file=config_file, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return k8s.ApiClient(configuration)


def strategic_merge(obj: Any, patch: Any) -> Any:
    """``patch`` applied to ``obj`` as a strategic merge patch does for these objects: maps
    merge (None deletes a key), lists of maps with ``name`` merge by name, other lists replace."""
    if isinstance(obj, dict) and isinstance(patch, dict):
        merged = dict(obj)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(obj.get(key), value)
        return merged
    if isinstance(obj, list) and isinstance(patch, list):
        keyed = all(isinstance(i, dict) and "name" in i for i in [*obj, *patch])
        if keyed and obj:
            patches = {item["name"]: item for item in patch}
            result = [strategic_merge(item, patches.pop(item["name"], {})) for item in obj]
            return result + list(patches.values())
    return copy.deepcopy(patch)


class KubernetesRolloutTarget:
    """The canary or blue/green objects of one component in one namespace."""

    def __init__(self, spec: KubernetesTarget, api: k8s.ApiClient) -> None:
        self.spec = spec
        self._api = api
        self._apps = k8s.AppsV1Api(api)
        self._core = k8s.CoreV1Api(api)
        self._networking = k8s.NetworkingV1Api(api)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def describe(self) -> str:
        s = self.spec
        if s.strategy == "canary":
            return f"namespace {s.namespace}: canary Ingress {s.ingress} -> {s.canary_deployment}"
        return f"namespace {s.namespace}: Service {s.service} -> {s.color}"

    # -- reads and validated patches -------------------------------------------------------
    def _kind_api(self, kind: str) -> tuple[Callable[[str], Any], Callable[[str, Obj], Any]]:
        """The client's read and patch of ``kind`` in the target's namespace. Named methods,
        never ``getattr``: tests/chart/test_rbac_from_code.py reads them to check the Role."""
        ns = self.spec.namespace
        apis: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "Deployment": (
                self._apps.read_namespaced_deployment,
                self._apps.patch_namespaced_deployment,
            ),
            "Service": (self._core.read_namespaced_service, self._core.patch_namespaced_service),
            "Ingress": (
                self._networking.read_namespaced_ingress,
                self._networking.patch_namespaced_ingress,
            ),
        }
        read, patch = apis[kind]
        return (lambda name: read(name, ns)), (lambda name, body: patch(name, ns, body))

    def read(self, kind: str, name: str) -> Obj:
        read, _ = self._kind_api(kind)
        try:
            obj: Obj = self._api.sanitize_for_serialization(read(name))  # type: ignore[no-untyped-call]
        except ApiException as exc:
            raise TargetError(f"get {kind}/{name}: HTTP {exc.status} {exc.reason}") from exc
        obj.setdefault("apiVersion", {"Deployment": "apps/v1", "Service": "v1",
                                      "Ingress": "networking.k8s.io/v1"}[kind])  # fmt: skip
        obj.setdefault("kind", kind)
        return obj

    def patch(self, kind: str, name: str, body: Obj) -> Obj:
        """Validate the patched object against Kubernetes 1.30, then PATCH it."""
        patched: Obj = strategic_merge(self.read(kind, name), body)
        try:
            kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise TargetError(f"{kind}/{name} would be invalid: {exc}") from exc
        _, patch = self._kind_api(kind)
        try:
            patch(name, body)
        except ApiException as exc:
            raise TargetError(f"patch {kind}/{name}: HTTP {exc.status} {exc.reason}") from exc
        return patched

    # -- the Target protocol ---------------------------------------------------------------
    def _image(self, deployment: str) -> tuple[str, str]:
        container = self.read("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
        return str(container["name"]), str(container["image"])

    def _set_image(self, deployment: str, container: str, image: str) -> None:
        containers = [{"name": container, "image": image}]
        self.patch(
            "Deployment", deployment, {"spec": {"template": {"spec": {"containers": containers}}}}
        )

    def _set_canary_weight(self, percent: str) -> None:
        assert self.spec.ingress is not None
        self.patch("Ingress", self.spec.ingress, {"metadata": {"annotations": {WEIGHT: percent}}})

    def _set_color(self, color: str) -> None:
        assert self.spec.service is not None
        self.patch("Service", self.spec.service, {"spec": {"selector": {TRACK: color}}})

    def baseline(self) -> dict[str, Any]:
        s = self.spec
        if s.strategy == "blueGreen":
            assert s.service is not None
            color = self.read("Service", s.service)["spec"]["selector"].get(TRACK)
            if color not in ("blue", "green"):
                raise TargetError(f"Service {s.service} selects no colour (strategy blueGreen?)")
            if color == s.color:
                raise TargetError(f"Service {s.service} already selects {color}")
            return {"color": color}
        assert s.ingress is not None and s.stable_deployment is not None
        annotations = self.read("Ingress", s.ingress)["metadata"].get("annotations") or {}
        if annotations.get("nginx.ingress.kubernetes.io/canary") != "true":
            raise TargetError(f"Ingress {s.ingress} is not a canary Ingress")
        container, image = self._image(s.stable_deployment)
        return {"weight": annotations.get(WEIGHT, "0"), "container": container, "image": image}

    def set_weight(self, weight: float, baseline: dict[str, Any]) -> str:
        if self.spec.strategy == "blueGreen":
            assert self.spec.color is not None
            self._set_color(self.spec.color)
            return f"Service {self.spec.service} selects {self.spec.color}"
        percent = str(round(weight * 100))
        self._set_canary_weight(percent)
        return f"Ingress {self.spec.ingress} canary-weight {percent}"

    def promote(self, baseline: dict[str, Any]) -> str:
        if self.spec.strategy == "blueGreen":
            return f"{self.spec.color} is live; {baseline['color']} stays up for a rollback"
        assert self.spec.canary_deployment is not None and self.spec.stable_deployment is not None
        _, image = self._image(self.spec.canary_deployment)
        self._set_image(self.spec.stable_deployment, baseline["container"], image)
        self._set_canary_weight("0")
        return f"Deployment {self.spec.stable_deployment} runs {image}; canary weight 0"

    def rollback(self, baseline: dict[str, Any]) -> str:
        if self.spec.strategy == "blueGreen":
            self._set_color(baseline["color"])
            return f"Service {self.spec.service} selects {baseline['color']} again"
        assert self.spec.stable_deployment is not None
        self._set_canary_weight(baseline["weight"])
        self._set_image(self.spec.stable_deployment, baseline["container"], baseline["image"])
        return f"Ingress {self.spec.ingress} canary-weight {baseline['weight']} again"
