"""Pod volumes of the kubelet stand-in (tests/kube/kubelet.py) as host folders.

Each pod volume becomes one host folder that the pod's containers bind-mount at their
mountPaths: ``emptyDir`` (one folder per pod volume, mode 0777, group fsGroup with setgid as a
kubelet makes it), ``configMap`` and ``secret`` (files written from the rendered objects, mounted
read-only; ``items``, ``optional`` and ``defaultMode`` honoured), ``projected`` (a fake
``serviceAccountToken``, ``configMap``/``secret`` sources such as ``kube-root-ca.crt``,
``downwardAPI``), ``persistentVolumeClaim`` (one folder per claim name in the cluster, shared by
every pod that mounts it, group set to the pod's fsGroup on every mount as a kubelet's
fsGroupChangePolicy Always does) and StatefulSet ``volumeClaimTemplates`` (claim
``<template>-<statefulset>-0``). Anything else (hostPath ...) is refused.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kube.podspec import ClusterObjects, CreateContainerConfigError, PodIdentity

Obj = dict[str, Any]


@dataclass(frozen=True)
class Mount:
    """One bind mount of a container: host path -> path in the container."""

    source: Path
    target: str
    read_only: bool

    @property
    def is_file(self) -> bool:
        return self.source.is_file()


@dataclass(frozen=True)
class Volume:
    path: Path
    read_only: bool


class ClaimStore:
    """PersistentVolumeClaims of one cluster: a host folder per claim name (ReadWriteMany)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, claim: str) -> Path:
        folder = self.root / claim
        folder.mkdir(exist_ok=True)
        return folder


def _set_fs_group(folder: Path, fs_group: int | None, *, recursive: bool) -> None:
    if fs_group is None:
        return
    paths = [folder, *folder.rglob("*")] if recursive else [folder]
    for path in paths:
        if path.is_symlink():
            continue
        os.chown(path, -1, fs_group)
        mode = path.stat().st_mode & 0o7777
        if path.is_dir():
            path.chmod(mode | 0o2070)
        else:
            path.chmod(mode | 0o060)


