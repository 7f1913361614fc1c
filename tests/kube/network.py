"""The pod network of the stand-in kubelet: one netns per pod, Services and NetworkPolicies.

Root only (``ip netns``, veth, a bridge, ``nft``). Layout of one :class:`ClusterNetwork`::

    host netns                 "<prefix>-sw" netns            "<prefix>-<n>-<pod>" netns
    <prefix>-node 10.233.S.1 ── up0 ─┐
                                     br0 ── p<n> ──────────────── eth0 10.233.S.<n>
                                     (pod-to-pod traffic is bridged here)

The bridge sits in a netns of its own, so pod-to-pod traffic never crosses the host's
firewall or needs the host's ``net.ipv4.ip_forward`` / ``bridge-nf-call-iptables`` (neither is
changed; the switch netns turns bridge netfilter off for itself). The host reaches every pod
directly on the pod subnet from ``node_ip`` (kubelet probes, the tests' own clients), and
ClusterIPs too (a ``table inet <prefix>`` in the host with the same DNAT as the pods).

Each ClusterNetwork takes a free slot S (0-31) under an flock in /run/modelfleet-kube-net: pods
live in 10.233.S.0/24, ClusterIPs in 10.233.(128+S).0/24, and every name it makes starts with
``mfk<S>``. Two sessions get different slots. A run that died (SIGKILL) left its lock free:
every new ClusterNetwork deletes what it finds under the prefix of a free slot before it starts
(netns, processes still in them, links, nft table, /etc/netns folders). Exit, atexit and
SIGTERM (when nothing else handles it) remove everything an open network made.

Rules are rendered again (tables swapped atomically, only where the text changed) on every
change: add_pod, update_pod (ports, readiness: only ready pods are endpoints), remove_pod,
label_namespace, set_services, apply_network_policies; ``with net.batch():`` renders once at
the end of the block.

    with ClusterNetwork() as net:
        api = net.add_pod("api-0", "shop", {"app": "api"}, ports={"http": 8000})
        web = net.add_pod("web-0", "shop", {"app": "web"})
        net.set_services([service_obj])                  # rendered v1 Services
        net.apply_network_policies([policy_obj])         # rendered NetworkPolicies
        subprocess.Popen(api.exec_argv(["python", "-m", "http.server", "8000"]))
        web.fetch("http://api.shop:8000/")               # from inside web's netns
        web.connect("api", 8000, timeout=1)              # raises PodCallError when denied

What the rules are is tests/kube/netpol.py (pure; unit-tested without root).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from tests.kube import netpol

Obj = dict[str, Any]
T = TypeVar("T")

STATE_DIR = Path("/run/modelfleet-kube-net")
NETNS_ETC = Path("/etc/netns")
SLOTS = 32
BASE = "10.233"
CLONE_NEWNET = 0x40000000


class NetworkError(RuntimeError):
    """A command that builds the pod network failed (its stderr is in the message)."""


class PodCallError(ConnectionError):
    """A call made from a pod did not get an answer; ``kind`` says how it failed."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind  # timeout | refused | unreachable | resolve | error
        self.detail = detail


