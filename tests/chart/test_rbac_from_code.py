"""RBAC from the code: every Role the chart renders grants exactly the Kubernetes API calls of the
code that runs under it, both ways. A call without a rule fails (the 403 comes in the cluster,
not here: the classifier's missing ``jobs/status``), and so does a rule no call needs (the
classifier's unused ``pods/log`` and ``jobs`` list/watch, the rollout's ``httproutes``).

The calls are read from the code with ``ast`` (tests/chart/kube_calls.py: the official client's
methods, each mapped to its permission through the client's own request path); the Roles are
rendered from the default values and every ci/ scenario (the rollout ones enable
``rolloutController``).
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest

from tests.chart.conftest import (
    ALL_SCENARIOS,
    ROOT,
    Obj,
    by_kind,
    component,
    render,
    scenario_values,
)
from tests.chart.kube_calls import (
    KubeCall,
    Permission,
    UnreadableCall,
    http_of,
    kube_calls,
    permission_of,
)

#: Role (its component label) -> the package whose code runs with it, and whether that code
#: makes all its calls in every install (the classifier: one code path) or only together over
#: the scenarios (the rollout controller: the calls of the strategies the values choose).
CODE: dict[str, tuple[Path, bool]] = {
    "classifier-retrain": (ROOT / "services" / "classifier", True),
    "rollout": (ROOT / "services" / "rollout", False),
}


@functools.cache
def _roles(scenario: str) -> dict[str, Obj]:
    objects = render(scenario_values(scenario))
    assert not by_kind(objects, "ClusterRole"), scenario
    return {component(role): role for role in by_kind(objects, "Role")}


@functools.cache
def _calls(name: str) -> tuple[KubeCall, ...]:
    return tuple(kube_calls(CODE[name][0], root=ROOT))


def granted(role: Obj) -> set[Permission]:
    """Every (group, resource, subresource, verb) a Role's rules grant (no wildcards allowed)."""
    permissions = set()
    for rule in role.get("rules") or []:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"a wildcard: {rule}"
                    name, _, sub = resource.partition("/")
                    permissions.add((group, name, sub, verb))
    return permissions


def _needed(name: str) -> dict[Permission, list[str]]:
    needed: dict[Permission, list[str]] = {}
    for call in _calls(name):
        needed.setdefault(call.permission, []).append(f"{call.method} ({call.where})")
    return needed


def test_every_role_runs_code_this_test_reads() -> None:
    for scenario in ALL_SCENARIOS:
        assert set(_roles(scenario)) <= set(CODE), scenario
    assert {name for s in ALL_SCENARIOS for name in _roles(s)} == set(CODE)
    assert all(_calls(name) for name in CODE)  # the reading found calls in each package


@pytest.mark.parametrize("name", sorted(CODE))
def test_no_call_without_a_rule(name: str) -> None:
    scenarios = [s for s in ALL_SCENARIOS if name in _roles(s)]
    every_install = CODE[name][1]
    groups = [[s] for s in scenarios] if every_install else [scenarios]
    for group in groups:
        rules = set().union(*(granted(_roles(s)[name]) for s in group))
        missing = {p: where for p, where in _needed(name).items() if p not in rules}
        assert not missing, f"{name} Role in {group} lacks {missing}"


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_no_rule_without_a_call(scenario: str) -> None:
    for name, role in _roles(scenario).items():
        unused = granted(role) - set(_needed(name))
        assert not unused, f"{name} Role in {scenario} grants what no call needs: {unused}"


# -- the reading itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "method", "permission"),
    [
        ("BatchV1Api", "read_namespaced_job_status", ("batch", "jobs", "status", "get")),
        ("BatchV1Api", "create_namespaced_job", ("batch", "jobs", "", "create")),
        ("BatchV1Api", "list_namespaced_job", ("batch", "jobs", "", "list")),
        ("BatchV1Api", "delete_collection_namespaced_job",
         ("batch", "jobs", "", "deletecollection")),
        ("CoreV1Api", "read_namespaced_pod_log", ("", "pods", "log", "get")),
        ("CoreV1Api", "read_namespace", ("", "namespaces", "", "get")),
        ("AppsV1Api", "patch_namespaced_deployment", ("apps", "deployments", "", "patch")),
        ("AppsV1Api", "replace_namespaced_deployment_scale",
         ("apps", "deployments", "scale", "update")),
    ],
)  # fmt: skip
def test_a_client_method_maps_to_its_permission(api: str, method: str, permission: tuple) -> None:
    assert permission_of(*http_of(api, method)) == permission


def _read(tmp_path: Path, source: str) -> list[Permission]:
    package = tmp_path / "pkg"
    package.mkdir(exist_ok=True)
    (package / "mod.py").write_text(textwrap.dedent(source))
    return [call.permission for call in kube_calls(package)]


def test_the_reading_finds_each_way_of_calling(tmp_path: Path) -> None:
    source = """
        from kubernetes import client as kube
        from kubernetes.client import CoreV1Api

        class Thing:
            def __init__(self, api):
                self._batch = kube.BatchV1Api(api)

            def go(self, api):
                self._batch.create_namespaced_job("ns", {})
                core = CoreV1Api(api)
                methods = {"read": core.read_namespaced_config_map}
                core.list_namespaced_pod("ns", watch=True)
                kube.AppsV1Api(api).read_namespaced_deployment("n", "ns")
                kube.CustomObjectsApi(api).patch_namespaced_custom_object(
                    "gateway.networking.k8s.io", "v1", "ns", "httproutes", "n", {}
                )
                return methods
    """
    assert sorted(_read(tmp_path, source)) == [
        ("", "configmaps", "", "get"),
        ("", "pods", "", "watch"),
        ("apps", "deployments", "", "get"),
        ("batch", "jobs", "", "create"),
        ("gateway.networking.k8s.io", "httproutes", "", "patch"),
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('api = kube.AppsV1Api(c)\ngetattr(api, "read_namespaced_" + kind)', "used as a value"),
        ("apis = {'Deployment': kube.AppsV1Api(c)}", "used as a value"),
        ("api = kube.AppsV1Api(c)\napi.read_namespaced_deploymnet('n', 'ns')", "no API method"),
        ("kube.CustomObjectsApi(c).get_namespaced_custom_object(g, 'v1', 'ns', 'xs', 'n')",
         "literal group"),
    ],
)  # fmt: skip
def test_a_call_the_reading_cannot_see_is_an_error(tmp_path: Path, body: str, error: str) -> None:
    with pytest.raises(UnreadableCall, match=error):
        _read(tmp_path, f"from kubernetes import client as kube\n{body}\n")
