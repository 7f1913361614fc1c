"""The kubelet stand-in's own rules, without root: what a kubelet computes from a pod spec."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.kube.cluster import repository
from tests.kube.containers import in_root
from tests.kube.podspec import (
    ClusterObjects,
    CreateContainerConfigError,
    PodIdentity,
    container_argv,
    container_env,
    expand,
)
from tests.kube.substitutes import rewrite_paths
from tests.kube.volumes import ClaimStore, container_mounts, prepare_volumes

POD = PodIdentity("web-1", "shop", "uid-1", {"app": "web"}, {}, "web-sa", "node", "10.0.0.5",
                  "10.0.0.1")  # fmt: skip


def objects() -> ClusterObjects:
    found = ClusterObjects(namespace="shop")
    found.add({"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"A": "1", "B": "two"}})
    found.add({"kind": "Secret", "metadata": {"name": "s"}, "data": {"pw": "c2VrcmV0"}})
    return found


def test_var_references_expand_as_kubernetes_does() -> None:
    env = {"A": "1", "HOST": "db"}
    assert expand("$(HOST):$(A) $(MISSING) $$(HOST) $$", env) == "db:1 $(MISSING) $(HOST) $"


def test_env_order_envfrom_then_env_and_references_to_earlier_values() -> None:
    container = {
        "name": "c",
        "envFrom": [
            {"configMapRef": {"name": "cfg"}},
            {"prefix": "S_", "secretRef": {"name": "s"}},
        ],
        "env": [
            {"name": "A", "value": "override-$(B)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k",
                                                             "optional": True}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        ],
    }  # fmt: skip
    env = container_env(POD, container, objects(), image_env={"A": "image"}, injected={"K": "v"})
    assert env["A"] == "override-two" and env["B"] == "two" and env["S_pw"] == "sekret"
    assert (env["PW"], env["NS"], env["APP"], env["K"]) == ("sekret", "shop", "web", "v")
    assert "GONE" not in env


@pytest.mark.parametrize(
    "var",
    [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}},
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nokey"}}},
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}},
    ],
)
def test_a_missing_non_optional_reference_is_create_container_config_error(
    var: dict[str, Any],
) -> None:
    with pytest.raises(CreateContainerConfigError):
        container_env(POD, {"name": "c", "env": [var]}, objects(), image_env={}, injected={})


def test_command_and_args_over_entrypoint_and_cmd() -> None:
    image = {"Entrypoint": ["python", "-m", "app"], "Cmd": ["--repo", "/models"]}
    env = {"N": "5"}
    assert container_argv({"name": "c"}, image, env) == ["python", "-m", "app", "--repo", "/models"]
    assert container_argv({"name": "c", "args": ["--rows", "$(N)"]}, image, env) == [
        "python", "-m", "app", "--rows", "5"]  # fmt: skip
    assert container_argv({"name": "c", "command": ["sh"]}, image, env) == ["sh"]


def test_volumes_and_mounts(tmp_path: Path) -> None:
    spec = {
        "securityContext": {},
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "B", "path": "b.txt"}]}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "shared"}},
            {"name": "api", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]}},
        ],
    }  # fmt: skip
    claims = ClaimStore(tmp_path / "claims")
    volumes = prepare_volumes(pod_dir=tmp_path / "pod", pod_spec=spec, identity=POD,
                              objects=objects(), claims=claims)  # fmt: skip
    assert (volumes["cfg"].path / "b.txt").read_text() == "two" and volumes["cfg"].read_only
    assert volumes["data"].path == claims.path("shared") and not volumes["data"].read_only
    assert (volumes["api"].path / "namespace").read_text() == "shop"
    claims_part = (volumes["api"].path / "token").read_text().split(".")[1]
    assert "web-sa" in base64.urlsafe_b64decode(claims_part + "==").decode()
    mounts = container_mounts(
        {"volumeMounts": [{"name": "data", "mountPath": "/data/x", "subPath": "sub"},
                          {"name": "tmp", "mountPath": "/data"}]},
        volumes,
    )  # fmt: skip
    assert [m.target for m in mounts] == ["/data", "/data/x"]  # parents first
    assert mounts[1].source == claims.path("shared") / "sub"
    with pytest.raises(CreateContainerConfigError):
        prepare_volumes(pod_dir=tmp_path / "p2", pod_spec={"volumes": [
            {"name": "h", "hostPath": {"path": "/"}}]}, identity=POD, objects=objects(),
            claims=claims)  # fmt: skip


def test_symlinks_in_the_image_resolve_inside_the_image(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("/run")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "alt").symlink_to("../run")
    assert in_root(tmp_path, "/var/run/secrets/token") == "run/secrets/token"
    assert in_root(tmp_path, "/etc/alt/x") == "run/x"


def test_image_repositories_and_volume_path_rewrites() -> None:
    assert repository("nvcr.io/nvidia/tritonserver:24.10-py3") == "nvcr.io/nvidia/tritonserver"
    assert repository("localhost:5000/modelfleet:dev") == "localhost:5000/modelfleet"
    assert repository("nats:2.10.29-alpine@sha256:abc") == "nats"
    mounts = {"/models": Path("/host/m"), "/data": Path("/host/d")}
    assert rewrite_paths("--model-repository=/models", mounts) == "--model-repository=/host/m"
    assert rewrite_paths("/data/pgdata", mounts) == "/host/d/pgdata"
    assert rewrite_paths("--jetstream", mounts) == "--jetstream"
    assert rewrite_paths("/modelsx", mounts) == "/modelsx"
