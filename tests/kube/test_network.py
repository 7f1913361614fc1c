"""The stand-in pod network: the policy compiler (pure) and real netns, veth and nftables (root).

The compiler tests need nothing; the others build network namespaces and fail, saying what is
needed, when not run as root. The chart test compiles the rendered default NetworkPolicies
against the pods the chart runs and loads them into real namespaces.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import NAMESPACE, render, scenario_values
from tests.kube import netpol
from tests.kube.network import ClusterNetwork, PodCallError, PodNet, run_in_netns

Obj = dict[str, Any]
DENIED_TIMEOUT = 0.5  # s: an allowed connect on a veth takes well under a millisecond


# --- the compiler, pure --------------------------------------------------------------------


@dataclass
class FakePod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    ports: dict[str, int] = field(default_factory=dict)
    ready: bool = True
    hostname: str = ""
    subdomain: str | None = None


def policy(name: str, selector: Obj, types: list[str], **rules: Any) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"podSelector": selector, "policyTypes": types, **rules},
    }


def service(name: str, selector: dict[str, str], ports: list[Obj], **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": selector, "ports": ports, **spec},
    }


API = FakePod("api-0", "shop", {"app": "api"}, "10.0.0.2", {"http": 8000, "admin": 9000})
WEB = FakePod("web-0", "shop", {"app": "web"}, "10.0.0.3")
INGRESS = FakePod("ctrl", "ingress-nginx", {"app": "ingress-nginx"}, "10.0.0.4")
OTHER = FakePod("other", "elsewhere", {"app": "web"}, "10.0.0.5", {"http": 8080})
PODS = [API, WEB, INGRESS, OTHER]
DENY_ALL = policy("deny", {}, ["Ingress", "Egress"])


def cluster(*policies: Obj, **kwargs: Any) -> netpol.Cluster:
    return netpol.Cluster(
        pods=kwargs.pop("pods", PODS),
        node_ip="10.0.0.1",
        service_cidr="10.0.128.0/24",
        policies=policies,
        **kwargs,
    )


def test_selectors_match_labels_and_expressions() -> None:
    labels = {"app": "api", "tier": "back"}
    assert netpol.selects({}, labels) and netpol.selects(None, labels)
    assert netpol.selects({"matchLabels": {"app": "api"}}, labels)
    assert not netpol.selects({"matchLabels": {"app": "api", "tier": "front"}}, labels)
    expr = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back", "x"]}]}
    assert netpol.selects(expr, labels)
    assert not netpol.selects(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}]}, labels
    )
    assert not netpol.selects({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, labels)
    assert netpol.selects({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, labels)


def test_unselected_pods_are_open_and_policy_types_default_as_the_api_does() -> None:
    ingress_only = policy("i", {"matchLabels": {"app": "api"}}, [])
    del ingress_only["spec"]["policyTypes"]
    c = cluster(ingress_only)
    assert netpol.policy_rules(c, API, ingress=True) == []  # isolated, nothing allowed
    assert netpol.policy_rules(c, API, ingress=False) is None  # no egress rules: not isolated
    assert netpol.policy_rules(c, WEB, ingress=True) is None
    assert not netpol.allowed(c, WEB, API, 8000)
    assert netpol.allowed(c, API, WEB, 8000)
    text = netpol.pod_ruleset(c, API)
    assert "hook input priority 0; policy drop" in text and "hook output priority 0" not in text
    assert "ip saddr 10.0.0.1 accept" in text  # the node (kubelet probes) always gets in
    assert "hook input" not in netpol.pod_ruleset(c, WEB)


def test_default_deny_plus_allow_pod_selector_and_named_port() -> None:
    allow = policy(
        "api",
        {"matchLabels": {"app": "api"}},
        ["Ingress"],
        ingress=[
            {
                "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                "ports": [{"port": "http"}],
            }
        ],
    )
    web_out = policy(
        "web",
        {"matchLabels": {"app": "web"}},
        ["Egress"],
        egress=[
            {"to": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": "http"}]}
        ],
    )
    c = cluster(DENY_ALL, allow, web_out)
    assert netpol.allowed(c, WEB, API, 8000)
    assert not netpol.allowed(c, WEB, API, 9000)
    assert not netpol.allowed(c, WEB, API, 8000, "udp")
    assert not netpol.allowed(c, API, WEB, 8000)
    assert not netpol.allowed(c, OTHER, API, 8000)  # same labels, other namespace
    assert 'ip daddr 10.0.0.2 tcp dport 8000 accept comment "web egress[0]"' in (
        netpol.pod_ruleset(c, WEB)
    )


def test_namespace_selectors_alone_combined_and_all_namespaces() -> None:
    from_ingress_ns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    from_any_web = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}
    by_team = {"namespaceSelector": {"matchLabels": {"team": "edge"}}}
    c = cluster(
        policy(
            "api",
            {"matchLabels": {"app": "api"}},
            ["Ingress"],
            ingress=[{"from": [from_ingress_ns]}],
        )
    )
    assert netpol.allowed(c, INGRESS, API, 8000) and netpol.allowed(c, INGRESS, API, 1)
    assert not netpol.allowed(c, WEB, API, 8000)
    c = cluster(
        policy(
            "api", {"matchLabels": {"app": "api"}}, ["Ingress"], ingress=[{"from": [from_any_web]}]
        )
    )
    assert netpol.allowed(c, WEB, API, 8000) and netpol.allowed(c, OTHER, API, 8000)
    assert not netpol.allowed(c, INGRESS, API, 8000)
    c = cluster(
        policy("api", {"matchLabels": {"app": "api"}}, ["Ingress"], ingress=[{"from": [by_team]}]),
        namespace_labels={"elsewhere": {"team": "edge"}},
    )
    assert netpol.allowed(c, OTHER, API, 8000) and not netpol.allowed(c, WEB, API, 8000)


def test_ip_block_with_except_and_egress_ports_without_to() -> None:
    block = {"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.3/32"]}}
    c = cluster(
        policy("api", {"matchLabels": {"app": "api"}}, ["Ingress"], ingress=[{"from": [block]}])
    )
    assert netpol.allowed(c, INGRESS, API, 8000)
    assert not netpol.allowed(c, WEB, API, 8000)
    assert "ip saddr 10.0.0.0/24 ip saddr != 10.0.0.3/32 accept" in netpol.pod_ruleset(c, API)
    any_8000 = policy(
        "web",
        {"matchLabels": {"app": "web"}},
        ["Egress"],
        egress=[{"ports": [{"port": 8000, "protocol": "TCP"}, {"port": 9000, "endPort": 9002}]}],
    )
    c = cluster(any_8000)
    assert netpol.allowed(c, WEB, API, 8000) and netpol.allowed(c, WEB, INGRESS, 8000)
    assert netpol.allowed(c, WEB, API, 9001) and not netpol.allowed(c, WEB, API, 9003)
    assert not netpol.allowed(c, WEB, API, 8001)
    assert "tcp dport { 8000, 9000-9002 } accept" in netpol.pod_ruleset(c, WEB)


def test_empty_rules_allow_everything_and_missing_rules_nothing() -> None:
    open_ingress = policy(
        "api", {"matchLabels": {"app": "api"}}, ["Ingress", "Egress"], ingress=[{}]
    )
    c = cluster(open_ingress)
    assert netpol.allowed(c, OTHER, API, 1234)
    assert not netpol.allowed(c, API, WEB, 80)  # Egress isolated with no egress rules
    protocol_only = policy(
        "web",
        {"matchLabels": {"app": "web"}},
        ["Egress"],
        egress=[{"ports": [{"protocol": "UDP"}]}],
    )
    c = cluster(protocol_only)
    assert netpol.allowed(c, WEB, API, 53, "udp") and not netpol.allowed(c, WEB, API, 53)
    no_peer_matches = policy(
        "api",
        {"matchLabels": {"app": "api"}},
        ["Ingress"],
        ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]}],
    )
    assert netpol.policy_rules(cluster(no_peer_matches), API, ingress=True) == []


def test_services_dnat_to_ready_endpoints_by_named_target_port() -> None:
    api_1 = FakePod("api-1", "shop", {"app": "api"}, "10.0.0.6", {"http": 8001})
    down = FakePod("api-2", "shop", {"app": "api"}, "10.0.0.7", {"http": 8000}, ready=False)
    svc = service("api", {"app": "api"}, [{"name": "http", "port": 80, "targetPort": "http"}])
    empty = service("gone", {"app": "gone"}, [{"port": 81}])
    c = netpol.Cluster(
        pods=[API, api_1, down, WEB],
        node_ip="10.0.0.1",
        service_cidr="10.0.128.0/24",
        services=[svc, empty],
        cluster_ips={("shop", "api"): "10.0.128.1", ("shop", "gone"): "10.0.128.2"},
    )
    ports = netpol.service_ports(c)
    assert ports[0].backends == (("10.0.0.2", 8000), ("10.0.0.6", 8001))
    assert ports[1].backends == ()
    text = netpol.pod_ruleset(c, WEB)
    assert "ip daddr 10.0.128.1 tcp dport 80 jump svc_0" in text
    assert "numgen random mod 2 vmap { 0 : jump ep_0_0, 1 : jump ep_0_1 }" in text
    assert "10.0.128.2" not in text  # no endpoint: left to the reject chain
    assert "ip daddr 10.0.128.0/24 meta l4proto tcp reject with tcp reset" in text
    hosts = netpol.hosts_file(c, WEB)
    assert "10.0.128.1\tapi api.shop api.shop.svc api.shop.svc.cluster.local" in hosts
    assert "\tapi " not in netpol.hosts_file(c, OTHER)  # short names only in the same namespace
    assert "api.shop.svc.cluster.local" in netpol.hosts_file(c, OTHER)


def test_headless_services_name_their_ready_pods_and_statefulset_members() -> None:
    db_0 = FakePod("db-0", "shop", {"app": "db"}, "10.0.0.8", subdomain="db-headless")
    db_1 = FakePod("db-1", "shop", {"app": "db"}, "10.0.0.9", ready=False, subdomain="db-headless")
    headless = service("db-headless", {"app": "db"}, [{"port": 5432}], clusterIP="None")
    c = netpol.Cluster(
        pods=[db_0, db_1, WEB],
        node_ip="10.0.0.1",
        service_cidr="10.0.128.0/24",
        services=[headless],
    )
    hosts = netpol.hosts_file(c, WEB)
    assert "10.0.0.8\tdb-headless db-headless.shop " in hosts
    assert "10.0.0.8\tdb-0.db-headless db-0.db-headless.shop " in hosts
    assert "db-0.db-headless.shop.svc.cluster.local" in hosts
    assert "10.0.0.9" not in hosts  # not ready: not published
    assert netpol.hosts_file(c, db_0).splitlines()[3] == (
        "10.0.0.8\tdb-0.db-headless.shop.svc.cluster.local db-0"
    )
    assert netpol.service_ports(c) == []  # no ClusterIP, no DNAT


# --- the chart's policies ------------------------------------------------------------------


def chart_pods(objects: list[Obj]) -> list[FakePod]:
    """A pod per workload the chart renders (Deployments, StatefulSets, Jobs, the test pod)."""
    templates: list[tuple[str, Obj]] = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet", "Job"):
            templates.append((name, obj["spec"]["template"]))
        elif kind == "CronJob":
            templates.append((name, obj["spec"]["jobTemplate"]["spec"]["template"]))
        elif kind == "Pod":
            templates.append((name, obj))
        elif kind == "ConfigMap" and "job.yaml" in (obj.get("data") or {}):
            job = yaml.safe_load(obj["data"]["job.yaml"])
            templates.append((name, job["spec"]["template"]))
    pods = []
    for index, (name, template) in enumerate(templates, start=10):
        ports = {
            p["name"]: p["containerPort"]
            for c in template["spec"]["containers"]
            for p in c.get("ports") or []
            if "name" in p
        }
        labels = template["metadata"]["labels"]
        pods.append(FakePod(name, NAMESPACE, labels, f"10.0.0.{index}", ports))
    return pods


def by_component(pods: list[FakePod]) -> dict[str, FakePod]:
    return {p.labels["app.kubernetes.io/component"]: p for p in pods}


@pytest.fixture(scope="module")
def chart() -> tuple[netpol.Cluster, dict[str, FakePod]]:
    objects = render(scenario_values("default"))
    pods = chart_pods(objects)
    peers = [
        FakePod(
            "ingress-nginx-controller",
            "ingress-nginx",
            {"app.kubernetes.io/name": "ingress-nginx"},
            "10.0.0.2",
        ),
        FakePod("prometheus-0", "monitoring", {"app.kubernetes.io/name": "prometheus"}, "10.0.0.3"),
        FakePod("coredns", "kube-system", {"k8s-app": "kube-dns"}, "10.0.0.4", {"dns": 53}),
        FakePod("stranger", "default", {"app": "stranger"}, "10.0.0.5"),
        # minikube's API server listens on 8443 behind the Service kubernetes:443; policies
        # see the post-DNAT port (issue 13, defect 9).
        FakePod("kube-apiserver", "default", {"component": "kube-apiserver"}, "10.0.0.6"),
    ]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    c = netpol.Cluster(
        pods=pods + peers,
        node_ip="10.0.0.1",
        service_cidr="10.0.128.0/24",
        policies=policies,
        default_namespace=NAMESPACE,
    )
    named = by_component(pods) | {p.name: p for p in peers}
    return c, named


ALLOWED = [
    ("backend", "ride-duration", 8000),
    ("backend", "postgresql", 5432),
    ("backend", "nats", 4222),
    ("ride-duration", "triton", 8001),
    ("classifier", "triton", 8001),
    ("chatbot", "triton", 8001),
    ("worker-tip", "triton", 8001),
    ("worker-cost", "nats", 4222),
    ("classifier-retrain", "triton", 8001),
    ("classifier-retrain", "postgresql", 5432),
    ("test", "backend", 8000),
    ("test", "triton", 8000),
    ("ingress-nginx-controller", "backend", 8000),
    ("ingress-nginx-controller", "chatbot", 8000),
    ("prometheus-0", "triton", 8002),
    ("prometheus-0", "worker-tip", 8000),
    ("classifier", "kube-apiserver", 8443),
    ("classifier", "kube-apiserver", 443),
]
DENIED = [
    ("backend", "triton", 8001),
    ("backend", "classifier", 8000),
    ("backend", "postgresql", 5433),
    ("ride-duration", "nats", 4222),
    ("classifier-retrain", "nats", 4222),
    ("triton", "postgresql", 5432),
    ("test", "postgresql", 5432),
    ("ingress-nginx-controller", "triton", 8001),
    ("ingress-nginx-controller", "worker-tip", 8000),
    ("stranger", "backend", 8000),
    ("prometheus-0", "postgresql", 5432),
    ("backend", "kube-apiserver", 8443),
]


def test_chart_policies_allow_what_each_component_calls_and_nothing_else(
    chart: tuple[netpol.Cluster, dict[str, FakePod]],
) -> None:
    c, pods = chart
    assert {"backend", "triton", "postgresql", "nats", "test", "classifier-retrain"} <= set(pods)
    wrong = [
        (src, dst, port, want)
        for want, table in ((True, ALLOWED), (False, DENIED))
        for src, dst, port in table
        if netpol.allowed(c, pods[src], pods[dst], port) != want
    ]
    assert not wrong, (
        f"(source, destination, port, expected allowed) that the policies get wrong: {wrong}"
    )
    for name in ("backend", "triton", "postgresql", "classifier-retrain"):
        assert netpol.allowed(c, pods[name], pods["coredns"], 53, "udp"), name
        text = netpol.pod_ruleset(c, pods[name])
        assert "policy drop" in text  # every chart pod is isolated both ways by default-deny


# --- real namespaces (root) ----------------------------------------------------------------

_SERVER = r"""
import http.server, sys, threading
pod, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{pod}:{self.server.server_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        size = len(self.rfile.read(int(self.headers["Content-Length"])))
        body = f"{pod}:{self.server.server_address[1]} got {size}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
servers = [http.server.ThreadingHTTPServer(("0.0.0.0", p), Handler) for p in ports]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
"""


@dataclass
class Net:
    net: ClusterNetwork
    api: PodNet
    web: PodNet
    other: PodNet
    ingress: PodNet
    stranger: PodNet


def serve(pod: PodNet, *ports: int) -> subprocess.Popen[str]:
    argv = pod.exec_argv([sys.executable, "-I", "-S", "-c", _SERVER, pod.name, *map(str, ports)])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module")
def network() -> Iterator[Net]:
    with ClusterNetwork(default_namespace="shop") as net:
        api = net.add_pod("api-0", "shop", {"app": "api"}, ports={"http": 8000, "admin": 8001})
        web = net.add_pod("web-0", "shop", {"app": "web"}, ports={"http": 8000})
        other = net.add_pod("other-0", "shop", {"app": "other"}, ports={"http": 8000})
        ingress = net.add_pod(
            "ctrl-0", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}
        )
        stranger = net.add_pod("stranger-0", "elsewhere", {"app": "web"})
        servers = [serve(api, 8000, 8001), serve(web, 8000), serve(other, 8000)]
        net.set_services(
            [
                service(
                    "api", {"app": "api"}, [{"name": "http", "port": 80, "targetPort": "http"}]
                ),
                service("admin", {"app": "api"}, [{"port": 81, "targetPort": 8001}]),
                service("gone", {"app": "gone"}, [{"port": 80}]),
            ]
        )
        try:
            yield Net(net, api, web, other, ingress, stranger)
        finally:
            for proc in servers:
                stop(proc)


@pytest.fixture
def net(network: Net) -> Iterator[Net]:
    network.net.apply_network_policies([])
    yield network
    network.net.apply_network_policies([])


def denied(pod: PodNet, host: str, port: int) -> bool:
    try:
        pod.connect(host, port, timeout=DENIED_TIMEOUT)
    except PodCallError as exc:
        return exc.kind == "timeout"
    return False


def test_pods_reach_each_other_and_service_names_through_their_cluster_ip(net: Net) -> None:
    for name in ("api", "api.shop", "api.shop.svc", "api.shop.svc.cluster.local"):
        assert net.web.fetch(f"http://{name}/", timeout=2).text == "api-0:8000", name
    assert net.web.fetch("http://admin:81/", timeout=2).text == "api-0:8001"
    upload = net.web.fetch("http://api/", method="POST", body=b"x" * (3 << 20), timeout=5)
    assert upload.text == f"api-0:8000 got {3 << 20}"  # bodies over argv's 128 KiB cap
    assert net.api.fetch(f"http://{net.web.ip}:8000/", timeout=2).text == "web-0:8000"
    assert net.stranger.fetch("http://api.shop/", timeout=2).text == "api-0:8000"
    with pytest.raises(PodCallError) as exc:  # short names resolve in their own namespace only
        net.stranger.fetch("http://api/", timeout=2)
    assert exc.value.kind == "resolve"
    api_ip = net.net.service_ip("api")
    resolved = net.web.exec_argv(["getent", "hosts", "api.shop.svc.cluster.local"])
    assert subprocess.run(resolved, capture_output=True, text=True).stdout.split()[0] == api_ip
    with pytest.raises(PodCallError) as exc:  # a Service without endpoints refuses at once
        net.web.connect("gone", 80, timeout=2)
    assert exc.value.kind == "refused"


def test_the_node_reaches_pods_and_cluster_ips(net: Net) -> None:
    net.net.apply_network_policies([policy("deny", {}, ["Ingress", "Egress"])])
    with urllib.request.urlopen(f"http://{net.api.ip}:8000/", timeout=2) as resp:
        assert resp.read() == b"api-0:8000"
    with urllib.request.urlopen(f"http://{net.net.service_ip('api')}/", timeout=2) as resp:
        assert resp.read() == b"api-0:8000"
    # A socket opened in a thread that joined web's netns is held to web's (denied) egress.
    assert run_in_netns(net.web.netns, lambda: _connects(net.api.ip, 8000)) is False
    net.net.apply_network_policies([])
    assert run_in_netns(net.web.netns, lambda: _connects(net.api.ip, 8000)) is True


def _connects(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=DENIED_TIMEOUT).close()
    except OSError:
        return False
    return True


def test_default_deny_with_an_allow_policy(net: Net) -> None:
    api_from_web = policy(
        "api",
        {"matchLabels": {"app": "api"}},
        ["Ingress"],
        ingress=[
            {
                "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                "ports": [{"port": "http"}],
            }
        ],
    )
    web_to_api = policy(
        "web",
        {"matchLabels": {"app": "web"}},
        ["Egress"],
        egress=[
            {"to": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 8000}]}
        ],
    )
    net.net.apply_network_policies(
        [policy("deny", {}, ["Ingress", "Egress"]), api_from_web, web_to_api]
    )
    assert net.web.fetch("http://api/", timeout=2).text == "api-0:8000"  # DNAT, then filter
    assert denied(net.web, "admin", 81)  # port 8001 is not allowed
    assert denied(net.other, net.api.ip, 8000)
    assert denied(net.api, net.web.ip, 8000)
    with urllib.request.urlopen(f"http://{net.web.ip}:8000/", timeout=2) as resp:  # probes pass
        assert resp.status == 200


def test_namespace_selector_peer_and_namespace_labels(net: Net) -> None:
    from_ingress = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    from_team = {"namespaceSelector": {"matchLabels": {"team": "edge"}}}
    net.net.apply_network_policies(
        [
            policy(
                "api",
                {"matchLabels": {"app": "api"}},
                ["Ingress"],
                ingress=[{"from": [from_ingress, from_team]}],
            )
        ]
    )
    assert net.ingress.fetch("http://api.shop/", timeout=2).text == "api-0:8000"
    assert denied(net.stranger, "api.shop", 80)
    net.net.label_namespace("elsewhere", {"team": "edge"})
    try:
        assert net.stranger.can_connect("api.shop", 80)
    finally:
        net.net.label_namespace("elsewhere", {"team": "none"})


def test_ip_block_and_egress_ports_without_to(net: Net) -> None:
    block = {"ipBlock": {"cidr": net.net.pod_cidr, "except": [f"{net.web.ip}/32"]}}
    egress_8000 = policy(
        "out", {"matchLabels": {"app": "other"}}, ["Egress"], egress=[{"ports": [{"port": 8000}]}]
    )
    net.net.apply_network_policies(
        [
            policy(
                "api", {"matchLabels": {"app": "api"}}, ["Ingress"], ingress=[{"from": [block]}]
            ),
            egress_8000,
        ]
    )
    assert net.other.fetch("http://api/", timeout=2).text == "api-0:8000"
    assert net.other.fetch(f"http://{net.web.ip}:8000/", timeout=2).text == "web-0:8000"
    assert denied(net.other, net.api.ip, 8001)
    assert denied(net.web, net.api.ip, 8000)


def test_not_ready_pods_leave_their_services(net: Net) -> None:
    net.net.update_pod(net.api, ready=False)
    try:
        with pytest.raises(PodCallError) as exc:
            net.web.connect("api", 80, timeout=2)
        assert exc.value.kind == "refused"
    finally:
        net.net.update_pod(net.api, ready=True)
    assert net.web.can_connect("api", 80)


def test_pods_added_in_a_batch_get_rules_at_its_end_and_removed_pods_leave(net: Net) -> None:
    net.net.apply_network_policies([policy("deny", {}, ["Ingress", "Egress"])])
    with net.net.batch():
        extra = net.net.add_pod("extra-0", "shop", {"app": "api"}, ports={"http": 8000})
        assert not extra.hosts_file.exists()  # nothing rendered inside the block
    assert "policy drop" in net.net.ruleset(extra)
    assert "api api.shop" in extra.hosts_file.read_text()
    server = serve(extra, 8000)
    try:
        net.net.apply_network_policies([])
        assert {net.web.fetch("http://api/", timeout=2).text for _ in range(20)} == {
            "api-0:8000",
            "extra-0:8000",
        }  # both endpoints behind the ClusterIP
        net.net.remove_pod(extra)
        assert server.wait(timeout=5) is not None  # its processes were killed with it
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert extra.netns not in netns and not extra.hosts_file.parent.exists()
        assert {net.web.fetch("http://api/", timeout=2).text for _ in range(4)} == {"api-0:8000"}
    finally:
        stop(server)


def test_the_rendered_chart_policies_enforced_in_real_namespaces(
    chart: tuple[netpol.Cluster, dict[str, FakePod]],
) -> None:
    c, fakes = chart
    wanted = [
        "backend",
        "ride-duration",
        "triton",
        "postgresql",
        "ingress-nginx-controller",
        "stranger",
    ]
    with ClusterNetwork(default_namespace=NAMESPACE) as net:
        pods = {
            name: net.add_pod(
                fakes[name].name, fakes[name].namespace, fakes[name].labels, fakes[name].ports
            )
            for name in wanted
        }
        net.apply_network_policies(list(c.policies))
        servers = [
            serve(pods["ride-duration"], 8000),
            serve(pods["triton"], 8000, 8001),
            serve(pods["postgresql"], 5432),
            serve(pods["backend"], 8000),
        ]
        try:
            assert pods["backend"].can_connect(pods["ride-duration"].ip, 8000)
            assert pods["backend"].can_connect(pods["postgresql"].ip, 5432)
            assert pods["ride-duration"].can_connect(pods["triton"].ip, 8001)
            assert pods["ingress-nginx-controller"].can_connect(pods["backend"].ip, 8000)
            assert denied(pods["backend"], pods["triton"].ip, 8001)
            assert denied(pods["ingress-nginx-controller"], pods["triton"].ip, 8001)
            assert denied(pods["stranger"], pods["backend"].ip, 8000)
        finally:
            for proc in servers:
                stop(proc)


# --- teardown ------------------------------------------------------------------------------


def _leftovers(prefix: str) -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found = [line for line in netns.splitlines() if line.startswith(f"{prefix}-")]
    found += [line for line in links.splitlines() if f" {prefix}-node" in line]
    found += [line for line in tables.splitlines() if line.endswith(f" {prefix}")]
    found += [str(p) for p in Path("/etc/netns").glob(f"{prefix}-*")]
    return found


_CRASHING_RUN = """
import os, signal, sys, time
from tests.kube.network import ClusterNetwork
net = ClusterNetwork().__enter__()
pod = net.add_pod("victim", "default", {"app": "victim"})
print(net.prefix, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("signum", [15, 9], ids=["SIGTERM", "SIGKILL"])
def test_nothing_is_left_after_sigterm_and_a_crashed_run_is_cleaned_up(signum: int) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_RUN], cwd=root, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    prefix = proc.stdout.readline().strip()
    assert prefix.startswith("mfk") and _leftovers(prefix)
    proc.send_signal(signum)
    proc.wait(timeout=10)
    proc.stdout.close()
    if signum == 15:
        assert _leftovers(prefix) == []
        return
    assert _leftovers(prefix)  # SIGKILL: nothing could run
    with ClusterNetwork() as net:
        if net.prefix != prefix:
            pytest.skip(f"another session took slot {prefix} meanwhile")
        assert not [line for line in _leftovers(prefix) if "victim" in line]
    deadline = time.monotonic() + 5
    while _leftovers(prefix) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leftovers(prefix) == []
