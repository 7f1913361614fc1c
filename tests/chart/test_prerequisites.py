"""docs/kubernetes.md's "Prerequisites per environment" names what each values file needs: the
needs are read from what the values file renders (an HPA needs metrics-server, a Pods metric
prometheus-adapter, a ScaledObject KEDA, NetworkPolicies an enforcing CNI, ...)."""

from __future__ import annotations

import re

import helm_python
import pytest

from tests.chart.conftest import ROOT, Obj, by_kind, render, scenario_values

DOC = ROOT / "docs" / "kubernetes.md"
SECTIONS = {"default": "plain cluster", "minikube": "minikube", "eks": "EKS"}
# How each environment makes NetworkPolicies enforced.
ENFORCING_CNI = {"default": "CNI that enforces NetworkPolicies", "minikube": "--cni=calico",
                 "eks": "enableNetworkPolicy"}  # fmt: skip


def _section(environment: str) -> str:
    text = DOC.read_text()
    start = text.index("## Prerequisites per environment")
    end = text.index("\n## ", start + 1)
    body = text[start:end]
    match = re.search(rf"^### {re.escape(environment)}\b.*?(?=^### |\Z)", body, re.S | re.M)
    assert match, f"no '### {environment}' under Prerequisites per environment"
    return match.group(0)


def _needs(scenario: str, objects: list[Obj]) -> set[str]:
    """The phrases the prerequisites of ``scenario`` must contain, from what it renders."""
    values = scenario_values(scenario)
    needs: set[str] = set()
    if by_kind(objects, "NetworkPolicy"):
        needs.add(ENFORCING_CNI[scenario])
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    if hpas:
        needs.add("metrics-server")
    if any(m["type"] in ("Pods", "Object", "External") for h in hpas for m in h["spec"]["metrics"]):
        needs.add("prometheus-adapter")
    if by_kind(objects, "ScaledObject"):
        needs.add("KEDA")
    if by_kind(objects, "ServiceMonitor") or by_kind(objects, "PrometheusRule"):
        needs.add("kube-prometheus-stack")
    if by_kind(objects, "ExternalSecret"):
        needs.add("External Secrets Operator")
    for ingress in by_kind(objects, "Ingress"):
        if ingress["spec"]["ingressClassName"] == "alb":
            needs |= {"AWS Load Balancer Controller", "ACM certificate", "certificate-arn"}
        else:
            needs.add("ingress-nginx" if scenario != "minikube" else "ingress")
    for claim in by_kind(objects, "PersistentVolumeClaim"):
        if "ReadWriteMany" in claim["spec"]["accessModes"]:
            needs.add("ReadWriteMany")
    for statefulset in by_kind(objects, "StatefulSet"):
        for template in statefulset["spec"].get("volumeClaimTemplates", []):
            needs.add(template["spec"].get("storageClassName", "StorageClass"))
    repo = values.get("modelRepository", {})
    if repo.get("source") == "s3":
        needs.add("S3 bucket")
    if any(
        "eks.amazonaws.com/role-arn" in (a["metadata"].get("annotations") or {})
        for a in by_kind(objects, "ServiceAccount")
    ):
        needs.add("IRSA")
    if values.get("postgresql", {}).get("enabled") is False:
        needs.add("RDS")
    if values.get("nats", {}).get("enabled") is False:
        needs.add("NATS JetStream")
    return needs


@pytest.mark.parametrize("scenario", list(SECTIONS))
def test_the_docs_list_what_each_values_file_needs(scenario: str) -> None:
    objects = render(scenario_values(scenario))
    needs = _needs(scenario, objects)
    assert {"metrics-server"} <= needs
    section = _section(SECTIONS[scenario])
    missing = {need for need in needs if need not in section}
    assert not missing, f"docs/kubernetes.md, {SECTIONS[scenario]}: {sorted(missing)}"


def test_eks_needs_the_addons_its_values_use() -> None:
    """The EKS values render a KEDA ScaledObject and a Triton HPA on a custom metric."""
    needs = _needs("eks", render(scenario_values("eks")))
    assert {"KEDA", "prometheus-adapter", "enableNetworkPolicy", "IRSA"} <= needs


def test_the_alb_takes_an_acm_certificate_not_a_tls_secret() -> None:
    values = scenario_values("eks")
    assert "tlsSecretName" not in values["ingress"]
    annotations = values["ingress"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
    with pytest.raises(helm_python.HelmValuesError, match="tlsSecretName"):
        render({**values, "ingress": {**values["ingress"], "tlsSecretName": "modelfleet-tls"}})
    # With ingress-nginx the Secret is what terminates TLS.
    (ingress,) = by_kind(render({"ingress": {"tlsSecretName": "tls"}}), "Ingress")
    assert ingress["spec"]["tls"] == [{"secretName": "tls"}]
