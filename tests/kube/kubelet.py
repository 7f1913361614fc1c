"""A STAND-IN FOR A KUBELET: runs the pod specs the chart renders on this machine, for tests.

No cluster and no container runtime can run here (OCI runtimes cannot set rlimits in this
sandbox), but everything a kubelet does to a pod is standard Linux: this module does it with
iproute2, util-linux and coreutils, as root, for the tests of tests/kube. Per pod: a network
namespace from tests/kube/network.py (``ClusterNetwork.add_pod``: pod IP, the Services' names
in its hosts file, the NetworkPolicies in nftables); volumes as host folders
(tests/kube/volumes.py); the init containers one after the other, each to exit 0, then the
containers, each in its own mount and PID namespace on the image's root (tests/kube/containers.py)
with the user, groups, argv and environment the spec gives (tests/kube/podspec.py); startup,
readiness and liveness probes as declared (tests/kube/probes.py); restartPolicy (Always:
restart with CrashLoopBackOff's doubling delay; Never: the exit code is the result; OnFailure);
the Job controller's retries (``backoffLimit``) and ``activeDeadlineSeconds``.

Images: the chart's ``modelfleet`` and ``modelfleet-model-builder`` repositories are the images
built from the Dockerfile (tests/kube/images.py). The ONE substitution: the third-party images
(pgvector Postgres, NATS, NGC Triton) cannot be pulled here, so their containers run the local
stack's real servers as host processes in the pod's network namespace, as the pod's user, on the
chart's ports (tests/kube/substitutes.py). Any other image is ErrImagePull.

Not emulated: scheduling, image pulls, cgroups (resources), seccomp/capabilities, the API
server (only a fake of the Jobs API, tests/kube/apiserver.py), Service environment links,
kube-proxy beyond what the network helper does. See docs/kubelet-standin.md.

    kubelet = Kubelet(network=net, objects=objects, images=catalog, claims=claims, state_dir=d)
    pod = kubelet.start_pod(workload)
    pod.wait_ready(timeout_s=300)
    result = kubelet.run_job(job_workload, timeout_s=600)
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.kube.containers import ContainerProcess, ContainerRuntime
from tests.kube.podspec import (
    ClusterObjects,
    CreateContainerConfigError,
    ErrImagePull,
    PodIdentity,
    Workload,
    container_argv,
    container_env,
)
from tests.kube.probes import ProbeState, run_probe
from tests.kube.volumes import ClaimStore, Volume, container_mounts, prepare_volumes

Obj = dict[str, Any]
NODE_NAME = "standin-node"
TICK_S = 0.1


# -- what the kubelet needs from the other helpers ------------------------------------------


class PodNetLike(Protocol):
    ip: str
    netns: str
    hosts_file: Path


class NetworkLike(Protocol):
    @property
    def node_ip(self) -> str: ...

    def add_pod(
        self,
        name: str,
        namespace: str,
        labels: dict[str, str],
        ports: dict[str, int] | None = None,
        *,
        ready: bool = True,
    ) -> Any: ...

    def update_pod(self, pod: Any, *, ready: bool | None = None) -> None: ...


class LocalImage:
    """An image of the local containers storage: its mounted root and its OCI config.

    The root is a buildah working container of the kubelet's own (``kubelet-standin-...``),
    mounted again (or made again) whenever its mount has gone, e.g. after a rebuild of the
    image removed it.
    """

    def __init__(self, name: str, *, root: Path | None = None) -> None:
        self.name = name
        self.container = "kubelet-standin-" + re.sub(r"[^a-zA-Z0-9-]", "-", name)
        self._root = root
        self._fixed = root is not None
        self._lock = threading.Lock()
        self.config: Obj = {} if root is not None else image_config(name)

    @property
    def root(self) -> Path:
        with self._lock:
            if self._root is None or not (self._root / "usr").is_dir():
                if self._fixed:
                    raise ErrImagePull(f"image root {self._root} is gone")
                self._root = self._mount()
            return self._root

    def _mount(self) -> Path:
        exists = subprocess.run(["buildah", "inspect", "--type", "container", self.container],
                                capture_output=True, check=False).returncode == 0  # fmt: skip
        if not exists:
            subprocess.run(["buildah", "from", "--pull=never", "--name", self.container,
                            self.name], capture_output=True, check=True)  # fmt: skip
        out = subprocess.run(["buildah", "mount", self.container], capture_output=True,
                             check=True, text=True).stdout  # fmt: skip
        return Path(out.strip())

    def release(self) -> None:
        """Unmount and remove the working container (at the end of the session)."""
        if self._fixed:
            return
        subprocess.run(["buildah", "umount", self.container], capture_output=True, check=False)
        subprocess.run(["buildah", "rm", self.container], capture_output=True, check=False)

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.config.get("Env") or [] if "=" in e)


class Substitute(Protocol):
    """A third-party image's container run as a host process (tests/kube/substitutes.py)."""

    name: str
    image_config: Obj

    def host_command(
        self, *, container: Obj, argv: list[str], env: dict[str, str], mounts: dict[str, Path]
    ) -> tuple[list[str], dict[str, str]]: ...

    def prepare(
        self, *, env: dict[str, str], mounts: dict[str, Path], uid: int, gid: int
    ) -> None: ...

    def exec_command(self, argv: list[str]) -> list[str]: ...

    def run_as(self, uid: int, gid: int) -> tuple[int, int]: ...