@dataclass(frozen=True)
class HttpResult:
    """An HTTP answer received inside a pod (4xx/5xx included: only no answer raises)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(eq=False)
class PodNet:
    """One pod's network: its netns, its IP on the pod subnet and its hosts file.

    ``ports`` (container port name -> number) resolves named targetPorts and named policy
    ports; ``ready`` says whether the pod is an endpoint of its Services. Change either with
    :meth:`ClusterNetwork.update_pod` so the rules are rendered again.
    """

    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    netns: str
    hosts_file: Path
    resolv_conf: Path
    ports: dict[str, int] = field(default_factory=dict)
    ready: bool = True
    index: int = 0
    hostname: str = ""  # the pod spec's hostname (default: the pod's name)
    subdomain: str | None = None

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this pod's netns (``ip netns exec`` also binds its hosts file)."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> HttpResult:
        """One HTTP request made from inside this pod (names resolve through its hosts file)."""
        request = {
            "mode": "http",
            "url": url,
            "method": method,
            "body": base64.b64encode(body or b"").decode(),
            "headers": dict(headers or {}),
            "timeout": timeout,
        }
        out = self._call(request, timeout)
        return HttpResult(
            status=int(out["status"]), headers=out["headers"], body=base64.b64decode(out["body"])
        )

    def connect(self, host: str, port: int, *, timeout: float = 2.0) -> None:
        """Open (and close) a TCP connection from this pod; raises PodCallError if it fails."""
        self._call({"mode": "tcp", "host": host, "port": port, "timeout": timeout}, timeout)

    def can_connect(self, host: str, port: int, *, timeout: float = 1.0) -> bool:
        try:
            self.connect(host, port, timeout=timeout)
        except PodCallError:
            return False
        return True

    def _call(self, request: Obj, timeout: float) -> Obj:
        # The request goes in on stdin: argv caps one argument at 128 KiB, uploads are bigger.
        argv = self.exec_argv([sys.executable, "-I", "-S", "-c", _CALL_SCRIPT])
        try:
            done = subprocess.run(
                argv,
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=timeout + 10,
            )
        except subprocess.TimeoutExpired as exc:
            raise PodCallError("timeout", f"{request} from {self.netns}: no answer") from exc
        if done.returncode != 0 or not done.stdout.strip():
            raise NetworkError(f"call from {self.netns} failed: {done.stderr.strip()}")
        out: Obj = json.loads(done.stdout)
        if "error" in out:
            raise PodCallError(out["error"], f"{out['detail']} (from pod {self.name})")
        return out


# Run with `python -I -S -c` inside a pod's netns: stdlib only, JSON on stdin and on stdout.
_CALL_SCRIPT = r"""
import base64, errno, json, socket, sys, urllib.error, urllib.request
req = json.load(sys.stdin)
def kind(exc):
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "resolve"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "refused"
    if getattr(exc, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM):
        return "unreachable"
    return "error"
try:
    if req["mode"] == "tcp":
        socket.create_connection((req["host"], req["port"]), timeout=req["timeout"]).close()
        out = {"ok": True}
    else:
        r = urllib.request.Request(req["url"], method=req["method"], headers=req["headers"],
                                   data=base64.b64decode(req["body"]) or None)
        try:
            resp = urllib.request.urlopen(r, timeout=req["timeout"])
        except urllib.error.HTTPError as exc:
            resp = exc
        out = {"status": resp.status, "headers": dict(resp.headers.items()),
               "body": base64.b64encode(resp.read()).decode()}
