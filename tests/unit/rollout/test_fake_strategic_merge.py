"""The fake API server's strategic merge (tests/fakes/strategic_merge.py), checked against
objects written out by hand from the Kubernetes documentation of strategic merge patch, without
the code under test: maps merge, null deletes, a Deployment's containers merge by ``name``,
other lists replace, what the fake does not fake is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.fakes.strategic_merge import PatchNotSupported, apply_patch

WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


def _deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"track": "stable"}},
                "spec": {"containers": list(containers)},
            },
        },
    }


APP = {
    "name": "app",
    "image": "app:1",
    "args": ["--port", "8000"],
    "ports": [{"name": "http", "containerPort": 8000}],
    "resources": {"limits": {"cpu": "1"}},
}
SIDE = {"name": "side", "image": "side:1"}


def test_a_container_image_patch_merges_by_name_and_keeps_the_rest() -> None:
    obj = _deployment(APP, SIDE)
    kept = copy.deepcopy(obj)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}
    assert apply_patch("Deployment", obj, patch) == _deployment(
        {
            "name": "app",
            "image": "app:2",
            "args": ["--port", "8000"],
            "ports": [{"name": "http", "containerPort": 8000}],
            "resources": {"limits": {"cpu": "1"}},
        },
        {"name": "side", "image": "side:1"},
    )
    assert obj == kept  # not changed in place


def test_a_container_of_a_new_name_is_appended_and_other_lists_replace() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "new", "image": "new:1"},
                        {"name": "app", "args": ["--port", "9000"]},
                    ]
                }
            }
        }
    }
    assert apply_patch("Deployment", _deployment(APP), patch) == _deployment(
        {
            "name": "app",
            "image": "app:1",
            "args": ["--port", "9000"],
            "ports": [{"name": "http", "containerPort": 8000}],
            "resources": {"limits": {"cpu": "1"}},
        },
        {"name": "new", "image": "new:1"},
    )


def test_annotations_merge_and_null_deletes() -> None:
    obj = {
        "kind": "Ingress",
        "metadata": {
            "name": "c",
            "annotations": {"nginx.ingress.kubernetes.io/canary": "true", WEIGHT: "10", "old": "x"},
        },
    }
    patch = {"metadata": {"annotations": {WEIGHT: "25", "old": None, "absent": None}}}
    assert apply_patch("Ingress", obj, patch) == {
        "kind": "Ingress",
        "metadata": {
            "name": "c",
            "annotations": {"nginx.ingress.kubernetes.io/canary": "true", WEIGHT: "25"},
        },
    }
    new = {"metadata": {"labels": {"a": "1", "b": None}}}  # a map the object lacks: nulls dropped
    assert apply_patch("Ingress", obj, new)["metadata"]["labels"] == {"a": "1"}


def test_a_service_selector_merges_and_ingress_rules_replace() -> None:
    service = {
        "kind": "Service",
        "spec": {
            "selector": {"component": "backend", "track": "green"},
            "ports": [{"name": "http", "port": 8000}],
        },
    }
    patched = apply_patch("Service", service, {"spec": {"selector": {"track": "blue"}}})
    assert patched == {
        "kind": "Service",
        "spec": {
            "selector": {"component": "backend", "track": "blue"},
            "ports": [{"name": "http", "port": 8000}],
        },
    }
    ingress = {"kind": "Ingress", "spec": {"rules": [{"host": "a"}, {"host": "b"}]}}
    assert apply_patch("Ingress", ingress, {"spec": {"rules": [{"host": "c"}]}}) == {
        "kind": "Ingress",
        "spec": {"rules": [{"host": "c"}]},
    }


@pytest.mark.parametrize(
    ("kind", "patch", "message"),
    [
        ("Deployment", {"spec": {"$retainKeys": ["replicas"]}}, "directive"),
        (
            "Deployment",
            {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
            "without its key 'name'",
        ),
        ("Service", {"spec": {"ports": [{"name": "http", "port": 9000}]}}, "does not merge"),
    ],
)
def test_what_the_fake_does_not_fake_is_refused(
    kind: str, patch: dict[str, Any], message: str
) -> None:
    with pytest.raises(PatchNotSupported, match=message):
        apply_patch(kind, _deployment(APP), patch)
