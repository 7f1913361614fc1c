"""Container probes of the kubelet stand-in, as a kubelet runs them.

``httpGet`` from the node (the host side of the cluster network, as a kubelet's prober does:
a status in 200-399 passes), ``tcpSocket`` (a connect), ``exec`` (the command inside the
container: its mount, network and PID namespaces and its user; exit 0 passes). Timing:
``initialDelaySeconds``, ``periodSeconds`` (10), ``timeoutSeconds`` (1), ``failureThreshold``
(3), ``successThreshold`` (1) with Kubernetes' defaults; startup gates readiness and liveness.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass
class ProbeState:
    """Schedule and counters of one probe of one container."""

    kind: str  # startup, readiness, liveness
    spec: Obj
    next_at: float
    failures: int = 0
    successes: int = 0
    last: str = ""

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def failure_threshold(self) -> int:
        return int(self.spec.get("failureThreshold", 3))

    @property
    def success_threshold(self) -> int:
        return int(self.spec.get("successThreshold", 1))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds", 1))


def resolve_port(port: int | str, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"container {container['name']}: no port named {port}")


def run_probe(
    spec: Obj,
    *,
    container: Obj,
    pod_ip: str,
    exec_argv: Callable[[list[str]], list[str]],
    env: dict[str, str],
) -> tuple[bool, str]:
    """One probe attempt: (passed, what happened)."""
    timeout = float(spec.get("timeoutSeconds", 1))
    if "httpGet" in spec:
        get = spec["httpGet"]
        port = resolve_port(get["port"], container)
        host = get.get("host") or pod_ip
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            conn.request("GET", get.get("path", "/"), headers=headers)
            status = conn.getresponse().status
        except OSError as exc:
            return False, f"GET :{port}{get.get('path', '/')}: {type(exc).__name__} {exc}"
        finally:
            conn.close()
        return 200 <= status < 400, f"GET :{port}{get.get('path', '/')}: {status}"
    if "tcpSocket" in spec:
        port = resolve_port(spec["tcpSocket"]["port"], container)
        try:
            with socket.create_connection((pod_ip, port), timeout=timeout):
                return True, f"tcp :{port}: open"
        except OSError as exc:
            return False, f"tcp :{port}: {exc}"
    if "exec" in spec:
        argv = exec_argv([str(a) for a in spec["exec"]["command"]])
        try:
            done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False, f"exec {spec['exec']['command'][0]}: timed out"
        except ProcessLookupError as exc:
            return False, str(exc)
        tail = (done.stdout + done.stderr).decode(errors="replace").strip()[-200:]
        return done.returncode == 0, f"exec exit {done.returncode}: {tail}"
    raise ValueError(f"unsupported probe {sorted(spec)}")
