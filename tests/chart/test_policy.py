"""Policy over the rendered objects: what every workload and every service must have."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from tests.chart.conftest import (
    CHART,
    Obj,
    by_kind,
    component,
    job_specs,
    render,
    scenario_values,
)

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def _pod_specs(objects: list[Obj]) -> list[tuple[str, Obj]]:
    specs = [(component(o), o["spec"]["template"]["spec"]) for o in objects
             if o["kind"] in ("Deployment", "StatefulSet")]  # fmt: skip
    specs += [(component(o), o["spec"]) for o in by_kind(objects, "Pod")]
    specs += [(name, job["template"]["spec"]) for name, job in job_specs(objects)]
    return specs


def _components(objects: list[Obj], kind: str = "Deployment") -> set[str]:
    return {component(o) for o in by_kind(objects, kind)}


def test_every_container_has_resources_and_a_locked_down_security_context(
    objects: list[Obj],
) -> None:
    for name, spec in _pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert {"cpu", "memory"} <= set(resources["limits"]), where
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert ":latest" not in container["image"] and ":" in container["image"], where


def test_every_deployment_has_probes_tmp_and_topology_spread(objects: list[Obj]) -> None:
    for deployment in by_kind(objects, "Deployment"):
        name = component(deployment)
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert "livenessProbe" in container and "readinessProbe" in container, name
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts, name
        assert spec["topologySpreadConstraints"], name
        for constraint in spec["topologySpreadConstraints"]:
            selector = constraint["labelSelector"]["matchLabels"]
            assert selector["app.kubernetes.io/component"] == name


def test_service_probes_are_healthz_and_readyz(objects: list[Obj]) -> None:
    for deployment in by_kind(objects, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if component(deployment) == "triton":
            ready = container["readinessProbe"]["httpGet"]["path"]
            assert ready == "/v2/models/ride_duration/ready"  # per model, not /v2/health/ready
            continue
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_each_component_has_service_hpa_pdb_monitor_policy(
    scenario: str, objects: list[Obj]
) -> None:
    deployments = _components(objects)
    assert {"ride-duration", "triton"} <= deployments
    for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"):
        assert deployments <= _components(objects, kind), kind
    # One Triton pod on the emptyDir repository; EKS scales S3-synced copies.
    autoscaled = deployments - ({"triton"} if scenario != "eks" else set())
    scalers = _components(objects, "HorizontalPodAutoscaler") | _components(objects, "ScaledObject")
    assert autoscaled <= scalers
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_each_http_service_has_an_ingress_path(objects: list[Obj]) -> None:
    ingress = by_kind(objects, "Ingress")[0]
    backends = {
        p["backend"]["service"]["name"] for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }  # fmt: skip
    # Every HTTP service; Triton is internal, the streaming workers take no requests, and the
    # city's APIs are called by the backend and the sensor-duration worker only.
    internal = {"triton", "location", "sensor"}
    services = {
        d["metadata"]["name"]
        for d in by_kind(objects, "Deployment")
        if component(d) not in internal and not component(d).startswith("worker-")
    }
    assert {"mf-modelfleet-ride-duration", "mf-modelfleet-backend"} <= services <= backends


def test_servicemonitors_carry_the_release_label(scenario: str, objects: list[Obj]) -> None:
    release = (
        scenario_values(scenario).get("monitoring", {}).get("release", "kube-prometheus-stack")
    )
    for obj in by_kind(objects, "ServiceMonitor") + by_kind(objects, "PrometheusRule"):
        assert obj["metadata"]["labels"]["release"] == release
    for monitor in by_kind(objects, "ServiceMonitor"):
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"


def test_network_policies_default_deny_and_only_declared_egress(
    scenario: str, objects: list[Obj]
) -> None:
    policies = {component(p): p for p in by_kind(objects, "NetworkPolicy")}
    deny = policies["default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    ride = policies["ride-duration"]["spec"]
    targets = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in ride["egress"] for peer in rule.get("to", [])
        if "matchLabels" in peer.get("podSelector", {})
        and "app.kubernetes.io/component" in peer["podSelector"]["matchLabels"]
    }  # fmt: skip
    # EKS: RDS and the NATS cluster are reached through networkPolicy.externalEgress.
    assert targets == ({"triton"} if scenario == "eks" else {"triton", "postgresql"})
    backend = policies["backend"]["spec"]
    backend_targets = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in backend["egress"] for peer in rule.get("to", [])
        if "app.kubernetes.io/component" in peer.get("podSelector", {}).get("matchLabels", {})
    }  # fmt: skip
    if scenario == "eks":
        assert backend_targets == {"ride-duration", "location", "sensor"}
    else:
        assert backend_targets == {"ride-duration", "location", "sensor", "postgresql", "nats"}
    triton = policies["triton"]["spec"]["egress"]
    if scenario == "eks":  # copies its model repository from S3 at start
        assert triton[1:] == [{"ports": [{"port": 443, "protocol": "TCP"}]}]
    else:
        assert len(triton) == 1, "Triton calls nothing but DNS"


def test_no_secret_values_in_config_maps(objects: list[Obj]) -> None:
    # MAX_TOKENS (an LLM's token limit) is a number, not a credential.
    suspicious = re.compile(r"(PASSWORD|SECRET|(?<!MAX_)TOKEN|API_KEY)", re.IGNORECASE)
    for config_map in by_kind(objects, "ConfigMap"):
        if config_map["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring":
            continue  # dashboards
        for key, value in (config_map.get("data") or {}).items():
            assert not suspicious.search(key), key
            assert not re.search(r"://[^/@:]+:[^/@]+@", value), f"{key} carries a password"
    # The only Secret is the generated database password (tests/chart/test_plain_cluster.py).
    assert [s["metadata"]["name"] for s in by_kind(objects, "Secret")] in (
        [],
        ["mf-modelfleet-database"],
    )


def test_password_comes_from_the_database_secret(scenario: str, objects: list[Obj]) -> None:
    secret = (
        scenario_values(scenario).get("postgresql", {}).get("auth", {}).get("existingSecret")
        or "mf-modelfleet-database"
    )
    deployment = next(d for d in by_kind(objects, "Deployment") if component(d) == "ride-duration")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret


def _settings_names() -> set[str]:
    """Environment names the services' settings classes read, from the classes themselves.

    Every ``services/<name>/settings.py`` class with an ``env_prefix`` reads ``PREFIX + FIELD``
    for each of its fields (inherited ones too: ``ServiceSettings``, ``ModelServiceSettings``,
    ``EmbeddingSettings``), or the field's own names where it declares ``AliasChoices``. So do
    the jobs' settings classes: a job reads its component's ConfigMap (classifier-retrain the
    classifier's).
    """
    names: set[str] = set()
    modules = [
        f"services.{p.parent.name}.settings" for p in sorted(SERVICES_DIR.glob("*/settings.py"))
    ]
    modules += [
        "services.jobs.classifier_retrain",
        "services.jobs.ingest",
        "services.jobs.scoring.settings",
    ]
    for module_name in modules:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if not (isinstance(value, type) and issubclass(value, BaseSettings)):
                continue
            prefix = value.model_config.get("env_prefix") or ""
            if not prefix:
                continue
            for field_name, field in value.model_fields.items():
                alias = field.validation_alias
                if isinstance(alias, AliasChoices):
                    names.update(str(choice) for choice in alias.choices)
                else:
                    names.add(prefix + field_name.upper())
    return names


def test_config_map_names_are_the_settings_classes_names(objects: list[Obj]) -> None:
    known = _settings_names()
    checked = 0
    for config_map in by_kind(objects, "ConfigMap"):
        if component(config_map) in ("triton", "monitoring", "classifier-retrain"):
            continue
        checked += 1
        keys = set(config_map["data"])
        assert {"DATABASE_URL", "NATS_URL", "TRITON_GRPC_URL"} <= keys
        assert keys <= known, keys - known
    assert checked == 10


WITH_CRONJOBS = {"cronJobs": {"classifier-retrain": {"enabled": True}}}


def _job_creators(objects: list[Obj]) -> set[str]:
    """ServiceAccounts bound (Role/ClusterRole bindings) to a rule that may create Jobs."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects
             if o["kind"] in ("Role", "ClusterRole")}  # fmt: skip
    creators: set[str] = set()
    for binding in by_kind(objects, "RoleBinding") + by_kind(objects, "ClusterRoleBinding"):
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], ref["name"]))
        assert role is not None, f"binding {binding['metadata']['name']} to a missing role"
        may_create = any(
            {"batch", "*"} & set(rule.get("apiGroups", []))
            and {"jobs", "*"} & set(rule.get("resources", []))
            and {"create", "*"} & set(rule.get("verbs", []))
            for rule in role.get("rules", [])
        )
        if may_create:
            creators |= {s["name"] for s in binding["subjects"] if s["kind"] == "ServiceAccount"}
    return creators


