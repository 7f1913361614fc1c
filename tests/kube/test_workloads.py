"""Every workload the chart renders for the default and minikube values, run for real.

The kubelet stand-in (tests/kube/kubelet.py) runs each pod spec in the images built from the
Dockerfile, in a pod network with the chart's Services and NetworkPolicies enforced; the
third-party images are the one substitution (tests/kube/substitutes.py). Users' requests go
through an ingress-controller peer pod in namespace ``ingress-nginx`` to the backend the
Ingress names (as ingress-nginx would send them); probes come from the node.
"""

from __future__ import annotations

import pytest

from tests.chart.conftest import render
from tests.kube.cluster import Cluster, Row, db_secret_refs, wait_all_ready
from tests.kube.conftest import SCENARIOS, values_for
from tests.kube.podspec import (
    ClusterObjects,
    CreateContainerConfigError,
    PodIdentity,
    all_containers,
    container_env,
    workloads,
)

TRITON = "triton"
RESULT_KINDS = {"tip", "cost", "duration"}


# -- rendered objects only (no root needed) -----------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_container_has_a_read_only_root(scenario: str) -> None:
    for w in workloads(render(values_for(scenario))):
        for c in all_containers(w.pod_spec):
            sc = c.get("securityContext") or {}
            assert sc.get("readOnlyRootFilesystem") is True, f"{w.kind} {w.name}/{c['name']}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_bare_install_creates_every_secret_and_config_map_its_pods_read(scenario: str) -> None:
    """Defect 3: a missing DB Secret leaves every pod in CreateContainerConfigError."""
    objects = render(values_for(scenario))
    found = ClusterObjects.from_rendered(objects, namespace="modelfleet")
    found.add({"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}, "data": {}})
    identity = PodIdentity("p", "modelfleet", "u", {}, {}, "sa", "node", "10.0.0.2", "10.0.0.1")
    errors = []
    for w in workloads(objects):
        for c in all_containers(w.pod_spec):
            try:
                container_env(identity, c, found, image_env={}, injected={})
            except CreateContainerConfigError as exc:
                errors.append(f"{w.kind} {w.name}/{c['name']}: CreateContainerConfigError: {exc}")
    assert not errors, "\n".join(errors)
    assert db_secret_refs(objects) <= set(found.secrets)


# -- the running cluster -------------------------------------------------------------------


def _ready(cluster: Cluster) -> Cluster:
    problems = wait_all_ready(cluster)
    assert not problems, "\n\n".join(f"{n}: {d}" for n, d in problems.items())
    return cluster


def test_every_deployment_and_statefulset_turns_ready_by_its_probes(cluster: Cluster) -> None:
    problems = wait_all_ready(cluster)
    assert not problems, "\n\n".join(f"{n}: {d}" for n, d in problems.items())
    kinds = {p.workload.kind for p in cluster.pods.values()}
    assert kinds == {"Deployment", "StatefulSet"}
    assert len(cluster.pods) >= 10  # 8 components + PostgreSQL + NATS
    for pod in cluster.pods.values():
        restarts = {s.name: s.restarts for s in pod.statuses.values() if s.restarts}
        assert not restarts, f"{pod.name} restarted: {restarts}\n{pod.describe()}"
    if cluster.hand_made:
        cluster.rows.append(Row(cluster.scenario, "(created by hand)", "-",
                                note=", ".join(cluster.hand_made)))  # fmt: skip
