"""The Prometheus scrape jobs the chart's rendered ServiceMonitors give, aimed at local processes.

tests/chart/test_dashboards_live.py runs a real Prometheus against the local stack (one process
per component on a free port). To scrape it with the labels a cluster's Prometheus would give,
its scrape configuration is derived from the rendered chart, the way the Prometheus Operator
derives one from a ServiceMonitor (role ``endpoints``):

- the Services a ServiceMonitor selects: ``selector`` (matchLabels, matchExpressions) against
  the Services' labels, in the namespaces of ``namespaceSelector`` (none: its own namespace);
- per endpoint, its ``port`` is a Service port name; that port's ``targetPort`` is a container
  port of the pods the Service selects (the rendered Deployments/StatefulSets/DaemonSets); the
  local process of that component and container port is the static target;
- one scrape job per ServiceMonitor endpoint (``serviceMonitor/<namespace>/<name>/<index>``)
  with its ``path`` (default /metrics), ``scheme``, ``interval``, ``scrapeTimeout``, ``params``,
  ``honorLabels``, ``relabelings`` and ``metricRelabelings``;
- the target's labels come from the operator's own relabelings over the ``__meta_kubernetes_*``
  labels that service discovery would give (namespace, service, container, endpoint,
  ``targetLabels``, ``podTargetLabels``, and job: the Service name, or the Service's
  ``jobLabel`` label when it has one), then the ServiceMonitor's relabelings. There is no pod
  here, so the ``pod`` label stays unset.

What a real cluster would silently scrape nothing for is a ``ScrapeConfigError``: a
ServiceMonitor that selects no Service, a port name the Service does not have, a Service
selecting no pods or a targetPort no container declares, a component/port the local stack does
not run, and a ServiceMonitor field this translation does not know (so a new field is never
ignored). A pod port scraped by two jobs (duplicate series) is one too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.stack.registry import SERVICES
from services.stack.settings import StackSettings

Obj = dict[str, Any]

COMPONENT_LABEL = "app.kubernetes.io/component"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
#: ServiceMonitor spec fields translated below (anything else is an error).
SPEC_FIELDS = frozenset(
    {
        "endpoints",
        "jobLabel",
        "namespaceSelector",
        "podTargetLabels",
        "sampleLimit",
        "selector",
        "targetLabels",
        "targetLimit",
    }
)
#: ServiceMonitor endpoint fields translated below (anything else is an error).
ENDPOINT_FIELDS = frozenset(
    {
        "honorLabels",
        "honorTimestamps",
        "interval",
        "metricRelabelings",
        "params",
        "path",
        "port",
        "relabelings",
        "scheme",
        "scrapeTimeout",
    }
)
#: RelabelConfig fields (monitoring.coreos.com/v1) and their Prometheus names.
RELABEL_FIELDS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


class ScrapeConfigError(AssertionError):
    """The rendered ServiceMonitors would scrape nothing (or scrape twice) somewhere."""


@dataclass(frozen=True)
class _Port:
    """A Service port resolved to a container port of the pods the Service selects."""

    workload: str  # kind/name
    component: str  # the pod template's app.kubernetes.io/component
    container: str
    name: str  # the container port's name
    pod_labels: Mapping[str, str]


def stack_ports(settings: StackSettings, components: Iterable[str]) -> dict[tuple[str, str], int]:
    """(chart component, container port name) -> local port, for the components the local stack
    runs (`running_stack` names: "postgres" is the chart's "postgresql")."""
    running = set(components)
    ports: dict[tuple[str, str], int] = {}
    if "postgres" in running:
        ports["postgresql", "postgresql"] = settings.postgres_port
    if "nats" in running:
        ports["nats", "client"] = settings.nats_port
        ports["nats", "monitor"] = settings.nats_monitor_port
    if "triton" in running:
        ports["triton", "grpc"] = settings.triton_grpc_port
        ports["triton", "http"] = settings.triton_http_port
        ports["triton", "metrics"] = settings.triton_metrics_port
    for spec in SERVICES:
        if spec.name in running:
            port = getattr(settings, spec.port_setting)
            assert isinstance(port, int), spec.port_setting
            ports[spec.name, "http"] = port
    return ports


def sanitize(name: str) -> str:
    """A Kubernetes label name as service discovery turns it into a Prometheus label name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _namespace(obj: Obj, default: str) -> str:
    return str(obj["metadata"].get("namespace") or default)


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels, matchExpressions) against `labels`."""
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ScrapeConfigError(f"selector fields not translated: {sorted(unknown)}")
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ScrapeConfigError(f"selector operator {operator!r} is not a label operator")
    return True


def _relabel(rules: list[Obj], where: str) -> list[Obj]:
    translated: list[Obj] = []
    for rule in rules:
        unknown = set(rule) - set(RELABEL_FIELDS)
        if unknown:
            raise ScrapeConfigError(f"{where}: relabel fields not translated: {sorted(unknown)}")
        config = {RELABEL_FIELDS[key]: value for key, value in rule.items()}
        if "action" in config:
            config["action"] = str(config["action"]).lower()  # the operator lowercases it
        translated.append(config)
    return translated


def _service_ports(service: Obj, name: str, objects: list[Obj], namespace: str) -> list[_Port]:
    """The container ports behind the Service port `name` (one per selected workload)."""
    service_name = service["metadata"]["name"]
    port = next((p for p in service["spec"].get("ports") or [] if p.get("name") == name), None)
    if port is None:
        names = [p.get("name") for p in service["spec"].get("ports") or []]
        raise ScrapeConfigError(f"Service {service_name} has no port named {name!r} ({names})")
    target = port.get("targetPort", port["port"])
    selector = service["spec"].get("selector") or {}
    if not selector:
        raise ScrapeConfigError(f"Service {service_name} has no selector: no Endpoints")
    resolved: list[_Port] = []
    for workload in objects:
        if workload["kind"] not in WORKLOAD_KINDS or _namespace(workload, namespace) != namespace:
            continue
        template = workload["spec"]["template"]
        labels = template["metadata"].get("labels") or {}
        if not matches({"matchLabels": selector}, labels):
            continue
        found = [
            (container["name"], container_port)
            for container in template["spec"]["containers"]
            for container_port in container.get("ports") or []
            if container_port.get("name" if isinstance(target, str) else "containerPort") == target
        ]
        kind_name = f"{workload['kind']}/{workload['metadata']['name']}"
        if not found:
            raise ScrapeConfigError(
                f"Service {service_name} port {name!r}: targetPort {target!r} is no container "
                f"port of {kind_name}"
            )
        for container, container_port in found:
            if "name" not in container_port:
                raise ScrapeConfigError(f"{kind_name}: container port {target} has no name")
            resolved.append(
                _Port(kind_name, labels.get(COMPONENT_LABEL, ""), container,
                      container_port["name"], labels)
            )  # fmt: skip
    if not resolved:
        raise ScrapeConfigError(f"Service {service_name} selects no rendered pods ({selector})")
    return resolved


def _operator_relabelings(spec: Obj, endpoint: Obj) -> list[Obj]:
    """The relabelings the Prometheus Operator puts before a ServiceMonitor's own."""
    rules: list[Obj] = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
    ]
    for label in spec.get("targetLabels") or []:
        rules.append(
            {"source_labels": [f"__meta_kubernetes_service_label_{sanitize(label)}"],
             "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"}
        )  # fmt: skip
    for label in spec.get("podTargetLabels") or []:
        rules.append(
            {"source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
             "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"}
        )  # fmt: skip
    rules.append(
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job",
         "replacement": "${1}"}
    )  # fmt: skip
    if spec.get("jobLabel"):
        rules.append(
            {"source_labels": [f"__meta_kubernetes_service_label_{sanitize(spec['jobLabel'])}"],
             "target_label": "job", "regex": "(.+)", "replacement": "${1}"}
        )  # fmt: skip
    rules.append({"target_label": "endpoint", "replacement": str(endpoint["port"])})
    return rules


