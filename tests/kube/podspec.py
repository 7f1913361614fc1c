"""What a kubelet computes from a pod spec before it starts anything (no root, no processes).

Part of the kubelet stand-in (tests/kube/kubelet.py): the rendered objects a pod reads
(ConfigMaps, Secrets), a container's environment (``envFrom``, ``env`` with ``value``,
``configMapKeyRef``, ``secretKeyRef`` (``optional`` honoured), ``fieldRef``,
``resourceFieldRef``, ``$(VAR)`` references), its argv (``command``/``args`` over the image's
ENTRYPOINT/CMD, ``$(VAR)`` expanded, ``$$`` escaping) and the pod specs of every workload the
chart renders (Deployments, StatefulSets, CronJob jobTemplates, the Job template ConfigMaps,
the ``helm test`` Pods).

    objects = ClusterObjects.from_rendered(rendered)
    env = container_env(pod, container, objects, image_env={...})  # CreateContainerConfigError
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Obj = dict[str, Any]

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class CreateContainerConfigError(Exception):
    """The kubelet cannot build a container's configuration (a missing Secret or ConfigMap)."""

    reason = "CreateContainerConfigError"


class ErrImagePull(Exception):
    """The image is none of the images this machine has (nothing can be pulled here)."""

    reason = "ErrImagePull"


@dataclass
class ClusterObjects:
    """ConfigMaps and Secrets by name (one namespace), as a kubelet reads them from the API."""

    namespace: str
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)

    @classmethod
    def from_rendered(cls, objects: list[Obj], *, namespace: str) -> ClusterObjects:
        found = cls(namespace=namespace)
        for obj in objects:
            if obj.get("metadata", {}).get("namespace", namespace) != namespace:
                continue
            found.add(obj)
        return found

    def add(self, obj: Obj) -> None:
        """Take a ConfigMap or Secret (other kinds are ignored)."""
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap":
            self.config_maps[name] = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        elif obj["kind"] == "Secret":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data |= {k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()}
            self.secrets[name] = data

    def config_map_key(self, name: str, key: str, *, optional: bool) -> str | None:
        data = self.config_maps.get(name)
        if data is None or key not in data:
            if optional:
                return None
            what = f'configmap "{name}" not found' if data is None else f"key {key} in {name}"
            raise CreateContainerConfigError(what)
        return data[key]

    def secret_key(self, name: str, key: str, *, optional: bool) -> str | None:
        data = self.secrets.get(name)
        if data is None or key not in data:
            if optional:
                return None
            what = f'secret "{name}" not found' if data is None else f"key {key} in {name}"
            raise CreateContainerConfigError(what)
        return data[key].decode()


@dataclass(frozen=True)
class PodIdentity:
    """The downward API's view of a pod (fieldRef sources)."""

    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    service_account: str
    node_name: str
    pod_ip: str
    host_ip: str

    def field(self, path: str) -> str:
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": self.service_account,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
        }
        if path in simple:
            return simple[path]
        match = _LABEL_REF.match(path)
        if match:
            source = self.labels if match.group(1) == "labels" else self.annotations
            return source.get(match.group(2), "")
        raise CreateContainerConfigError(f"unsupported fieldRef {path}")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names replaced, unknown kept, $$ -> $."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(one, text)


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEM_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
              "G": 10**9}  # fmt: skip