def test_only_the_classifier_account_can_create_jobs(objects: list[Obj]) -> None:
    for rendered in (objects, render(WITH_CRONJOBS)):
        assert _job_creators(rendered) == {"mf-modelfleet-classifier"}
        assert not by_kind(rendered, "ClusterRole") and not by_kind(rendered, "ClusterRoleBinding")
        (role,) = by_kind(rendered, "Role")
        assert role["rules"] == [  # exactly its calls: tests/chart/test_rbac_from_code.py
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
            {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]},
        ]
        (binding,) = by_kind(rendered, "RoleBinding")
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "mf-modelfleet-classifier",
                "namespace": "modelfleet",
            }
        ]
        for account in by_kind(rendered, "ServiceAccount"):
            assert account["automountServiceAccountToken"] is False
    assert _job_creators(render({"classifierRetrain": {"enabled": False}})) == set()


def test_cronjobs_are_locked_down_like_the_deployments() -> None:
    objects = render(WITH_CRONJOBS)
    (cron,) = by_kind(objects, "CronJob")
    assert component(cron) == "classifier-retrain"
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["schedule"] == "40 2-22/4 * * *"
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 3
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 1
    pod = job["template"]["spec"]
    classifier = next(d for d in by_kind(objects, "Deployment") if component(d) == "classifier")
    deployment_pod = classifier["spec"]["template"]["spec"]
    assert pod["securityContext"] == deployment_pod["securityContext"]
    assert pod["serviceAccountName"] == deployment_pod["serviceAccountName"]
    (container,) = pod["containers"]
    assert container["command"] == ["modelfleet", "train", "classifier"]
    # Training needs the model-builder image (tests/chart/test_job_images.py).
    assert container["image"] == "modelfleet-model-builder:0.1.0"
    assert container["envFrom"] == deployment_pod["containers"][0]["envFrom"]
    assert container["securityContext"] == deployment_pod["containers"][0]["securityContext"]
    # Policy checks of every pod (resources, non-root, read-only root FS, drop ALL).
    test_every_container_has_resources_and_a_locked_down_security_context(objects)
    # Job pods reach exactly the classifier's dependencies, and those accept them.
    policies = {component(p): p for p in by_kind(objects, "NetworkPolicy")}
    targets = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in policies["classifier-retrain"]["spec"]["egress"] for peer in rule.get("to", [])
        if "app.kubernetes.io/component" in peer.get("podSelector", {}).get("matchLabels", {})
    }  # fmt: skip
    assert targets == {"triton", "postgresql"}
    assert "ingress" not in policies["classifier-retrain"]["spec"]
    for target in targets:
        peers = [
            peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
            for rule in policies[target]["spec"]["ingress"] for peer in rule["from"]
            if "podSelector" in peer
        ]  # fmt: skip
        assert "classifier-retrain" in peers, target


