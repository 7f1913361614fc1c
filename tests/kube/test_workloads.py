"""Every workload the chart renders for the default and minikube values, run for real.

The kubelet stand-in (tests/kube/kubelet.py) runs each pod spec in the images built from the
Dockerfile, in a pod network with the chart's Services and NetworkPolicies enforced; the
third-party images are the one substitution (tests/kube/substitutes.py). Users' requests go
through an ingress-controller peer pod in namespace ``ingress-nginx`` to the backend the
Ingress names (as ingress-nginx would send them); probes come from the node.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from fpdf import FPDF

from models.classifier.data import generate_catalogue
from services.backend.schemas import EXAMPLE_RIDE
from services.jobs.drift import alertmanager_notification
from tests.chart.conftest import render
from tests.kube.cluster import Cluster, Row, db_secret_refs, wait_all_ready
from tests.kube.conftest import SCENARIOS, values_for
from tests.kube.network import PodCallError
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


def test_helm_test_pod_passes(cluster: Cluster) -> None:
    _ready(cluster)
    result = cluster.run_job(cluster.workload("test", "Pod"), timeout_s=120)
    assert result.succeeded and result.exit_codes == [0], result.logs()


def test_a_ride_gets_its_worker_results_through_the_ingress(cluster: Cluster) -> None:
    _ready(cluster)
    ride = {**EXAMPLE_RIDE, "user_id": f"kube-{uuid.uuid4().hex[:8]}"}
    created = cluster.through_ingress("POST", "/v1/rides", ride)
    assert created.status == 201, created.text
    body = created.json()
    assert body["initial_duration"] is not None, body
    deadline = time.monotonic() + 60
    while True:
        got = cluster.through_ingress("GET", f"/v1/rides/{body['ride_id']}").json()
        kinds = {r["kind"] for r in got["results"]}
        if RESULT_KINDS <= kinds:
            break
        assert time.monotonic() < deadline, f"results after 60 s: {got['results']}"
        time.sleep(0.5)
    values = {r["kind"]: r for r in got["results"]}
    assert all(values[k] is not None for k in RESULT_KINDS), values


def test_classify_and_feedback_through_the_ingress(cluster: Cluster) -> None:
    _ready(cluster)
    products = generate_catalogue(12, seed=5)
    for _, row in products.iterrows():
        answer = cluster.through_ingress(
            "POST", "/v1/classify", {"title": row["title"], "description": row["description"]}
        )
        assert answer.status == 200, answer.text
        body = answer.json()
        assert body["category"], body
        feedback = cluster.through_ingress(
            "POST",
            "/v1/feedback",
            {"prediction_id": body["prediction_id"], "true_category": row["category_path"]},
        )
        assert feedback.status in (200, 201, 204), feedback.text
    assert int(cluster.sql("select count(*) from classifier_feedback")) >= len(products)


def test_ride_scoring_job_scores_the_rides(cluster: Cluster) -> None:
    _ready(cluster)
    # The job scores rides older than SCORE_RIDES_SETTLE_S (10 s): let the test's rides settle.
    age = float(cluster.sql("select extract(epoch from now() - max(created_at)) from rides"))
    time.sleep(max(0.0, 11.0 - age))
    result = cluster.run_job(cluster.workload("ride-scoring", "CronJob"), timeout_s=600)
    assert result.succeeded and result.exit_codes[-1] == 0, result.logs()
    assert int(cluster.sql("select count(*) from score_results")) > 0


def _pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def test_documents_ingest_job_then_a_chat_answer_cites_the_pdf(cluster: Cluster) -> None:
    _ready(cluster)
    folder: Path = cluster.claims.path("modelfleet-documents")
    (folder / "kube-kettle.pdf").write_bytes(
        _pdf("The Quorvex kettle manual.", "The Quorvex kettle boils one litre in 83 seconds.")
    )
    result = cluster.run_job(cluster.workload("documents-ingest", "CronJob"), timeout_s=600)
    assert result.succeeded and result.exit_codes[-1] == 0, result.logs()
    chunks = cluster.sql(
        "select count(*) from chunks c join documents d on d.id = c.document_id "
        "where d.source = 'pdf' and d.external_id like '%kube-kettle.pdf'"
    )
    assert int(chunks) > 0
    answer = cluster.through_ingress(
        "POST", "/v1/chat", {"question": "How fast does the Quorvex kettle boil one litre?"}
    )
    assert answer.status == 200, answer.text
    body = answer.json()
    assert "83 seconds" in body["answer"], body
    assert body["citations"] and body["citations"][0]["document"].endswith("kube-kettle.pdf")


def _classifier_versions(cluster: Cluster) -> set[int]:
    status, body = cluster.from_node(TRITON, 8000, "/v2/models/classifier")
    assert status == 200, body
    return {int(v) for v in json.loads(body)["versions"]}


def _classifier_version_ready(cluster: Cluster, version: int) -> bool:
    status, _ = cluster.from_node(TRITON, 8000, f"/v2/models/classifier/versions/{version}/ready")
    return status == 200


def test_retraining_job_template_adds_a_classifier_version(cluster: Cluster) -> None:
    _ready(cluster)
    before = max(_classifier_versions(cluster))
    result = cluster.run_job(cluster.workload("classifier-retrain", "Job"), timeout_s=900)
    assert result.succeeded and result.exit_codes[-1] == 0, result.logs()
    _wait_for_version(cluster, before + 1, result.logs())


def _wait_for_version(cluster: Cluster, version: int, logs: str) -> None:
    deadline = time.monotonic() + 60
    while not _classifier_version_ready(cluster, version):
        if time.monotonic() > deadline:
            registry = cluster.sql("select * from classifier_model_versions")
            raise AssertionError(
                f"classifier v{version} not ready in Triton: {_classifier_versions(cluster)}\n"
                f"registry: {registry}\n{logs}\n{cluster.pod(TRITON).logs(lines=30)}"
            )
        time.sleep(1)


def test_an_alert_starts_a_retraining_job_through_the_kubernetes_api(cluster: Cluster) -> None:
    """Alertmanager's peer -> POST /v1/alerts -> a Job created through the (fake) API over TLS
    with the projected token and CA -> run by the stand-in -> a new version, run succeeded."""
    _ready(cluster)
    before = max(_classifier_versions(cluster))
    notification = alertmanager_notification(model="classifier", version=str(before), f1=0.2)
    url = cluster.ingress_backend("/v1/classify")  # the classifier's Service
    answer = cluster.alertmanager.fetch(
        f"{url}/v1/alerts",
        method="POST",
        body=json.dumps(notification).encode(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status in (200, 202), answer.text
    deadline = time.monotonic() + 30
    while not cluster.apiserver.created_jobs():
        assert time.monotonic() < deadline, (
            f"no Job reached the API server: {answer.text}\n{cluster.apiserver.log_tail()}"
        )
        time.sleep(0.5)
    results = cluster.run_created_jobs(timeout_s=900)
    assert results and all(r.succeeded for r in results), [r.logs() for r in results]
    _wait_for_version(cluster, before + 1, "\n".join(r.logs() for r in results))
    runs = cluster.alertmanager.fetch(f"{url}/v1/retraining?limit=1", timeout=10).json()["runs"]
    assert runs and (runs[0]["reason"], runs[0]["status"]) == ("alert", "succeeded"), runs


def test_no_container_writes_outside_its_volumes(cluster: Cluster) -> None:
    _ready(cluster)
    checked = 0
    for pod in cluster.pods.values():
        for status in pod.statuses.values():
            if status.init or status.substitute is not None:
                continue
            done = pod.exec(status.name, ["sh", "-c", "touch /standin-write-check"])
            assert done.returncode != 0, f"{pod.name}/{status.name} wrote to its root"
            assert b"Read-only file system" in done.stderr, done.stderr
            done = pod.exec(status.name, ["sh", "-c", "touch /tmp/standin-write-check"])
            assert done.returncode == 0, f"{pod.name}/{status.name}: {done.stderr!r}"
            checked += 1
    assert checked >= 7  # every Deployment but Triton's (a substitute)


def test_network_policies_deny_what_they_do_not_allow(cluster: Cluster) -> None:
    _ready(cluster)
    backend = cluster.pod("backend").net
    worker = cluster.pod("worker-tip").net
    triton, chatbot = "mf-modelfleet-triton", "mf-modelfleet-chatbot"
    assert backend.can_connect("mf-modelfleet-ride-duration", 8000)  # allowed: a dependency
    assert not backend.can_connect(triton, 8001), "backend reached Triton's gRPC port"
    assert not worker.can_connect(chatbot, 8000), "a worker reached the chatbot"
    with pytest.raises(PodCallError):
        worker.connect(chatbot, 8000, timeout=1)