except Exception as exc:
    out = {"error": kind(exc), "detail": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def run_in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a fresh thread that has joined ``netns`` (sockets it opens live there).

    Only the network namespace changes: names still resolve through the host's /etc/hosts,
    so pass IPs (PodNet.ip, ClusterNetwork.service_ip) or use PodNet.fetch for DNS names.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                error.append(OSError(err, f"setns({netns}): {os.strerror(err)}"))
                return
        finally:
            os.close(fd)
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def require_root() -> None:
    """Fail with what is needed when this process cannot build network namespaces."""
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        raise NetworkError(
            "the stand-in pod network needs root (ip netns, veth, a bridge, nftables)"
            + (
                f" and the tools {', '.join(missing)} (Debian iproute2, nftables)"
                if missing
                else ""
            )
            + f"; running as uid {os.geteuid()}"
        )


def _run(argv: list[str], *, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a file keeping its inode: bind mounts of it (ip netns exec, chroots) follow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        handle.seek(0)
        if handle.read() == text:
            return
        handle.seek(0)
        handle.truncate()
        handle.write(text)


def _netns_names() -> list[str]:
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()]


def _kill_netns_processes(netns: str) -> None:
    for pid in _run(["ip", "netns", "pids", netns], check=False).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def remove_leftovers(prefix: str) -> None:
    """Delete what one slot's prefix owns: netns (and processes in them), links, nft table."""
    for netns in _netns_names():
        if netns.startswith(f"{prefix}-"):
            _kill_netns_processes(netns)
            _run(["ip", "netns", "del", netns], check=False)
    _run(["ip", "link", "del", f"{prefix}-node"], check=False)
    _run(["nft", "delete", "table", "inet", prefix], check=False)
    for folder in NETNS_ETC.glob(f"{prefix}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _leftover_slots() -> set[int]:
    """Slots whose names exist now (ours, another live session's, or a dead run's)."""
    names = _netns_names() + [
        line.split(":")[1].strip().split("@")[0] for line in _run(["ip", "-o", "link"]).splitlines()
    ]
    names += [
        line.split()[-1] for line in _run(["nft", "list", "tables"]).splitlines() if line.strip()
    ]
    names += [p.name for p in NETNS_ETC.glob("mfk*")]
    return {int(m.group(1)) for n in names if (m := re.match(r"mfk(\d+)(-|$)", n))}


_OPEN: list[ClusterNetwork] = []
_OPEN_LOCK = threading.Lock()
_SIGTERM_BEFORE: list[Any] = []


def _opened(net: ClusterNetwork) -> None:
    """Track an open network: closed at interpreter exit, and on SIGTERM if nothing handles it."""
    with _OPEN_LOCK:
        if not _OPEN:
            atexit.register(_close_all)
            if threading.current_thread() is threading.main_thread():
                previous = signal.getsignal(signal.SIGTERM)
                if previous in (signal.SIG_DFL, None):
                    _SIGTERM_BEFORE.append(previous)
                    signal.signal(signal.SIGTERM, _exit_on_sigterm)
        _OPEN.append(net)


def _closed(net: ClusterNetwork) -> None:
    with _OPEN_LOCK:
        if net in _OPEN:
            _OPEN.remove(net)
        if not _OPEN:
            atexit.unregister(_close_all)
            if _SIGTERM_BEFORE and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, _SIGTERM_BEFORE.pop())


def _close_all() -> None:
    for net in list(_OPEN):
        net.close()


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name.lower())[:24].strip("-")