def test_retraining_shares_the_persistent_model_repository_with_triton() -> None:
    claim = {"modelRepository": {"volume": {"type": "persistentVolumeClaim",
                                            "existingClaim": "models"}}}  # fmt: skip
    objects = render({**WITH_CRONJOBS, **claim})
    triton = next(d for d in by_kind(objects, "Deployment") if component(d) == "triton")
    triton_volume = next(
        v for v in triton["spec"]["template"]["spec"]["volumes"] if v["name"] == "models"
    )
    specs = job_specs(objects)
    assert len(specs) == 2  # the CronJob and the Job template
    for _, job in specs:
        pod = job["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "models")
        assert volume["persistentVolumeClaim"] == triton_volume["persistentVolumeClaim"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert mounts["models"] == f"{env['MODELFLEET_HOME']}/model-repository"


def test_helm_test_pod_calls_every_readyz(objects: list[Obj]) -> None:
    pod = by_kind(objects, "Pod")[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = [a for a in pod["spec"]["containers"][0]["command"] if a.startswith("http://")]
    services = [d["metadata"]["name"] for d in by_kind(objects, "Deployment")]
    for name in services:
        assert any(f"//{name}:8000/" in u for u in urls), name
    assert any(u.endswith("/v2/models/ride_duration/ready") for u in urls)


def test_triton_serves_the_repository_the_init_container_fills(
    scenario: str, objects: list[Obj]
) -> None:
    triton = next(d for d in by_kind(objects, "Deployment") if component(d) == "triton")
    spec = triton["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    if scenario == "eks":  # copied from S3 with IRSA credentials
        assert init["command"][:3] == ["aws", "s3", "sync"]
        assert init["args"] == ["s3://modelfleet-models-123456789012/model-repository", "/models"]
        account = next(a for a in by_kind(objects, "ServiceAccount") if component(a) == "triton")
        assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    else:  # trained by the model-builder image
        assert init["args"][:2] == ["--repo", "/models"]
    assert "/models" in {m["mountPath"] for m in init["volumeMounts"]}
    server = spec["containers"][0]
    assert server["image"].startswith("nvcr.io/nvidia/tritonserver:24.10-py3")
    assert "--model-repository=/models" in server["args"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}


# Blocks whose keys are Kubernetes fields or settings names, documented by their parent's comment.
SELF_EXPLAINING = {
    "resources", "podSecurityContext", "securityContext", "settings", "requests", "limits",
    "capabilities", "seccompProfile", "ingressFrom", "prometheusFrom", "operatorFrom",
    "topologySpreadConstraints", "command", "args", "annotations",
}  # fmt: skip


def test_every_values_key_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents: list[tuple[int, str]] = []
    uncommented = []
    for index, line in enumerate(lines):
        match = re.match(r"^( *)(- )?([A-Za-z0-9_.\-/]+):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while parents and parents[-1][0] >= indent:
            parents.pop()
        inside = {name for _, name in parents}
        parents.append((indent, match.group(3)))
        if match.group(2) or inside & SELF_EXPLAINING:
            continue
        above = index - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        if not lines[above].lstrip().startswith("#"):
            uncommented.append(f"{index + 1}: {line.strip()}")
    assert uncommented == []


def test_keda_scales_each_worker_on_its_consumer_lag() -> None:
    objects = render({"keda": {"enabled": True}})
    scaled = {component(o): o for o in by_kind(objects, "ScaledObject")}
    assert set(scaled) == {
        "worker-tip",
        "worker-cost",
        "worker-dynamic-duration",
        "worker-sensor-duration",
    }
    hpas = _components(objects, "HorizontalPodAutoscaler")
    assert not hpas & set(scaled), "KEDA owns the workers' HPAs"
    for name, scaled_object in scaled.items():
        lag = next(t for t in scaled_object["spec"]["triggers"] if t["type"] == "nats-jetstream")
        assert lag["metadata"]["stream"] == "RIDES"
        assert lag["metadata"]["consumer"] == name.removeprefix("worker-")
        assert lag["metadata"]["natsServerMonitoringEndpoint"] == (
            "mf-modelfleet-nats.modelfleet.svc.cluster.local:8222"
        )
    nats = next(p for p in by_kind(objects, "NetworkPolicy") if component(p) == "nats")
    assert any(
        port["port"] == 8222 for rule in nats["spec"]["ingress"] for port in rule["ports"]
    ), "KEDA may read the consumer lag"
