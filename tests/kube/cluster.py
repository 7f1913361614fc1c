"""One scenario of the chart run for real by the kubelet stand-in: network, API, pods, jobs.

``start_cluster`` renders the chart with a scenario's values (tests/chart/conftest.py), builds
the pod network (tests/kube/network.py) with the rendered Services and NetworkPolicies, starts
the fake API server behind the ``kubernetes`` Service (tests/kube/apiserver.py), an
ingress-controller peer pod in namespace ``ingress-nginx`` (the tests' clients: what a user
reaches through the Ingress goes through it, to the Service the Ingress names), then every
Deployment and StatefulSet pod at once, as a cluster would, and waits for each to turn Ready by
its own probes. Jobs (the CronJobs' jobTemplates, the retraining Job template, the Jobs the
classifier creates through the API) run with ``run_job``; the figures go to ``rows``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chart.conftest import NAMESPACE, render
from tests.kube.apiserver import ApiServerProcess, job_status
from tests.kube.kubelet import JobResult, Kubelet, LocalImage, PodRun, Substitute
from tests.kube.network import ClusterNetwork, HttpResult, PodNet
from tests.kube.podspec import ClusterObjects, ErrImagePull, Workload, workloads
from tests.kube.substitutes import NatsSubstitute, PostgresSubstitute, TritonSubstitute
from tests.kube.volumes import ClaimStore

Obj = dict[str, Any]
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
READY_TIMEOUT_S = 900.0
CRASH_LOOP_RESTARTS = 5


@dataclass
class Row:
    """One line of the summary table."""

    scenario: str
    workload: str
    kind: str
    ready_s: float | None = None
    exit_codes: list[int] = field(default_factory=list)
    note: str = ""


def repository(ref: str) -> str:
    """An image reference without its tag or digest."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


class ImageCatalog:
    """The chart's image references -> the built images or the substitutes (else ErrImagePull)."""

    def __init__(self, *, service: LocalImage, model_builder: LocalImage) -> None:
        self.local = {"modelfleet": service, "modelfleet-model-builder": model_builder}
        self.substitutes: dict[str, Substitute] = {
            "nvcr.io/nvidia/tritonserver": TritonSubstitute(),
            "pgvector/pgvector": PostgresSubstitute(),
            "nats": NatsSubstitute(),
        }

    def __call__(self, ref: str) -> LocalImage | Substitute:
        repo = repository(ref)
        if repo in self.substitutes:
            return self.substitutes[repo]
        local = self.local.get(repo.rsplit("/", 1)[-1])
        if local is None:
            raise ErrImagePull(f"image {ref}: no registry can be reached and no such local image")
        return local