ImageCatalog = Callable[[str], "LocalImage | Substitute"]


def image_config(image: str) -> Obj:
    """The OCI config of a local image (``buildah inspect``)."""
    out = subprocess.run(
        ["buildah", "inspect", "--type", "image", image], capture_output=True, check=True
    ).stdout
    return dict(json.loads(out)["OCIv1"].get("config") or {})


# -- status --------------------------------------------------------------------------------


@dataclass
class ContainerStatus:
    name: str
    init: bool
    started_at: float | None = None
    finished_at: float | None = None
    ready: bool = False
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    last_probe: str = ""
    reason: str = ""
    process: ContainerProcess | None = None
    substitute: Substitute | None = None

    @property
    def terminated(self) -> bool:
        return self.process is not None and self.process.poll() is not None


@dataclass
class JobResult:
    """What the Job controller reports: one pod per attempt, their exit codes."""

    name: str
    succeeded: bool
    exit_codes: list[int]
    reason: str
    pods: list[PodRun]
    duration_s: float

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.pods)


class PodRun:
    """One pod: its thread, its containers and its status (phase, reason, Ready)."""

    def __init__(self, kubelet: Kubelet, workload: Workload, name: str) -> None:
        self.kubelet = kubelet
        self.workload = workload
        self.name = name
        self.spec = workload.pod_spec
        self.created_at = time.monotonic()
        self.ready_at: float | None = None
        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.dir = kubelet.state_dir / "pods" / name
        self.statuses: dict[str, ContainerStatus] = {}
        self.net: Any = None
        self.identity: PodIdentity | None = None
        self.volumes: dict[str, Volume] = {}
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._main = threading.Thread(target=self._run, name=f"pod-{name}", daemon=True)

    # -- public ----------------------------------------------------------------------------
    @property
    def restart_policy(self) -> str:
        default = "Never" if self.workload.runs_to_completion else "Always"
        return str(self.spec.get("restartPolicy", default))

    @property
    def ready(self) -> bool:
        main = [s for s in self.statuses.values() if not s.init]
        return bool(main) and all(s.ready for s in main) and self.phase == "Running"

    @property
    def ready_after_s(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.created_at

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready:
            if self.finished or time.monotonic() > deadline:
                raise AssertionError(f"pod {self.name} not ready after {timeout_s:.0f} s: "
                                     f"{self.describe()}")  # fmt: skip
            time.sleep(0.2)

    def wait_finished(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def exit_code(self) -> int | None:
        codes = [s.exit_codes[-1] for s in self.statuses.values() if not s.init and s.exit_codes]
        if not codes:
            return None
        return next((c for c in codes if c != 0), 0)

    def container(self, name: str) -> ContainerProcess:
        process = self.statuses[name].process
        assert process is not None, f"container {name} of {self.name} never started"
        return process

    def exec(
        self,
        container: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        timeout_s: float = 60,
    ) -> subprocess.CompletedProcess[bytes]:
        """``kubectl exec``: a command inside a running container, as its user."""
        process = self.container(container)
        substitute = self.statuses[container].substitute
        if substitute is not None:
            argv = substitute.exec_command(argv)
        return subprocess.run(
            process.exec_argv(argv), env={**process.rt.env, **(env or {})},
            capture_output=True, timeout=timeout_s, check=False,
        )  # fmt: skip

    def describe(self) -> str:
        parts = [f"phase={self.phase}"]
        if self.reason:
            parts.append(f"reason={self.reason}: {self.message}")
        for s in self.statuses.values():
            parts.append(
                f"[{'init ' if s.init else ''}{s.name} ready={s.ready} restarts={s.restarts} "
                f"exits={s.exit_codes} probe={s.last_probe!r} {s.reason}]"
            )
        return " ".join(parts) + "\n" + self.logs(lines=25)

    def logs(self, lines: int = 40) -> str:
        out = []
        for s in self.statuses.values():
            if s.process is not None:
                out.append(f"--- {self.name}/{s.name} ---\n{s.process.log_tail(lines)}")
        return "\n".join(out)

    def stop(self) -> None:
        self._stopping.set()
        for s in list(self.statuses.values()):
            if s.process is not None:
                s.process.stop()
        for t in self._threads:
            t.join(timeout=15)
        self._main.join(timeout=15)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._main.start()

    def _fail(self, reason: str, message: str) -> None:
        self.phase, self.reason, self.message = "Failed", reason, message
        self._done.set()

    def _run(self) -> None:
        try:
            self._setup()
            for c in self.spec.get("initContainers") or []:
                status = self.statuses[c["name"]]
                code = self._run_init(c, status)
                if code != 0:
                    return self._fail("Init:Error", f"init container {c['name']} exited {code}")
                if self._stopping.is_set():
                    return self._fail("Stopped", "stopped during init")
            self.phase = "Running"
            for c in self.spec["containers"]:
                t = threading.Thread(
                    target=self._supervise, args=(c,), name=f"{self.name}/{c['name']}", daemon=True
                )
                self._threads.append(t)
                t.start()
            for t in self._threads:
                t.join()
            if not self.finished:
                last = self.exit_code()
                self.phase = "Succeeded" if last == 0 else "Failed"
                if last:
                    self.reason, self.message = "Error", f"exit code {last}"
        except (CreateContainerConfigError, ErrImagePull) as exc:
            self._fail(exc.reason, str(exc))
        except Exception as exc:
            self._fail("StandInError", f"{type(exc).__name__}: {exc}")
        finally:
            self._done.set()

    def _setup(self) -> None:
        kubelet = self.kubelet
        for c in self.spec.get("initContainers") or []:
            self.statuses[c["name"]] = ContainerStatus(c["name"], init=True)
        for c in self.spec["containers"]:
            self.statuses[c["name"]] = ContainerStatus(c["name"], init=False)
        ports = {
            p["name"]: int(p["containerPort"])
            for c in self.spec["containers"] for p in c.get("ports") or [] if p.get("name")
        }  # fmt: skip
        # Not an endpoint of its Services until Ready (as the endpoints controller does).
        self.net = kubelet.network.add_pod(
            self.name, kubelet.objects.namespace, self.workload.labels, ports, ready=False
        )
        self.identity = PodIdentity(
            name=self.name,
            namespace=kubelet.objects.namespace,
            uid=str(uuid.uuid4()),
            labels=self.workload.labels,
            annotations={},
            service_account=str(self.spec.get("serviceAccountName", "default")),
            node_name=NODE_NAME,
            pod_ip=self.net.ip,
            host_ip=kubelet.network.node_ip,
        )
        self.volumes = prepare_volumes(
            pod_dir=self.dir,
            pod_spec=self.spec,
            identity=self.identity,
            objects=kubelet.objects,
            claims=kubelet.claims,
            claim_templates=self.workload.claim_templates,
            workload=self.workload.name,
        )

    def _runtime(self, c: Obj) -> tuple[ContainerRuntime, Substitute | None]:
        """Everything a container start needs; raises CreateContainerConfigError/ErrImagePull."""
        assert self.identity is not None
        kubelet = self.kubelet
        image = kubelet.images(str(c["image"]))
        local = image if isinstance(image, LocalImage) else None
        pod_sc = self.spec.get("securityContext") or {}
        sc = {**pod_sc, **(c.get("securityContext") or {})}
        env = container_env(
            self.identity, c, kubelet.objects,
            image_env=local.env if local else {}, injected=kubelet.injected_env,
        )  # fmt: skip
        config = local.config if local else image.image_config  # type: ignore[union-attr]
        argv = container_argv(c, config, env)
        image_user = str((local.config.get("User") if local else "") or "0")
        uid = int(sc.get("runAsUser", image_user.split(":")[0] or 0))
        default_gid = image_user.split(":")[1] if ":" in image_user else "0"
        gid = int(sc.get("runAsGroup", default_gid))
        if sc.get("runAsNonRoot") and uid == 0:
            raise CreateContainerConfigError(
                f"container {c['name']} has runAsNonRoot and image will run as root"
            )
        groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
        if "fsGroup" in pod_sc:
            groups.append(int(pod_sc["fsGroup"]))
        mounts = container_mounts(c, self.volumes)
        log = self.dir / "logs" / f"{c['name']}.log"
        if local is not None:
            rt = ContainerRuntime(
                name=c["name"], netns=self.net.netns, argv=argv, env=env, uid=uid, gid=gid,
                groups=groups, log=log, image_root=local.root,
                mount_point=self.dir / "rootfs" / c["name"],
                read_only_root=bool(sc.get("readOnlyRootFilesystem")),
                working_dir=str(c.get("workingDir") or local.config.get("WorkingDir") or "/"),
                hosts_file=Path(self.net.hosts_file), mounts=mounts,
                resolv_conf=getattr(self.net, "resolv_conf", None),
            )  # fmt: skip
            return rt, None
        assert not isinstance(image, LocalImage)
        by_path = {m.target: m.source for m in mounts}
        image.prepare(env=env, mounts=by_path, uid=uid, gid=gid)
        host_argv, host_env = image.host_command(container=c, argv=argv, env=env, mounts=by_path)
        uid, gid = image.run_as(uid, gid)
        rt = ContainerRuntime(name=c["name"], netns=self.net.netns, argv=host_argv, env=host_env,
                              uid=uid, gid=gid, groups=groups, log=log)  # fmt: skip
        return rt, image

    def _run_init(self, c: Obj, status: ContainerStatus) -> int:
        rt, _ = self._runtime(c)
        status.process = ContainerProcess(rt)
        status.started_at = time.monotonic()
        while (code := status.process.poll()) is None:
            if self._stopping.wait(0.2):
                status.process.stop()
        status.exit_codes.append(code)
        status.finished_at = time.monotonic()
        return code

    def _supervise(self, c: Obj) -> None:
        status = self.statuses[c["name"]]
        policy = self.restart_policy
        while not self._stopping.is_set():
            try:
                rt, substitute = self._runtime(c)
            except (CreateContainerConfigError, ErrImagePull) as exc:
                status.reason = exc.reason
                self._fail(exc.reason, str(exc))
                return
            except Exception as exc:
                status.reason = "StandInError"
                self._fail("StandInError", f"{type(exc).__name__}: {exc}")
                return
            process = ContainerProcess(rt)
            status.process, status.started_at = process, time.monotonic()
            status.substitute = substitute
            killed_by = self._probe_loop(c, status, process, substitute)
            code = process.wait()
            self._set_ready(status, False)
            status.exit_codes.append(code)
            status.reason = killed_by or f"exited {code}"
            if (
                self._stopping.is_set()
                or policy == "Never"
                or (policy == "OnFailure" and code == 0)
            ):
                return
            status.restarts += 1
            backoff = min(10.0 * 2 ** (status.restarts - 1), 300.0)
            status.reason += f"; CrashLoopBackOff {backoff:.0f} s"
            if self._stopping.wait(backoff):
                return

    def _probe_loop(
        self, c: Obj, status: ContainerStatus, process: ContainerProcess, sub: Substitute | None
    ) -> str:
        """Probe until the container exits; kill it when startup or liveness fails."""
        now = time.monotonic()
        probes = {
            kind: ProbeState(kind, c[f"{kind}Probe"],
                             next_at=now + float(c[f"{kind}Probe"].get("initialDelaySeconds", 0)))
            for kind in ("startup", "readiness", "liveness") if c.get(f"{kind}Probe")
        }  # fmt: skip
        started = "startup" not in probes
        if "readiness" not in probes and started:
            self._set_ready(status, True)
        exec_argv = (lambda a: process.exec_argv(sub.exec_command(a))) if sub else process.exec_argv
        while process.poll() is None:
            if self._stopping.wait(TICK_S):
                return "stopped"
            now = time.monotonic()
            for kind, state in probes.items():
                if now < state.next_at or (kind != "startup" and not started):
                    continue
                if kind == "startup" and started:
                    continue
                ok, what = run_probe(state.spec, container=c, pod_ip=self.net.ip,
                                     exec_argv=exec_argv, env=process.rt.env)  # fmt: skip
                state.next_at = time.monotonic() + state.period
                state.last = what
                status.last_probe = f"{kind}: {what}"
                if ok:
                    state.successes, state.failures = state.successes + 1, 0
                else:
                    state.failures, state.successes = state.failures + 1, 0
                if kind == "startup":
                    if ok:
                        started = True
                        if "readiness" not in probes:
                            self._set_ready(status, True)
                        for other in probes.values():
                            other.next_at = max(other.next_at, time.monotonic())
                    elif state.failures >= state.failure_threshold:
                        process.stop(grace_s=2)
                        return f"startup probe failed: {what}"
                elif kind == "readiness":
                    if ok and state.successes >= state.success_threshold:
                        self._set_ready(status, True)
                    elif not ok and state.failures >= state.failure_threshold:
                        self._set_ready(status, False)
                elif kind == "liveness" and not ok and state.failures >= state.failure_threshold:
                    process.stop(grace_s=2)
                    return f"liveness probe failed: {what}"
        return ""

    def _set_ready(self, status: ContainerStatus, ready: bool) -> None:
        with self._lock:
            was = self.ready
            status.ready = ready
            if self.ready and self.ready_at is None:
                self.ready_at = time.monotonic()
            if self.ready != was:
                self.kubelet.network.update_pod(self.net, ready=self.ready)


class Kubelet:
    """Runs pods of one namespace on this machine (see the module docstring)."""

    def __init__(
        self,
        *,
        network: NetworkLike,
        objects: ClusterObjects,
        images: ImageCatalog,
        claims: ClaimStore,
        state_dir: Path,
        injected_env: dict[str, str] | None = None,
    ) -> None:
        self.network = network
        self.objects = objects
        self.images = images
        self.claims = claims
        self.state_dir = state_dir
        self.injected_env = dict(injected_env or {})
        self.pods: list[PodRun] = []
        self.jobs_run: set[str] = set()  # Jobs from the API already run
        self._names: set[str] = set()

    def _pod_name(self, workload: Workload) -> str:
        if workload.kind == "StatefulSet":
            name = f"{workload.name}-0"
        elif workload.kind == "Pod":
            name = workload.name
        else:
            name = f"{workload.name}-{uuid.uuid4().hex[:5]}"
        while name in self._names:
            name = f"{workload.name}-{uuid.uuid4().hex[:5]}"
        self._names.add(name)
        return name

    def start_pod(self, workload: Workload, *, name: str | None = None) -> PodRun:
        pod = PodRun(self, workload, name or self._pod_name(workload))
        self.pods.append(pod)
        pod.start()
        return pod

    def run_job(self, workload: Workload, *, timeout_s: float) -> JobResult:
        """The Job controller: a pod per attempt until one succeeds or backoffLimit is spent."""
        job = workload.job_spec or {}
        attempts = int(job.get("backoffLimit", 6)) + 1 if workload.job_spec is not None else 1
        deadline_s = min(float(job.get("activeDeadlineSeconds", timeout_s)), timeout_s)
        started = time.monotonic()
        pods: list[PodRun] = []
        codes: list[int] = []
        reason = ""
        for _ in range(attempts):
            pod = self.start_pod(workload)
            pods.append(pod)
            left = deadline_s - (time.monotonic() - started)
            if not pod.wait_finished(max(left, 0)):
                pod.stop()
                reason = "DeadlineExceeded"
                break
            code = pod.exit_code()
            codes.append(code if code is not None else -1)
            if pod.phase == "Succeeded":
                return JobResult(workload.name, True, codes, "Complete", pods,
                                 time.monotonic() - started)  # fmt: skip
            reason = f"{pod.reason}: {pod.message}" if pod.reason else "BackoffLimitExceeded"
        return JobResult(workload.name, False, codes, reason, pods, time.monotonic() - started)

    def stop_all(self) -> None:
        for pod in reversed(self.pods):
            pod.stop()


@contextlib.contextmanager
def running(kubelet: Kubelet) -> Iterator[Kubelet]:
    try:
        yield kubelet
    finally:
        kubelet.stop_all()
