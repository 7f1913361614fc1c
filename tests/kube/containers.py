"""One container process of the kubelet stand-in: namespaces, mounts, user, then the command.

A container is ``ip netns exec <pod netns> unshare --mount --propagation private --pid --fork``
running a small shell script with absolute host tool paths: the image root bind-mounted on a
folder of the pod and remounted read-only when ``readOnlyRootFilesystem`` says so, /proc (its
own PID namespace), a read-only /sys, a minimal /dev (null, zero, full, random, urandom, tty,
a tmpfs /dev/shm), the pod's hosts file over /etc/hosts, the volume bind mounts (read-only ones
remounted so), then ``chroot --userspec=UID:GID --groups=...`` and ``env -C <workingDir>`` to
exec the argv with exactly the container's environment (it is the process environment of the
whole chain, so no secret is written to disk or into an argv).

A *host* container (the substitutes of third-party images, tests/kube/substitutes.py) runs a
host binary in the pod's network namespace as the pod's user (``setpriv``), with no mount
namespace of its own: its volume paths are rewritten to their host folders.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kube.volumes import Mount

UNSHARE = "/usr/bin/unshare"
NSENTER = "/usr/bin/nsenter"
SETPRIV = "/usr/bin/setpriv"
IP = "/usr/sbin/ip"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass
class ContainerRuntime:
    """How one container process is started (filled by the kubelet from the pod spec)."""

    name: str
    netns: str
    argv: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    groups: list[int]
    log: Path
    # Image containers:
    image_root: Path | None = None
    mount_point: Path | None = None
    read_only_root: bool = False
    working_dir: str = "/"
    hosts_file: Path | None = None
    resolv_conf: Path | None = None
    mounts: list[Mount] = field(default_factory=list)


def _q(path: str | Path) -> str:
    return shlex.quote(str(path))


def in_root(image_root: Path, path: str) -> str:
    """``path`` inside the image with its symlinks resolved *within* the image (as a runtime
    does: /var/run -> /run must not lead to the host's /run), relative to the root."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        if part == ".":
            continue
        candidate = image_root.joinpath(*resolved, part)
        if candidate.is_symlink() and hops < 40:
            hops += 1
            link = str(candidate.readlink())
            if link.startswith("/"):
                resolved = []
            parts = [p for p in link.split("/") if p] + parts
            continue
        resolved.append(part)
    return "/".join(resolved)


def container_script(rt: ContainerRuntime) -> str:
    """The shell script run inside the new mount and PID namespaces."""
    assert rt.image_root is not None and rt.mount_point is not None
    root = rt.mount_point
    image_root = rt.image_root
    lines = ["set -eu", f"/usr/bin/mount --bind {_q(rt.image_root)} {_q(root)}"]

    def target(path: str) -> Path:
        return root / in_root(image_root, path)

    def ensure(path: str, is_file: bool) -> str:
        t = _q(target(path))
        if is_file:
            make = f"/usr/bin/mkdir -p $(/usr/bin/dirname {t}) && /usr/bin/touch {t}"
        else:
            make = f"/usr/bin/mkdir -p {t}"
        return f"[ -e {t} ] || {{ {make}; }}"

    # Mount points are made in the image root before it turns read-only (as runtimes do).
    for path in ("/proc", "/sys", "/dev", "/tmp"):
        lines.append(ensure(path, False))
    lines.append(ensure("/etc/hosts", True))
    lines.append(ensure("/etc/resolv.conf", True))
    for m in rt.mounts:
        lines.append(ensure(m.target, m.is_file) + " 2>/dev/null || true")
    if rt.read_only_root:
        lines.append(f"/usr/bin/mount -o remount,bind,ro {_q(root)}")
    lines += [
        f"/usr/bin/mount -t proc -o nosuid,nodev,noexec proc {_q(target('/proc'))}",
        f"/usr/bin/mount -t sysfs -o ro,nosuid,nodev,noexec sysfs {_q(target('/sys'))}",
        f"/usr/bin/mount -t tmpfs -o nosuid,mode=755,size=1m tmpfs {_q(target('/dev'))}",
    ]
    dev_dir = root / in_root(image_root, "/dev")  # a tmpfs of ours from here on

    def target_dev(name: str) -> Path:
        return dev_dir / name

    for dev in DEVICES:
        t = _q(target_dev(dev))
        lines.append(f"/usr/bin/touch {t} && /usr/bin/mount --bind /dev/{dev} {t}")
    lines += [
        f"/usr/bin/mkdir -p {_q(target_dev('shm'))} {_q(target_dev('pts'))}",
        f"/usr/bin/mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m shm {_q(target_dev('shm'))}",
        f"/usr/bin/ln -s /proc/self/fd {_q(target_dev('fd'))}",
        f"/usr/bin/ln -s /proc/self/fd/0 {_q(target_dev('stdin'))}",
        f"/usr/bin/ln -s /proc/self/fd/1 {_q(target_dev('stdout'))}",
        f"/usr/bin/ln -s /proc/self/fd/2 {_q(target_dev('stderr'))}",
    ]
    for source, path in ((rt.hosts_file, "/etc/hosts"), (rt.resolv_conf, "/etc/resolv.conf")):
        if source is not None:
            t = _q(target(path))
            lines.append(f"/usr/bin/mount --bind {_q(source)} {t}")
            lines.append(f"/usr/bin/mount -o remount,bind,ro {t}")
    for m in rt.mounts:
        t = _q(target(m.target))
        lines.append(ensure(m.target, m.is_file))
        lines.append(f"/usr/bin/mount --bind {_q(m.source)} {t}")
        if m.read_only:
            lines.append(f"/usr/bin/mount -o remount,bind,ro {t}")
    groups = ",".join(str(g) for g in [rt.gid, *rt.groups])
    argv = " ".join(_q(a) for a in rt.argv)
    lines.append(
        f"exec /usr/sbin/chroot --userspec={rt.uid}:{rt.gid} --groups={groups} {_q(root)} "
        f"/usr/bin/env -C {_q(rt.working_dir)} {argv}"
    )
    return "\n".join(lines) + "\n"


def host_argv(rt: ContainerRuntime) -> list[str]:
    """argv of a host container: the binary as the pod's user in the pod's netns."""
    groups = ",".join(str(g) for g in [rt.gid, *rt.groups])
    user = [SETPRIV, f"--reuid={rt.uid}", f"--regid={rt.gid}", f"--groups={groups}", "--"]
    return [IP, "netns", "exec", rt.netns, *user, *rt.argv]


class ContainerProcess:
    """A started container (image or host); stop() ends its whole process group."""

    def __init__(self, rt: ContainerRuntime) -> None:
        self.rt = rt
        rt.log.parent.mkdir(parents=True, exist_ok=True)
        log = rt.log.open("ab")
        if rt.image_root is not None:
            assert rt.mount_point is not None
            rt.mount_point.mkdir(parents=True, exist_ok=True)
            argv = [IP, "netns", "exec", rt.netns, UNSHARE, "--mount", "--propagation",
                    "private", "--pid", "--fork", "--kill-child", "/bin/sh", "-c",
                    container_script(rt)]  # fmt: skip
        else:
            argv = host_argv(rt)
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            argv,
            env=rt.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
        )
        log.close()

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def main_pid(self) -> int | None:
        """The container's own process (PID 1 of its PID namespace), for exec probes."""
        if self.rt.image_root is None:
            return self.popen.pid
        try:
            children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text()
        except OSError:
            return None
        pids = children.split()
        return int(pids[0]) if pids else None

    def exec_argv(self, argv: list[str]) -> list[str]:
        """argv running a command inside this container (an exec probe), as its user."""
        if self.rt.image_root is None:
            return host_argv(ContainerRuntime(**{**self.rt.__dict__, "argv": argv}))
        pid = self.main_pid()
        if pid is None:
            raise ProcessLookupError(f"container {self.rt.name} has no process")
        return [NSENTER, "-t", str(pid), "-m", "-n", "-p", "-r", "-w",
                "-S", str(self.rt.uid), "-G", str(self.rt.gid), "--", *argv]  # fmt: skip

    def stop(self, grace_s: float = 5.0) -> int | None:
        if self.popen.poll() is not None:
            return self.popen.returncode
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                return self.popen.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        return self.popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.rt.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