def fake_token(identity: PodIdentity) -> str:
    """An unsigned JWT naming the pod's ServiceAccount (the fake API server reads `sub`)."""

    def part(data: Obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    sub = f"system:serviceaccount:{identity.namespace}:{identity.service_account}"
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": sub,
        "kubernetes.io": {
            "namespace": identity.namespace,
            "serviceaccount": {"name": identity.service_account},
            "pod": {"name": identity.name, "uid": identity.uid},
        },
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.kubelet-standin"


def _write_files(folder: Path, files: dict[str, bytes], mode: int, fs_group: int | None) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        if fs_group is not None:
            os.chown(path, -1, fs_group)


def _pick(data: dict[str, bytes], items: list[Obj] | None) -> dict[str, bytes]:
    if not items:
        return dict(data)
    picked: dict[str, bytes] = {}
    for item in items:
        if item["key"] not in data:
            raise CreateContainerConfigError(f"key {item['key']} not found")
        picked[item["path"]] = data[item["key"]]
    return picked


def _config_map_files(objects: ClusterObjects, source: Obj) -> dict[str, bytes] | None:
    data = objects.config_maps.get(source["name"])
    if data is None:
        if source.get("optional"):
            return {}
        return None
    return _pick({k: v.encode() for k, v in data.items()}, source.get("items"))


def _secret_files(objects: ClusterObjects, name: str, source: Obj) -> dict[str, bytes] | None:
    data = objects.secrets.get(name)
    if data is None:
        if source.get("optional"):
            return {}
        return None
    return _pick(data, source.get("items"))


def prepare_volumes(
    *,
    pod_dir: Path,
    pod_spec: Obj,
    identity: PodIdentity,
    objects: ClusterObjects,
    claims: ClaimStore,
    claim_templates: tuple[Obj, ...] = (),
    workload: str = "",
) -> dict[str, Volume]:
    """Host folders of every volume of a pod (raises the kubelet's errors)."""
    fs_group = (pod_spec.get("securityContext") or {}).get("fsGroup")
    volumes: dict[str, Volume] = {}
    specs = list(pod_spec.get("volumes") or [])
    specs += [
        {"name": t["metadata"]["name"],
         "persistentVolumeClaim": {"claimName": f"{t['metadata']['name']}-{workload}-0"}}
        for t in claim_templates
    ]  # fmt: skip
    for spec in specs:
        name = spec["name"]
        folder = pod_dir / "volumes" / name
        if "emptyDir" in spec:
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)
            _set_fs_group(folder, fs_group, recursive=False)
            volumes[name] = Volume(folder, read_only=False)
        elif "configMap" in spec:
            files = _config_map_files(objects, spec["configMap"])
            if files is None:
                raise CreateContainerConfigError(
                    f'configmap "{spec["configMap"]["name"]}" not found'
                )
            folder.mkdir(parents=True, exist_ok=True)
            _write_files(folder, files, spec["configMap"].get("defaultMode", 0o644), fs_group)
            volumes[name] = Volume(folder, read_only=True)
        elif "secret" in spec:
            files = _secret_files(objects, spec["secret"]["secretName"], spec["secret"])
            if files is None:
                raise CreateContainerConfigError(
                    f'secret "{spec["secret"]["secretName"]}" not found'
                )
            folder.mkdir(parents=True, exist_ok=True)
            _write_files(folder, files, spec["secret"].get("defaultMode", 0o644), fs_group)
            volumes[name] = Volume(folder, read_only=True)
        elif "projected" in spec:
            folder.mkdir(parents=True, exist_ok=True)
            files = _projected(spec["projected"], identity, objects)
            mode = spec["projected"].get("defaultMode", 0o644)
            _write_files(folder, files, mode, fs_group)
            volumes[name] = Volume(folder, read_only=True)
        elif "persistentVolumeClaim" in spec:
            claim = claims.path(spec["persistentVolumeClaim"]["claimName"])
            _set_fs_group(claim, fs_group, recursive=True)
            read_only = bool(spec["persistentVolumeClaim"].get("readOnly"))
            volumes[name] = Volume(claim, read_only=read_only)
        else:
            kinds = sorted(set(spec) - {"name"})
            raise CreateContainerConfigError(f"volume {name}: unsupported source {kinds}")
    return volumes


def _projected(projected: Obj, identity: PodIdentity, objects: ClusterObjects) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for source in projected.get("sources") or []:
        if "serviceAccountToken" in source:
            files[source["serviceAccountToken"]["path"]] = fake_token(identity).encode()
        elif "configMap" in source:
            found = _config_map_files(objects, source["configMap"])
            if found is None:
                raise CreateContainerConfigError(
                    f'configmap "{source["configMap"]["name"]}" not found'
                )
            files |= found
        elif "secret" in source:
            found = _secret_files(objects, source["secret"]["name"], source["secret"])
            if found is None:
                raise CreateContainerConfigError(f'secret "{source["secret"]["name"]}" not found')
            files |= found
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                files[item["path"]] = identity.field(item["fieldRef"]["fieldPath"]).encode()
    return files


def container_mounts(container: Obj, volumes: dict[str, Volume]) -> list[Mount]:
    """The bind mounts of one container, parents before children."""
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        volume = volumes.get(vm["name"])
        if volume is None:
            raise CreateContainerConfigError(f"volumeMount {vm['name']}: no such volume")
        source = volume.path
        if vm.get("subPath"):
            source = source / vm["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        read_only = volume.read_only or bool(vm.get("readOnly"))
        mounts.append(Mount(source=source, target=vm["mountPath"], read_only=read_only))
    return sorted(mounts, key=lambda m: m.target.rstrip("/").count("/"))


def remove_pod_dir(pod_dir: Path) -> None:
    shutil.rmtree(pod_dir, ignore_errors=True)
