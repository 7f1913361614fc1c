"""A modelfleet FastAPI service of the local stack, run by uvicorn as its own process.

`ServiceProcess` starts `python -m uvicorn --factory <module:factory>` on settings.host:port
with uvloop and httptools (one write per response: `HTTP_PROTOCOL`), passing the shared
environment (DATABASE_URL, NATS_URL, TRITON_GRPC_URL). Ready when `GET /readyz` answers 200.
With `argv` (e.g. a streaming worker: `("services.workers", "tip")`) it starts
`python -m <argv...> --host H --port P` instead, with the project root on PYTHONPATH; the probe
is the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from services.stack.component import ProcessComponent
from services.stack.settings import StackSettings

#: uvicorn's httptools protocol writing a response in one send (services/common/http_protocol.py).
HTTP_PROTOCOL = "services.common.http_protocol:OneWriteHttpToolsProtocol"

# The folder holding the `services` package: uvicorn's --app-dir, so the app imports the same
# code whether or not the project is installed.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess(ProcessComponent):
    """One uvicorn process serving `app` (an app factory, "module:function")."""

    def __init__(
        self,
        settings: StackSettings,
        name: str,
        *,
        app: str,
        port: int,
        port_setting: str,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        super().__init__(settings)
        self.name = name
        self.app = app
        self.argv = list(argv) if argv is not None else None
        self.port = port
        self.port_setting = port_setting
        self.env = dict(env or {})

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def extra_urls(self) -> dict[str, str]:
        return {"docs": f"{self.url}/docs", "metrics": f"{self.url}/metrics"}

    @property
    def ports(self) -> dict[str, int]:
        return {self.port_setting: self.port}

    @property
    def startup_timeout(self) -> float:
        return self.settings.service_startup_timeout

    def command(self) -> list[str]:
        if self.argv is not None:
            return [
                sys.executable,
                "-m",
                *self.argv,
                "--host",
                self.settings.host,
                "--port",
                str(self.port),
            ]
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.app,
            "--app-dir",
            str(PROJECT_ROOT),
            "--host",
            self.settings.host,
            "--port",
            str(self.port),
            "--loop",
            "uvloop",
            "--http",
            HTTP_PROTOCOL,
            "--no-access-log",
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.service_env())
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        if self.argv is not None:  # `python -m` from the state folder: find our packages
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
            )
        return env

    def is_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2.0, trust_env=False)
        except httpx.HTTPError as exc:
            self.last_probe = f"GET /readyz: {type(exc).__name__}"
            return False
        if response.status_code != 200:
            self.last_probe = f"GET /readyz: {response.status_code} {response.text[:300]}"
            return False
        return True