def scrape_configs(
    objects: list[Obj],
    local_ports: Mapping[tuple[str, str], int],
    *,
    namespace: str,
    host: str = "127.0.0.1",
) -> list[Obj]:
    """One Prometheus scrape_config per endpoint of every rendered ServiceMonitor, its targets
    the local processes (`local_ports`, see `stack_ports`) behind the Services it selects.

    `namespace` is the release's namespace (rendered objects without metadata.namespace)."""
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    services = [o for o in objects if o["kind"] == "Service"]
    if not monitors:
        raise ScrapeConfigError("the chart rendered no ServiceMonitor")
    configs: list[Obj] = []
    scraped: dict[tuple[str, str, str], str] = {}  # (workload, container, port) -> job name
    for monitor in monitors:
        name = monitor["metadata"]["name"]
        spec = monitor["spec"]
        unknown = set(spec) - SPEC_FIELDS
        if unknown:
            raise ScrapeConfigError(f"ServiceMonitor {name}: fields not translated: {unknown}")
        own = _namespace(monitor, namespace)
        namespaces = spec.get("namespaceSelector") or {}
        selected = [
            s
            for s in services
            if (namespaces.get("any") or _namespace(s, namespace)
                in (namespaces.get("matchNames") or [own]))
            and matches(spec["selector"], s["metadata"].get("labels") or {})
        ]  # fmt: skip
        if not selected:
            raise ScrapeConfigError(f"ServiceMonitor {name} selects no rendered Service")
        if not spec.get("endpoints"):
            raise ScrapeConfigError(f"ServiceMonitor {name} has no endpoints")
        for index, endpoint in enumerate(spec["endpoints"]):
            job_name = f"serviceMonitor/{own}/{name}/{index}"
            unknown = set(endpoint) - ENDPOINT_FIELDS
            if unknown:
                raise ScrapeConfigError(f"{job_name}: endpoint fields not translated: {unknown}")
            if "port" not in endpoint:
                raise ScrapeConfigError(f"{job_name}: an endpoint without a port name")
            static: list[Obj] = []
            for service in selected:
                service_namespace = _namespace(service, namespace)
                service_labels = service["metadata"].get("labels") or {}
                for port in _service_ports(service, endpoint["port"], objects, service_namespace):
                    local = (port.component, port.name)
                    if local not in local_ports:
                        raise ScrapeConfigError(
                            f"{job_name}: the local stack runs no {port.component} with a "
                            f"{port.name!r} port ({port.workload})"
                        )
                    where = (port.workload, port.container, port.name)
                    if where in scraped:
                        raise ScrapeConfigError(
                            f"{port.workload} port {port.name!r} is scraped by {scraped[where]} "
                            f"and {job_name} (duplicate series)"
                        )
                    scraped[where] = job_name
                    meta = {
                        "__meta_kubernetes_namespace": service_namespace,
                        "__meta_kubernetes_service_name": service["metadata"]["name"],
                        "__meta_kubernetes_endpoint_port_name": endpoint["port"],
                        "__meta_kubernetes_pod_container_name": port.container,
                        "__meta_kubernetes_pod_container_port_name": port.name,
                    }
                    meta.update(
                        {f"__meta_kubernetes_service_label_{sanitize(k)}": str(v)
                         for k, v in service_labels.items()}
                    )  # fmt: skip
                    meta.update(
                        {f"__meta_kubernetes_pod_label_{sanitize(k)}": str(v)
                         for k, v in port.pod_labels.items()}
                    )  # fmt: skip
                    static.append({"targets": [f"{host}:{local_ports[local]}"], "labels": meta})
            config: Obj = {
                "job_name": job_name,
                "metrics_path": endpoint.get("path") or "/metrics",
                "scheme": endpoint.get("scheme") or "http",
                "static_configs": static,
                "relabel_configs": _operator_relabelings(spec, endpoint)
                + _relabel(endpoint.get("relabelings") or [], job_name),
            }
            for field, key in (
                ("interval", "scrape_interval"),
                ("scrapeTimeout", "scrape_timeout"),
                ("params", "params"),
                ("honorLabels", "honor_labels"),
                ("honorTimestamps", "honor_timestamps"),
            ):
                if field in endpoint:
                    config[key] = endpoint[field]
            for field, key in (("sampleLimit", "sample_limit"), ("targetLimit", "target_limit")):
                if field in spec:
                    config[key] = spec[field]
            if endpoint.get("metricRelabelings"):
                config["metric_relabel_configs"] = _relabel(endpoint["metricRelabelings"], job_name)
            configs.append(config)
    return configs