@dataclass
class Cluster:
    scenario: str
    objects: list[Obj]
    workloads: list[Workload]
    network: ClusterNetwork
    kubelet: Kubelet
    apiserver: ApiServerProcess
    ingress: PodNet
    alertmanager: PodNet
    claims: ClaimStore
    pods: dict[str, PodRun]
    rows: list[Row]
    hand_made: list[str]
    ready_problems: dict[str, str] | None = None

    def workload(self, component: str, kind: str | None = None) -> Workload:
        found = [w for w in self.workloads
                 if w.component == component and (kind is None or w.kind == kind)]  # fmt: skip
        assert found, f"{self.scenario}: no workload of component {component} ({kind})"
        return found[0]

    def pod(self, component: str) -> PodRun:
        for pod in self.pods.values():
            if pod.workload.component == component:
                return pod
        raise AssertionError(f"{self.scenario}: no running pod of component {component}")

    def by_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def service_port(self, service: str, port: str | int) -> int:
        for svc in self.by_kind("Service"):
            if svc["metadata"]["name"] == service:
                for p in svc["spec"]["ports"]:
                    if port in (p.get("name"), p["port"]):
                        return int(p["port"])
        raise AssertionError(f"no port {port} on Service {service}")

    def ingress_backend(self, path: str) -> str:
        """``http://<service>.<ns>.svc.cluster.local:<port>`` the Ingress routes ``path`` to."""
        best: tuple[int, str] | None = None
        for ing in self.by_kind("Ingress"):
            for rule in ing["spec"].get("rules") or []:
                for p in rule["http"]["paths"]:
                    prefix = p["path"].rstrip("/")
                    if path == prefix or path.startswith((prefix + "/", prefix + "?")):
                        svc = p["backend"]["service"]
                        port = svc["port"].get("name") or svc["port"]["number"]
                        url = (f"http://{svc['name']}.{NAMESPACE}.svc.cluster.local:"
                               f"{self.service_port(svc['name'], port)}")  # fmt: skip
                        if best is None or len(prefix) > best[0]:
                            best = (len(prefix), url)
        assert best is not None, f"{self.scenario}: the Ingress routes no path {path}"
        return best[1]

    def through_ingress(
        self, method: str, path: str, body: Any = None, *, timeout: float = 30.0
    ) -> HttpResult:
        """A request as a user sends it: the ingress controller's pod to the Ingress backend."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        url = self.ingress_backend(path) + path
        return self.ingress.fetch(url, method=method, body=data, headers=headers, timeout=timeout)

    def sql(self, query: str) -> str:
        """``psql -tA`` in the PostgreSQL pod, over TCP with the password (kubectl exec)."""
        pod = self.pod("postgresql")
        env = pod.container("postgresql").rt.env
        done = pod.exec("postgresql", ["psql", "-h", "127.0.0.1", "-U", env["POSTGRES_USER"],
                                       "-d", env["POSTGRES_DB"], "-tAc", query],
                        env={"PGPASSWORD": env["POSTGRES_PASSWORD"]})  # fmt: skip
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode().strip()

    def from_node(self, component: str, port: int, path: str) -> tuple[int, bytes]:
        """GET from the node to a pod (as kubectl port-forward does)."""
        pod = self.pod(component)
        conn = http.client.HTTPConnection(pod.net.ip, port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def run_job(self, workload: Workload, *, timeout_s: float = 900.0) -> JobResult:
        result = self.kubelet.run_job(workload, timeout_s=timeout_s)
        self.rows.append(Row(self.scenario, workload.name, workload.kind,
                             exit_codes=result.exit_codes,
                             note=f"{result.reason}, {result.duration_s:.0f} s"))  # fmt: skip
        return result

    def run_created_jobs(self, *, timeout_s: float = 900.0) -> list[JobResult]:
        """The Job controller for Jobs POSTed to the fake API: run each once, report status."""
        results = []
        for job in self.apiserver.created_jobs():
            meta = job["metadata"]
            if meta["name"] in self.kubelet.jobs_run:
                continue
            self.kubelet.jobs_run.add(meta["name"])
            template = job["spec"]["template"]
            workload = Workload(kind="Job", name=meta["name"],
                                labels=dict((template.get("metadata") or {}).get("labels") or {}),
                                pod_spec=template["spec"], job_spec=job["spec"])  # fmt: skip
            result = self.run_job(workload, timeout_s=timeout_s)
            self.apiserver.set_status(meta["namespace"], meta["name"],
                                      job_status(result.succeeded, result.reason))  # fmt: skip
            results.append(result)
        return results


def deep_merge(base: Obj, extra: Obj) -> Obj:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def db_secret_refs(objects: list[Obj]) -> set[str]:
    """Names of the Secrets the pods read the database password from."""
    names: set[str] = set()
    for w in workloads(objects):
        for c in w.pod_spec.get("containers", []) + w.pod_spec.get("initContainers", []):
            for var in c.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref and var["name"] in ("PGPASSWORD", "POSTGRES_PASSWORD"):
                    names.add(ref["name"])
    return names


@contextlib.contextmanager
def start_cluster(
    *,
    scenario: str,
    values: Obj,
    catalog: Callable[[str], LocalImage | Substitute],
    state_dir: Path,
    rows: list[Row],
) -> Iterator[Cluster]:
    """A running scenario (see the module docstring); everything is torn down on exit."""
    objects = render(values)
    cluster_objects = ClusterObjects.from_rendered(objects, namespace=NAMESPACE)
    hand_made: list[str] = []
    # What a user would still create by hand on a chart that renders no DB Secret (defect 3):
    # only then, so the rest can run; test_bare_install_* reports the defect itself.
    for name in sorted(db_secret_refs(objects) - set(cluster_objects.secrets)):
        cluster_objects.add({"kind": "Secret", "metadata": {"name": name},
                             "stringData": {"password": "hand-made-by-the-test"}})  # fmt: skip
        hand_made.append(f"Secret/{name}")
    state_dir.mkdir(parents=True, exist_ok=True)
    claims = ClaimStore(state_dir / "claims")
    with ClusterNetwork(default_namespace=NAMESPACE) as network:
        apiserver = ApiServerProcess(network=network, folder=state_dir / "apiserver")
        services = [o for o in objects if o["kind"] == "Service"] + [apiserver.service()]
        network.set_services(services)
        network.label_namespace(INGRESS_NAMESPACE, {})
        network.label_namespace(MONITORING_NAMESPACE, {})
        network.apply_network_policies([o for o in objects if o["kind"] == "NetworkPolicy"])
        api_ip = network.service_ip("kubernetes", "default")
        apiserver.start(api_ip)
        assert apiserver.ca is not None
        cluster_objects.add({"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"},
                             "data": {"ca.crt": apiserver.ca.read_text()}})  # fmt: skip
        ingress = network.add_pod("ingress-nginx-controller", INGRESS_NAMESPACE,
                                  {"app.kubernetes.io/name": "ingress-nginx"})  # fmt: skip
        # Alertmanager's peer (kube-prometheus-stack's namespace): it calls /v1/alerts.
        alertmanager = network.add_pod("alertmanager-0", MONITORING_NAMESPACE,
                                       {"app.kubernetes.io/name": "alertmanager"})  # fmt: skip
        kubelet = Kubelet(
            network=network, objects=cluster_objects, images=catalog, claims=claims,
            state_dir=state_dir,
            injected_env={"KUBERNETES_SERVICE_HOST": api_ip, "KUBERNETES_SERVICE_PORT": "443",
                          "KUBERNETES_SERVICE_PORT_HTTPS": "443",
                          "KUBERNETES_PORT": f"tcp://{api_ip}:443"},
        )  # fmt: skip
        found = workloads(objects)
        long_running = [w for w in found if w.kind in ("Deployment", "StatefulSet")]
        pods = {w.name: kubelet.start_pod(w) for w in long_running}
        cluster = Cluster(scenario=scenario, objects=objects, workloads=found, network=network,
                          kubelet=kubelet, apiserver=apiserver, ingress=ingress,
                          alertmanager=alertmanager, claims=claims,
                          pods=pods, rows=rows, hand_made=hand_made)  # fmt: skip
        try:
            yield cluster
        finally:
            kubelet.stop_all()
            apiserver.stop()
    shutil.rmtree(state_dir / "pods", ignore_errors=True)


def wait_all_ready(cluster: Cluster, *, timeout_s: float = READY_TIMEOUT_S) -> dict[str, str]:
    """Wait until every long-running pod is Ready or failed; the ones that are not, and why.

    Waits once per cluster: later calls return the first answer (a broken scenario fails each
    test at once instead of waiting the timeout again)."""
    if cluster.ready_problems is not None:
        return cluster.ready_problems
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = [p for p in cluster.pods.values() if not p.ready and not p.finished]
        if not pending:
            break
        # A pod failed, or one crash-loops past the delays a start-up race explains: report
        # now (a cluster would keep retrying; the test would only wait longer for the same).
        if any(p.finished for p in cluster.pods.values()) or any(
            s.restarts >= CRASH_LOOP_RESTARTS for p in pending for s in p.statuses.values()
        ):
            break
        time.sleep(0.5)
    problems = {}
    for name, pod in cluster.pods.items():
        if not any(r.workload == name and r.scenario == cluster.scenario for r in cluster.rows):
            note = "" if pod.ready else f"{pod.phase} {pod.reason}"
            for s in pod.statuses.values():
                if s.init and s.started_at is not None and s.finished_at is not None:
                    note += f" init {s.name} {s.finished_at - s.started_at:.0f} s"
            row = Row(
                cluster.scenario, name, pod.workload.kind, ready_s=pod.ready_after_s, note=note
            )
            cluster.rows.append(row)
        if not pod.ready:
            problems[name] = pod.describe()
    cluster.ready_problems = problems
    return problems
