"""Triton Inference Server 2.51 of the local stack, from the PyPI `nvidia-pytriton` wheel.

The server tree in `pytriton/tritonserver` is copied once into `$HOME/triton/` together with
the Python backend stub built for the running Python. Triton runs in explicit model-control
mode and loads every model folder of `$HOME/model-repository` (folders with a config.pbtxt),
reading `configs/local.pbtxt` where present (`--model-config-name local`). Readiness is probed
per model, since the server-wide probe answers 400 during any reload. Stopping reaps the Python
stubs that outlive a killed server and removes the shared-memory regions they leave behind.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from services.stack import procs
from services.stack.component import ComponentFailed, ProcessComponent
from services.stack.runfiles import RunRecord
from services.stack.settings import StackSettings

log = logging.getLogger("modelfleet.stack")

STUB_NAME = "triton_python_backend_stub"
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"


def pytriton_server_tree() -> tuple[Path, Path]:
    """(`pytriton/tritonserver`, `nvidia_pytriton.libs`) of the installed wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ComponentFailed(
            "package nvidia-pytriton is not installed (pip install 'modelfleet[local]')"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    return package / "tritonserver", package.parent / "nvidia_pytriton.libs"


def list_models(repository: Path) -> list[str]:
    """Names of the model folders (those holding a config.pbtxt) of a model repository."""
    if not repository.is_dir():
        return []
    return sorted(p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file())


class Triton(ProcessComponent):
    """tritonserver with HTTP, gRPC and metrics on the settings' ports."""

    name = "triton"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self._models: list[str] | None = None
        self._shm_regions: set[str] = set()

    # -- URLs and ports -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.settings.triton_grpc_url

    @property
    def extra_urls(self) -> dict[str, str]:
        return {"http": self.settings.triton_http_url, "metrics": self.settings.triton_metrics_url}

    @property
    def ports(self) -> dict[str, int]:
        return {
            "triton_http_port": self.settings.triton_http_port,
            "triton_grpc_port": self.settings.triton_grpc_port,
            "triton_metrics_port": self.settings.triton_metrics_port,
        }

    @property
    def startup_timeout(self) -> float:
        return self.settings.triton_startup_timeout

    @property
    def models(self) -> list[str]:
        """Models loaded at start (from the run file when another process started Triton)."""
        if self._models is None:
            record = self.record()
            if record is not None and isinstance(record.meta.get("models"), list):
                self._models = [str(m) for m in record.meta["models"]]
            else:
                self._models = list_models(self.paths.model_repository)
        return self._models

    @property
    def stub_path(self) -> Path:
        """The Python backend stub inside this home's private server tree."""
        return self.paths.triton_root / "backends" / "python" / STUB_NAME

    # -- start ----------------------------------------------------------------------------
    def prepare(self) -> None:
        self._install_server_tree()
        self.paths.model_repository.mkdir(parents=True, exist_ok=True)
        self._models = list_models(self.paths.model_repository)
        if not self._models:
            log.warning("triton: no model in %s; starting it empty", self.paths.model_repository)

    def _install_server_tree(self) -> None:
        """Copy the server tree and the stub for this Python once (again after an upgrade)."""
        source, _ = pytriton_server_tree()
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = source / "python_backend_stubs" / python / STUB_NAME
        if not stub.is_file():
            raise ComponentFailed(f"nvidia-pytriton ships no Python backend stub for {python}")
        stamp = (
            f"{source}\nnvidia-pytriton {importlib.metadata.version('nvidia-pytriton')}\n"
            f"python {python}\n"
        )
        root = self.paths.triton_root
        marker = root / ".installed-from"
        if marker.is_file() and marker.read_text() == stamp:
            return
        staging = root.with_name(root.name + ".copying")
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(
            source, staging, symlinks=True, ignore=shutil.ignore_patterns("python_backend_stubs")
        )
        shutil.copy2(stub, staging / "backends" / "python" / STUB_NAME)
        (staging / ".installed-from").write_text(stamp)
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
        log.info("triton: installed the server tree into %s", root)

    def environment(self) -> dict[str, str]:
        _, libs = pytriton_server_tree()
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p
        )
        # The stub finds the venv's numpy/onnxruntime through the first python on PATH.
        env["PATH"] = os.pathsep.join(
            p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p
        )
        return env

    def command(self) -> list[str]:
        s = self.settings
        argv = [
            str(self.paths.triton_root / "bin" / "tritonserver"),
            f"--model-repository={self.paths.model_repository}",
            f"--backend-directory={self.paths.triton_root / 'backends'}",
            "--model-config-name=local",
            f"--grpc-port={s.triton_grpc_port}",
            f"--http-port={s.triton_http_port}",
            f"--metrics-port={s.triton_metrics_port}",
            f"--grpc-address={s.host}",
            f"--http-address={s.host}",
            "--model-control-mode=explicit",
            f"--exit-timeout-secs={max(1, int(s.stop_timeout) - 2)}",
        ]
        argv += [f"--load-model={name}" for name in self.models]
        return argv

    def meta(self) -> dict[str, Any]:
        return {"models": self.models}

    def is_ready(self) -> bool:
        base = self.settings.triton_http_url
        paths = [f"/v2/models/{m}/ready" for m in self.models] or ["/v2/health/ready"]
        try:
            with httpx.Client(base_url=base, timeout=1.0, trust_env=False) as client:
                for path in paths:
                    code = client.get(path).status_code
                    if code != 200:
                        self.last_probe = f"GET {path}: {code}"
                        return False
        except httpx.HTTPError as exc:
            self.last_probe = f"{type(exc).__name__} from {base}"
            return False
        return True

    # -- stop -----------------------------------------------------------------------------
    def _stubs(self, pgid: int | None) -> set[int]:
        """Live Python stubs of this home's Triton (same process group or our stub binary)."""
        ours = str(self.stub_path.absolute())
        found: set[int] = set()
        for info in procs.iter_procs():
            if not info.alive:
                continue
            path = procs.exe(info.pid)
            if (path is not None and path.removesuffix(" (deleted)") == ours) or (
                pgid is not None
                and info.pgid == pgid
                and Path((procs.cmdline(info.pid) or [""])[0]).name == STUB_NAME
            ):
                found.add(info.pid)
        return found

    def _note_shm(self, pids: set[int]) -> None:
        for pid in pids:
            for arg in procs.cmdline(pid):
                if arg.startswith(SHM_PREFIX):
                    self._shm_regions.add(arg)
            for path in procs.mapped_files(pid, str(SHM_DIR / SHM_PREFIX)):
                self._shm_regions.add(Path(path).name)

    def before_stop(self, record: RunRecord | None) -> None:
        pid = self.pid
        pgid = record.pgid if record is not None else pid
        self._note_shm(self._stubs(pgid) | ({pid} if pid is not None else set()))

    def after_stop(self, record: RunRecord | None) -> None:
        pgid = record.pgid if record is not None else None
        stubs = self._stubs(pgid)
        if stubs:
            self._note_shm(stubs)
            log.info("triton: reaping lingering Python stubs %s", sorted(stubs))
            procs.send_signal(stubs, signal.SIGKILL)
            survivors = procs.wait_gone(stubs, deadline=time.monotonic() + 5.0)
            if survivors:
                log.error("triton: stubs %s survived SIGKILL", sorted(survivors))
        for region in sorted(self._shm_regions):
            path = SHM_DIR / region
            if path.exists():
                log.info("triton: removing leftover shared memory %s", path)
                path.unlink(missing_ok=True)
        self._shm_regions.clear()