def _resource_value(container: Obj, ref: Obj) -> str:
    kind, _, name = str(ref["resource"]).partition(".")
    quantity = str((container.get("resources") or {}).get(kind, {}).get(name, "0"))
    divisor = str(ref.get("divisor", "1"))
    if name == "cpu":
        match = _CPU.match(quantity)
        cores = float(match.group(1)) / (1000 if match.group(2) else 1) if match else 0.0
        div = float(divisor[:-1]) / 1000 if divisor.endswith("m") else float(divisor)
        return str(max(1, int(-(-cores // div))))
    for unit, factor in _MEM_UNITS.items():
        if quantity.endswith(unit):
            return str(int(float(quantity.removesuffix(unit)) * factor))
    return quantity


def container_env(
    pod: PodIdentity,
    container: Obj,
    objects: ClusterObjects,
    *,
    image_env: dict[str, str],
    injected: dict[str, str],
) -> dict[str, str]:
    """The environment a kubelet gives a container: image ENV, injected service variables,
    envFrom, then env (later wins), $(VAR) in env values expanded against what came before."""
    env = dict(image_env)
    env |= injected
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix", ""))
        if "configMapRef" in source:
            ref = source["configMapRef"]
            data = objects.config_maps.get(ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise CreateContainerConfigError(f'configmap "{ref["name"]}" not found')
            env |= {prefix + k: v for k, v in data.items()}
        elif "secretRef" in source:
            ref = source["secretRef"]
            secret = objects.secrets.get(ref["name"])
            if secret is None:
                if ref.get("optional"):
                    continue
                raise CreateContainerConfigError(f'secret "{ref["name"]}" not found')
            env |= {prefix + k: v.decode() for k, v in secret.items()}
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom") or {}
        value: str | None
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = objects.config_map_key(
                ref["name"], ref["key"], optional=bool(ref.get("optional"))
            )
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = objects.secret_key(ref["name"], ref["key"], optional=bool(ref.get("optional")))
        elif "fieldRef" in source:
            value = pod.field(source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            value = _resource_value(container, source["resourceFieldRef"])
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def container_argv(container: Obj, image_config: Obj, env: dict[str, str]) -> list[str]:
    """command/args over the image's Entrypoint/Cmd (Kubernetes' rules), $(VAR) expanded."""
    command = container.get("command")
    args = container.get("args")
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    if command is not None:
        argv = [expand(str(a), env) for a in command]
        argv += [expand(str(a), env) for a in (args or [])]
    elif args is not None:
        argv = entrypoint + [expand(str(a), env) for a in args]
    else:
        argv = entrypoint + cmd
    if not argv:
        raise CreateContainerConfigError(f"container {container['name']}: no command")
    return argv


# -- the workloads of a rendered chart ------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One pod spec the chart renders, with what owns it."""

    kind: str  # Deployment, StatefulSet, Job (template ConfigMap), CronJob, Pod (helm test)
    name: str
    labels: dict[str, str]
    pod_spec: Obj
    job_spec: Obj | None = None  # the Job spec (backoffLimit ...) for Job and CronJob
    claim_templates: tuple[Obj, ...] = ()

    @property
    def component(self) -> str:
        return self.labels.get("app.kubernetes.io/component", self.name)

    @property
    def runs_to_completion(self) -> bool:
        return self.kind in ("Job", "CronJob", "Pod")


def workloads(objects: list[Obj]) -> list[Workload]:
    """Every pod spec of a rendered release (hooks included)."""
    found: list[Workload] = []
    for obj in objects:
        kind, meta = obj["kind"], obj["metadata"]
        if kind in ("Deployment", "StatefulSet"):
            template = obj["spec"]["template"]
            found.append(
                Workload(
                    kind=kind,
                    name=meta["name"],
                    labels=dict(template["metadata"].get("labels") or {}),
                    pod_spec=template["spec"],
                    claim_templates=tuple(obj["spec"].get("volumeClaimTemplates") or ()),
                )
            )
        elif kind == "CronJob":
            job = obj["spec"]["jobTemplate"]["spec"]
            found.append(_job_workload("CronJob", meta["name"], job))
        elif kind == "ConfigMap" and "job.yaml" in (obj.get("data") or {}):
            job_obj = yaml.safe_load(obj["data"]["job.yaml"])
            name = job_obj["metadata"].get("name") or job_obj["metadata"]["generateName"]
            found.append(_job_workload("Job", name.rstrip("-"), job_obj["spec"]))
        elif kind == "Pod":
            found.append(
                Workload(
                    kind="Pod",
                    name=meta["name"],
                    labels=dict(meta.get("labels") or {}),
                    pod_spec=obj["spec"],
                )
            )
    return found


def _job_workload(kind: str, name: str, job: Obj) -> Workload:
    template = job["template"]
    return Workload(
        kind=kind,
        name=name,
        labels=dict((template.get("metadata") or {}).get("labels") or {}),
        pod_spec=template["spec"],
        job_spec=job,
    )


def all_containers(pod_spec: Obj) -> list[Obj]:
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])