class ClusterNetwork:
    """Pods' network namespaces, their Services (hosts files + DNAT) and NetworkPolicies.

    A context manager: everything it made (netns, veths, bridge, nft tables, /etc/netns
    folders, processes still running in its pods' netns) is removed on exit, on interpreter
    exit and on SIGTERM.
    """

    def __init__(self, *, default_namespace: str = "default") -> None:
        self.default_namespace = default_namespace
        self.slot = -1
        self._lock: int | None = None
        self._pods: dict[tuple[str, str], PodNet] = {}
        self._services: list[Obj] = []
        self._policies: list[Obj] = []
        self._namespace_labels: dict[str, dict[str, str]] = {}
        self._cluster_ips: dict[tuple[str, str], str] = {}
        self._loaded: dict[str, str] = {}  # netns (or "host") -> ruleset text loaded there
        self._free = list(range(2, 255))
        self._mutex = threading.RLock()
        self._deferred = 0

    # --- names and addresses ---------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"mfk{self.slot}"

    @property
    def node_ip(self) -> str:
        """The host's address on the pod subnet (probes and the tests' clients come from it)."""
        return f"{BASE}.{self.slot}.1"

    @property
    def pod_cidr(self) -> str:
        return f"{BASE}.{self.slot}.0/24"

    @property
    def service_cidr(self) -> str:
        return f"{BASE}.{128 + self.slot}.0/24"

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def pods(self) -> list[PodNet]:
        return list(self._pods.values())

    def pod(self, name: str, namespace: str) -> PodNet:
        return self._pods[(namespace, name)]

    def service_ip(self, name: str, namespace: str | None = None) -> str:
        """The ClusterIP allocated to a Service given to :meth:`set_services`."""
        return self._cluster_ips[(namespace or self.default_namespace, name)]

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> ClusterNetwork:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        require_root()
        self._take_slot()
        _opened(self)
        try:
            sw, node = self.switch, f"{self.prefix}-node"
            _run(["ip", "netns", "add", sw])
            _run(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", sw, "link", "set", "br0", "up"])
            for knob in ("iptables", "ip6tables", "arptables"):
                bridge_nf = f"net.bridge.bridge-nf-call-{knob}=0"
                _run(["ip", "netns", "exec", sw, "sysctl", "-q", "-w", bridge_nf], check=False)
            _run(["ip", "link", "add", node, "type", "veth", "peer", "name", "up0", "netns", sw])
            _run(["ip", "-n", sw, "link", "set", "up0", "master", "br0", "up"])
            _run(["sysctl", "-q", "-w", f"net.ipv6.conf.{node}.disable_ipv6=1"], check=False)
            _run(["ip", "addr", "add", f"{self.node_ip}/24", "dev", node])
            _run(["ip", "link", "set", node, "up"])
            # The host's connections to ClusterIPs leave from node_ip (as a node's would).
            _run(["ip", "route", "add", self.service_cidr, "dev", node, "src", self.node_ip])
            self._render()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove everything this network made (idempotent)."""
        with self._mutex:
            if self._lock is None:
                return
            try:
                remove_leftovers(self.prefix)
            finally:
                os.close(self._lock)
                self._lock = None
                self._pods.clear()
                self._loaded.clear()
                _closed(self)

    def _take_slot(self) -> None:
        """Lock the first free slot; delete what dead runs left in any other free slot."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        routes = _run(["ip", "-4", "route", "show", "table", "all"]).splitlines()
        left = _leftover_slots()
        for slot in range(SLOTS):
            fd = os.open(STATE_DIR / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if slot in left:  # free, so whoever made these is gone
                remove_leftovers(f"mfk{slot}")
            ours = f"dev mfk{slot}-node"
            clash = any(
                ours not in line and _overlaps(_route_destination(line), slot) for line in routes
            )
            if self._lock is not None or clash:
                os.close(fd)
                continue
            self.slot, self._lock = slot, fd
        if self._lock is None:
            raise NetworkError(f"no free pod network slot in {STATE_DIR} ({SLOTS} in use or clash)")

    # --- pods ------------------------------------------------------------------------------

    def add_pod(
        self,
        name: str,
        namespace: str,
        labels: Mapping[str, str],
        ports: Mapping[str, int] | None = None,
        *,
        ready: bool = True,
        hostname: str | None = None,
        subdomain: str | None = None,
    ) -> PodNet:
        """A netns joined to the pod bridge, with an IP, a default route and its hosts file.

        ``hostname``/``subdomain`` are the pod spec's (a StatefulSet sets subdomain to its
        serviceName): with a headless Service of that name the pod is also
        ``<hostname>.<subdomain>.<namespace>.svc.cluster.local``.
        """
        with self._mutex:
            if self._lock is None:
                raise NetworkError("ClusterNetwork is not started (use it as a context manager)")
            if (namespace, name) in self._pods:
                raise NetworkError(f"pod {namespace}/{name} exists already")
            index = self._free.pop(0)
            netns = f"{self.prefix}-{index}-{_sanitize(name)}"
            folder = NETNS_ETC / netns
            pod = PodNet(
                name=name,
                namespace=namespace,
                labels=dict(labels),
                ip=f"{BASE}.{self.slot}.{index}",
                netns=netns,
                hosts_file=folder / "hosts",
                resolv_conf=folder / "resolv.conf",
                ports=dict(ports or {}),
                ready=ready,
                index=index,
                hostname=hostname or name,
                subdomain=subdomain,
            )
            port = f"p{index}"
            _run(["ip", "netns", "add", netns])
            self._pods[(namespace, name)] = pod
            veth = ["ip", "link", "add", "eth0", "netns", netns, "type", "veth"]
            _run([*veth, "peer", "name", port, "netns", self.switch])
            _run(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"])
            # As containerd does for every pod: unprivileged low ports and ping. IPv4 only.
            sysctls = [
                "net.ipv4.ip_unprivileged_port_start=0",
                "net.ipv4.ping_group_range=0 2147483647",
                "net.ipv6.conf.eth0.disable_ipv6=1",
            ]
            _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *sysctls])
            inside = [
                f"addr add {pod.ip}/24 dev eth0",
                "link set eth0 up",
                "link set lo up",
                f"route add default via {self.node_ip}",
            ]
            _run(["ip", "-n", netns, "-batch", "-"], stdin="\n".join(inside) + "\n")
            # No DNS server: a name missing from the hosts file fails at once, not after 5 s.
            _write_in_place(pod.resolv_conf, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            self._render()
            return pod

    def update_pod(
        self, pod: PodNet, *, ports: Mapping[str, int] | None = None, ready: bool | None = None
    ) -> None:
        """Change a pod's container ports or readiness and render the rules again."""
        with self._mutex:
            if ports is not None:
                pod.ports = dict(ports)
            if ready is not None:
                pod.ready = ready
            self._render()

    def remove_pod(self, pod: PodNet) -> None:
        """Delete a pod's netns (processes still in it are killed) and render the rest again."""
        with self._mutex:
            if self._pods.pop((pod.namespace, pod.name), None) is None:
                return
            _kill_netns_processes(pod.netns)
            _run(["ip", "-n", self.switch, "link", "del", f"p{pod.index}"], check=False)
            _run(["ip", "netns", "del", pod.netns], check=False)
            shutil.rmtree(NETNS_ETC / pod.netns, ignore_errors=True)
            self._loaded.pop(pod.netns, None)
            self._free.append(pod.index)
            self._render()

    # --- services and policies -------------------------------------------------------------

    def label_namespace(self, namespace: str, labels: Mapping[str, str]) -> None:
        """Labels of a namespace besides kubernetes.io/metadata.name (namespaceSelector)."""
        with self._mutex:
            self._namespace_labels.setdefault(namespace, {}).update(labels)
            self._render()

    def set_services(self, services: list[Obj], *, namespace: str | None = None) -> None:
        """Rendered v1 Services (all of them: the previous set is replaced).

        Objects without metadata.namespace belong to ``namespace`` (default: the network's
        default_namespace). ClusterIPs are allocated once per (namespace, name).
        """
        with self._mutex:
            self._services = [self._with_namespace(s, namespace) for s in services]
            for svc in self._services:
                key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
                if (
                    key not in self._cluster_ips
                    and (svc.get("spec") or {}).get("clusterIP") != "None"
                ):
                    self._cluster_ips[key] = (
                        f"{BASE}.{128 + self.slot}.{len(self._cluster_ips) + 1}"
                    )
            self._render()

    def apply_network_policies(self, policies: list[Obj], *, namespace: str | None = None) -> None:
        """Rendered networking.k8s.io/v1 NetworkPolicies (replace the previous set)."""
        with self._mutex:
            self._policies = [self._with_namespace(p, namespace) for p in policies]
            self._render()

    def cluster(self) -> netpol.Cluster:
        """The snapshot the rules are compiled from (for tests that inspect the compiler)."""
        return netpol.Cluster(
            pods=list(self._pods.values()),
            node_ip=self.node_ip,
            service_cidr=self.service_cidr,
            policies=list(self._policies),
            services=list(self._services),
            cluster_ips=dict(self._cluster_ips),
            namespace_labels={k: dict(v) for k, v in self._namespace_labels.items()},
            default_namespace=self.default_namespace,
        )

    def ruleset(self, pod: PodNet) -> str:
        """What ``nft list table inet kube`` shows in the pod's netns (for failure messages)."""
        return _run(pod.exec_argv(["nft", "list", "table", "inet", netpol.TABLE]), check=False)

    def _with_namespace(self, obj: Obj, namespace: str | None) -> Obj:
        meta = dict(obj.get("metadata") or {})
        meta.setdefault("namespace", namespace or self.default_namespace)
        return {**obj, "metadata": meta}

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Render the rules once at the end of the block instead of after every change.

        For adding many pods at once; a pod added inside the block gets its rules (and its
        hosts file) only when the block ends, so start nothing in it before that.
        """
        with self._mutex:
            self._deferred += 1
            try:
                yield
            finally:
                self._deferred -= 1
                if self._deferred == 0 and self._lock is not None:
                    self._render()

    def _render(self) -> None:
        """Load every pod's table and hosts file whose text changed, and the host's table."""
        if self._deferred:
            return
        cluster = self.cluster()
        ports = netpol.service_ports(cluster)
        host = "table inet {name} {{\n{body}\n}}\n".format(
            name=self.prefix, body="\n".join(netpol.service_chains(ports, self.service_cidr))
        )
        scripts: dict[str | None, str] = {None: netpol.replace_table(host, "inet", self.prefix)}
        for pod in cluster.pods:
            assert isinstance(pod, PodNet)
            _write_in_place(pod.hosts_file, netpol.hosts_file(cluster, pod))
            text = netpol.pod_ruleset(cluster, pod)
            scripts[pod.netns] = netpol.replace_table(text, "inet", netpol.TABLE)
        changed = {ns: t for ns, t in scripts.items() if self._loaded.get(ns or "host") != t}
        nft_apply_many(changed)
        for netns, text in changed.items():
            self._loaded[netns or "host"] = text


def nft_apply(text: str, netns: str | None = None) -> None:
    """Run an nft script in ``netns`` (None: the host's); raises NetworkError with the script."""
    nft_apply_many({netns: text})


def nft_apply_many(scripts: Mapping[str | None, str]) -> None:
    """Run nft scripts, one per netns (None: the host's), all at the same time.

    A commit that deletes anything waits for an RCU grace period (~14 ms here, whatever the
    size), and re-rendering swaps every pod's table: loading them one after another made
    starting 24 pods take 4.6 s. Commits in different netns do not wait for each other, so
    each script runs as its own ``ip netns exec NETNS nft -f -``, all at once. Each is a process
    of its own on purpose: libnftables (1.0.6) is not thread-safe, and calling it from several
    threads at once aborted the interpreter (seen in a make test run).
    """
    errors: dict[str | None, BaseException] = {}

    def load(netns: str | None, text: str) -> None:
        try:
            argv = ["nft", "-f", "-"]
            _run(argv if netns is None else ["ip", "netns", "exec", netns, *argv], stdin=text)
        except BaseException as exc:
            errors[netns] = exc

    threads = [
        threading.Thread(target=load, args=(netns, text), name=f"nft-{netns}")
        for netns, text in scripts.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        netns, exc = next(iter(errors.items()))
        raise NetworkError(
            f"nft in {netns or 'the host'}: {exc}\n--- ruleset ---\n{scripts[netns]}"
        ) from exc


_ROUTE_TYPES = ("unicast", "broadcast", "local", "unreachable", "blackhole", "prohibit", "anycast")


def _route_destination(line: str) -> str:
    words = line.split()
    return words[1] if words[0] in _ROUTE_TYPES and len(words) > 1 else words[0]


def _overlaps(destination: str, slot: int) -> bool:
    if destination == "default":
        return False
    try:
        net = ipaddress.ip_network(destination, strict=False)
    except ValueError:
        return False
    ours = (
        ipaddress.ip_network(f"{BASE}.{slot}.0/24"),
        ipaddress.ip_network(f"{BASE}.{128 + slot}.0/24"),
    )
    return any(net.overlaps(o) for o in ours)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def cluster_network(**kwargs: Any) -> Iterator[ClusterNetwork]:
    """``with cluster_network() as net:`` (same as ``with ClusterNetwork() as net:``)."""
    with ClusterNetwork(**kwargs) as net:
        yield net
