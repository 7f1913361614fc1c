"""What the pod network enforces, as pure functions: Services and NetworkPolicies -> nftables text.

tests/kube/network.py builds a :class:`Cluster` snapshot (pods, rendered Services and
NetworkPolicies, namespace labels, allocated ClusterIPs) and loads :func:`pod_ruleset` into each
pod's network namespace with ``nft -f``. Nothing here touches the machine, so the compiler is
unit-tested on the chart's rendered objects without root:

    cluster = Cluster(pods=pods, policies=policies, services=services, cluster_ips=ips,
                      node_ip="10.233.0.1", service_cidr="10.233.128.0/24")
    text = pod_ruleset(cluster, pods[0])      # one `table inet kube` for that pod's netns
    allowed(cluster, src, dst, 8000)          # does the compiled policy let src reach dst:8000?

What the table holds, in the order a packet meets it (as kube-proxy's nftables mode and a
policy-enforcing CNI do it):

- ``services`` (nat output, priority -100): ClusterIP:port -> one ready pod's IP:targetPort
  (``numgen random`` over the endpoints when there are several), named targetPorts resolved
  from the pods' container ports.
- ``services_reject`` (filter output, -10): a ClusterIP nothing was DNATed for (no ready
  endpoint, or a port the Service lacks) is refused at once, as kube-proxy does.
- ``ingress`` (filter input, 0) and ``egress`` (filter output, 0): present only when a policy of
  that type selects the pod; policy drop, then established/related, loopback, the node's IP on
  ingress (kubelet probes: CNIs allow node-local traffic), then one accept per allowed
  (peer, ports) pair. Filtering after nat means policies see the post-DNAT destination.

NetworkPolicy semantics covered (networking.k8s.io/v1): podSelector (matchLabels and
matchExpressions; ``{}`` = every pod of the namespace), policyTypes (defaulted as the API does),
ingress ``from`` / egress ``to`` peers with podSelector, namespaceSelector (``{}`` = all
namespaces), both in one peer, ipBlock cidr/except; ``ports`` with number, named port, endPort and
protocol; empty/missing ``from``/``to``/``ports`` meaning "all". Namespaces carry
``kubernetes.io/metadata.name=<ns>`` plus any labels given in :attr:`Cluster.namespace_labels`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]

TABLE = "kube"
CLUSTER_DOMAIN = "cluster.local"


class Pod(Protocol):
    """What the compiler needs of a pod (tests/kube/network.py's PodNet has these)."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def ip(self) -> str: ...
    @property
    def ports(self) -> Mapping[str, int]: ...
    @property
    def ready(self) -> bool: ...
    @property
    def hostname(self) -> str: ...
    @property
    def subdomain(self) -> str | None: ...


@dataclass(frozen=True)
class ServicePort:
    """One ClusterIP:port and the pod IP:port pairs behind it."""

    service: str  # namespace/name
    cluster_ip: str
    port: int
    protocol: str  # tcp | udp | sctp
    backends: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Cluster:
    """A snapshot of everything the rules of one pod depend on."""

    pods: Sequence[Pod]
    node_ip: str
    service_cidr: str
    policies: Sequence[Obj] = ()
    services: Sequence[Obj] = ()
    cluster_ips: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (ns, name)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    default_namespace: str = "default"
    domain: str = CLUSTER_DOMAIN

    def labels_of_namespace(self, namespace: str) -> dict[str, str]:
        labels = dict(self.namespace_labels.get(namespace, {}))
        labels["kubernetes.io/metadata.name"] = namespace
        return labels

    def namespace_of(self, obj: Obj) -> str:
        return str(obj.get("metadata", {}).get("namespace") or self.default_namespace)


# --- selectors -----------------------------------------------------------------------------


def selects(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; None/{} select all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True


def policy_types(policy: Obj) -> set[str]:
    """policyTypes as the API server defaults them (Ingress always, Egress if rules exist)."""
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress", "Egress"} if "egress" in spec else {"Ingress"}


def selecting_policies(cluster: Cluster, pod: Pod, policy_type: str) -> list[Obj]:
    """The policies of ``policy_type`` that select ``pod`` (the pod is isolated if any)."""
    return [
        p
        for p in cluster.policies
        if cluster.namespace_of(p) == pod.namespace
        and policy_type in policy_types(p)
        and selects((p.get("spec") or {}).get("podSelector"), pod.labels)
    ]


# --- policies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Peer:
    """One from/to peer resolved: the pods it selects, or an ipBlock."""

    pods: tuple[Pod, ...] = ()
    cidr: str | None = None
    excepts: tuple[str, ...] = ()

    def covers(self, ip: str) -> bool:
        if self.cidr is None:
            return any(p.ip == ip for p in self.pods)
        addr = ipaddress.ip_address(ip)
        return addr in ipaddress.ip_network(self.cidr, strict=False) and not any(
            addr in ipaddress.ip_network(e, strict=False) for e in self.excepts
        )


def _resolve_peer(cluster: Cluster, peer: Obj, policy_ns: str) -> _Peer:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return _Peer(cidr=block["cidr"], excepts=tuple(block.get("except") or ()))
    ns_selector = peer.get("namespaceSelector")
    pod_selector = peer.get("podSelector")
    pods = tuple(
        p
        for p in cluster.pods
        if (
            selects(ns_selector, cluster.labels_of_namespace(p.namespace))
            if ns_selector is not None
            else p.namespace == policy_ns
        )
        and selects(pod_selector, p.labels)
    )
    return _Peer(pods=pods)


def _family(cidr: str) -> str:
    return "ip6" if ipaddress.ip_network(cidr, strict=False).version == 6 else "ip"


def _nft_set(items: Iterable[str]) -> str:
    values = sorted(set(items))
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def _peer_match(peer: _Peer, addr: str) -> str | None:
    """The nft match for one peer (``addr`` is saddr or daddr); None if it matches nothing."""
    if peer.cidr is not None:
        fam = _family(peer.cidr)
        match = f"{fam} {addr} {peer.cidr}"
        excepts = [e for e in peer.excepts if _family(e) == fam]
        if excepts:
            match += f" {fam} {addr} != {_nft_set(excepts)}"
        return match
    if not peer.pods:
        return None
    return f"ip {addr} {_nft_set(p.ip for p in peer.pods)}"


def _port_matches(numbered: Iterable[tuple[str, str | None]]) -> list[str]:
    """(protocol, "80" | "80-90" | None for all ports) -> one nft match per protocol."""
    any_port: set[str] = set()
    by_proto: dict[str, set[str]] = {}
    for proto, port in numbered:
        if port is None:
            any_port.add(proto)
        else:
            by_proto.setdefault(proto, set()).add(port)
    matches = [f"meta l4proto {proto}" for proto in sorted(any_port)]
    for proto, ports in sorted(by_proto.items()):
        if proto in any_port:
            continue
        ordered = sorted(ports, key=lambda p: int(p.split("-")[0]))
        one = ordered[0] if len(ordered) == 1 else "{ " + ", ".join(ordered) + " }"
        matches.append(f"{proto} dport {one}")
    return matches


def _port_entry(entry: Obj) -> tuple[str, int | str | None, int | None]:
    return (
        str(entry.get("protocol") or "TCP").lower(),
        entry.get("port"),
        entry.get("endPort"),
    )


def _rule_lines(
    cluster: Cluster, pod: Pod, rule: Obj, *, ingress: bool, policy_ns: str, comment: str
) -> list[str]:
    """The accept rules of one ingress/egress rule of a policy selecting ``pod``."""
    addr = "saddr" if ingress else "daddr"
    raw_peers = rule.get("from" if ingress else "to") or []
    peers = [_resolve_peer(cluster, peer, policy_ns) for peer in raw_peers]
    entries = [_port_entry(e) for e in rule.get("ports") or []]
    tail = f"accept {_comment(comment)}"

    numbered: list[tuple[str, str | None]] = []
    named: list[tuple[str, str]] = []
    for proto, port, end in entries:
        if port is None:
            numbered.append((proto, None))
        elif isinstance(port, int) or str(port).isdigit():
            numbered.append((proto, f"{port}-{end}" if end else str(port)))
        elif ingress:  # a named port is the selected pod's own container port
            if port in pod.ports:
                numbered.append((proto, str(pod.ports[port])))
        else:  # egress: each destination pod resolves the name itself
            named.append((proto, str(port)))

    peer_matches: list[str] = []
    if raw_peers:
        peer_matches = [m for m in (_peer_match(p, addr) for p in peers) if m]
    else:
        peer_matches = [""]
    port_matches = _port_matches(numbered) if entries else [""]
    if entries and not numbered:
        port_matches = []
    lines = [
        " ".join(part for part in (pm, po, tail) if part)
        for pm in peer_matches
        for po in port_matches
    ]
    for proto, name in named:
        candidates = [
            p
            for p in cluster.pods
            if name in p.ports and (not peers or any(x.covers(p.ip) for x in peers))
        ]
        for target in candidates:
            lines.append(f"ip daddr {target.ip} {proto} dport {target.ports[name]} {tail}")
    return lines


def policy_rules(cluster: Cluster, pod: Pod, *, ingress: bool) -> list[str] | None:
    """The accept rules for ``pod`` in one direction; None when no policy isolates it there."""
    kind = "Ingress" if ingress else "Egress"
    policies = selecting_policies(cluster, pod, kind)
    if not policies:
        return None
    lines: list[str] = []
    for policy in policies:
        name = policy["metadata"]["name"]
        for index, rule in enumerate((policy.get("spec") or {}).get(kind.lower()) or []):
            lines += _rule_lines(
                cluster,
                pod,
                rule or {},
                ingress=ingress,
                policy_ns=cluster.namespace_of(policy),
                comment=f"{name} {kind.lower()}[{index}]",
            )
    return lines


# --- services ------------------------------------------------------------------------------


def _target_port(port: Obj, pod: Pod) -> int | None:
    target = str(port.get("targetPort", port["port"]))
    return int(target) if target.isdigit() else pod.ports.get(target)


def service_ports(cluster: Cluster) -> list[ServicePort]:
    """Every ClusterIP:port with its ready endpoints (headless Services have none here)."""
    result = []
    for svc in cluster.services:
        ns, name = cluster.namespace_of(svc), svc["metadata"]["name"]
        ip = cluster.cluster_ips.get((ns, name))
        if ip is None:
            continue
        pods = _endpoints(cluster, svc)
        for port in (svc.get("spec") or {}).get("ports") or []:
            backends = []
            for pod in pods:
                target = _target_port(port, pod)
                if target is not None:
                    backends.append((pod.ip, target))
            result.append(
                ServicePort(
                    service=f"{ns}/{name}",
                    cluster_ip=ip,
                    port=int(port["port"]),
                    protocol=str(port.get("protocol") or "TCP").lower(),
                    backends=tuple(sorted(backends)),
                )
            )
    return result


def service_chains(ports: Sequence[ServicePort], service_cidr: str) -> list[str]:
    """The nat and reject chains that make ClusterIPs reach their endpoints (any table)."""
    dispatch: list[str] = []
    extra: list[str] = []
    for i, sp in enumerate(ports):
        if not sp.backends:
            continue
        match = f"ip daddr {sp.cluster_ip} {sp.protocol} dport {sp.port}"
        note = _comment(f"{sp.service}:{sp.port}")
        if len(sp.backends) == 1:
            ip, port = sp.backends[0]
            dispatch.append(f"{match} dnat ip to {ip}:{port} {note}")
            continue
        dispatch.append(f"{match} jump svc_{i} {note}")
        arms = ", ".join(f"{j} : jump ep_{i}_{j}" for j in range(len(sp.backends)))
        extra.append(
            f"chain svc_{i} {{\n\tnumgen random mod {len(sp.backends)} vmap {{ {arms} }}\n}}"
        )
        for j, (ip, port) in enumerate(sp.backends):
            extra.append(
                f"chain ep_{i}_{j} {{\n\tmeta l4proto {sp.protocol} dnat ip to {ip}:{port}\n}}"
            )
    chains = [
        _chain("services", "nat hook output priority -100; policy accept", dispatch),
        *extra,
        _chain(
            "services_reject",
            "filter hook output priority -10; policy accept",
            [
                f"ip daddr {service_cidr} meta l4proto tcp reject with tcp reset",
                f"ip daddr {service_cidr} reject",
            ],
        ),
    ]
    return chains


def _comment(text: str) -> str:
    """An nft rule comment (at most 128 bytes; Kubernetes names are plain DNS labels)."""
    return f'comment "{text[:120]}"'


def _chain(name: str, hook: str, rules: Iterable[str]) -> str:
    body = "".join(f"\t{rule}\n" for rule in rules)
    return f"chain {name} {{\n\ttype {hook};\n{body}}}"


def pod_ruleset(cluster: Cluster, pod: Pod) -> str:
    """The whole ``table inet kube`` for one pod's netns (load it with ``nft -f``)."""
    chains = service_chains(service_ports(cluster), cluster.service_cidr)
    ingress = policy_rules(cluster, pod, ingress=True)
    if ingress is not None:
        head = [
            "ct state established,related accept",
            'iif "lo" accept',
            f'ip saddr {cluster.node_ip} accept comment "node-local (kubelet probes)"',
        ]
        chains.append(
            _chain("ingress", "filter hook input priority 0; policy drop", head + ingress)
        )
    egress = policy_rules(cluster, pod, ingress=False)
    if egress is not None:
        head = ["ct state established,related accept", 'oif "lo" accept']
        chains.append(_chain("egress", "filter hook output priority 0; policy drop", head + egress))
    body = "\n".join(chains)
    return f"table inet {TABLE} {{\n{body}\n}}\n"


def replace_table(text: str, family: str, name: str) -> str:
    """``text`` prefixed so that ``nft -f`` swaps the table atomically (created if missing)."""
    return f"add table {family} {name}\ndelete table {family} {name}\n{text}"


def _endpoints(cluster: Cluster, svc: Obj) -> list[Pod]:
    """The ready pods a Service selects (none when it has no selector)."""
    ns, selector = cluster.namespace_of(svc), (svc.get("spec") or {}).get("selector")
    return [
        p
        for p in cluster.pods
        if selector
        and p.ready
        and p.namespace == ns
        and selects({"matchLabels": selector}, p.labels)
    ]


def hosts_file(cluster: Cluster, pod: Pod) -> str:
    """/etc/hosts of a pod: itself, then every Service's DNS names (short name in its own ns).

    A headless Service (clusterIP None) names its ready pods, and each of them with a matching
    subdomain also gets ``<hostname>.<service>.<ns>.svc.<domain>`` (StatefulSet pods).
    """
    own = [pod.hostname or pod.name]
    if pod.subdomain:
        fqdn = f"{own[0]}.{pod.subdomain}.{pod.namespace}.svc.{cluster.domain}"
        own.insert(0, fqdn)
    lines = [
        "# Kubernetes-managed hosts file (tests/kube/network.py, the stand-in pod network).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod.ip}\t{' '.join(own)}",
    ]
    for svc in cluster.services:
        ns, name = cluster.namespace_of(svc), svc["metadata"]["name"]
        suffixes = [f".{ns}", f".{ns}.svc", f".{ns}.svc.{cluster.domain}"]
        names = [f"{name}{suffix}" for suffix in suffixes]
        if ns == pod.namespace:
            names.insert(0, name)
        if (svc.get("spec") or {}).get("clusterIP") == "None":  # headless: the pods themselves
            endpoints = _endpoints(cluster, svc)
            lines += [f"{p.ip}\t{' '.join(names)}" for p in endpoints]
            for member in (p for p in endpoints if p.subdomain == name):
                host = member.hostname or member.name
                lines.append(f"{member.ip}\t" + " ".join(f"{host}.{n}" for n in names))
        elif (ns, name) in cluster.cluster_ips:
            lines.append(f"{cluster.cluster_ips[(ns, name)]}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def allowed(cluster: Cluster, src: Pod, dst: Pod, port: int, protocol: str = "tcp") -> bool:
    """Would the compiled rules let ``src`` open a connection to ``dst``:``port``?

    Evaluates the same rule lines :func:`pod_ruleset` emits (egress at the source, ingress at
    the destination), so a compile-level test checks what nft would enforce.
    """
    if src.ip == dst.ip:  # a pod's traffic to itself stays on loopback, which is never filtered
        return True
    egress = policy_rules(cluster, src, ingress=False)
    ingress = policy_rules(cluster, dst, ingress=True)
    return (egress is None or _any_line_allows(egress, "daddr", dst.ip, port, protocol)) and (
        ingress is None or _any_line_allows(ingress, "saddr", src.ip, port, protocol)
    )


def _any_line_allows(lines: Iterable[str], addr: str, ip: str, port: int, protocol: str) -> bool:
    return any(_line_allows(line, addr, ip, port, protocol) for line in lines)


def _line_allows(line: str, addr: str, ip: str, port: int, protocol: str) -> bool:
    """Evaluate one emitted accept line (only the match forms this module writes)."""
    tokens = line.split(' comment "')[0].replace("{ ", "{").replace(" }", "}").replace(", ", ",")
    words = tokens.split()
    i = 0
    while i < len(words) and words[i] != "accept":
        word = words[i]
        if word in ("ip", "ip6") and words[i + 1] == addr:
            negate = words[i + 2] == "!="
            value = words[i + 3] if negate else words[i + 2]
            inside = any(
                ipaddress.ip_address(ip) in ipaddress.ip_network(v, strict=False)
                for v in value.strip("{}").split(",")
                if ipaddress.ip_network(v, strict=False).version == ipaddress.ip_address(ip).version
            )
            if inside == negate:
                return False
            i += 4 if negate else 3
        elif word == "meta" and words[i + 1] == "l4proto":
            if words[i + 2] != protocol:
                return False
            i += 3
        elif words[i + 1] == "dport":
            if word != protocol:
                return False
            spans = [v.split("-") for v in words[i + 2].strip("{}").split(",")]
            if not any(int(s[0]) <= port <= int(s[-1]) for s in spans):
                return False
            i += 3
        else:
            raise ValueError(f"unexpected match in {line!r}")
    return True
