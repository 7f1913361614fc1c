"""A local Prometheus (Debian package `prometheus`) for demos and tests: scrapes the given
targets every ``interval_s`` with a ``namespace`` label, as the chart's ServiceMonitors would
(job = component name), evaluates ``rule_files`` and sends alerts to an Alertmanager (Debian
package `prometheus-alertmanager`, :class:`LocalAlertmanager`) when given one.

    with LocalPrometheus(home / "prometheus", {"ride-duration": "127.0.0.1:8001"}) as prom:
        prom.wait_for("up{job='ride-duration'}", timeout_s=30)
        prom.url

    with LocalAlertmanager(home / "am", webhook=f"{classifier}/v1/alerts") as am, \
            LocalPrometheus(home / "prom", targets, rule_files=[rules], alertmanager=am.url):
        ...
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx
import yaml

from services.stack.testing import free_port


class PrometheusMissing(RuntimeError):
    """The `prometheus` (or `prometheus-alertmanager`) binary is not installed
    (apt-get install -y prometheus prometheus-alertmanager)."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PrometheusMissing(f"{name} missing: apt-get install -y {name}")
    return path


def _wait_ready(url: str, process: subprocess.Popen[bytes], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout_s} s")


class LocalAlertmanager:
    """An Alertmanager whose one route sends every alert (and its resolution) to ``webhook``,
    grouped by alert name and model after ``group_wait_s``; SIGTERM on exit."""

    def __init__(self, home: Path, *, webhook: str, group_wait_s: int = 1) -> None:
        self.home = home
        self.webhook = webhook
        self.group_wait_s = group_wait_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalAlertmanager:
        binary = _binary("prometheus-alertmanager")
        config = {
            "route": {
                "receiver": "webhook",
                "group_by": ["alertname", "model"],
                "group_wait": f"{self.group_wait_s}s",
                "group_interval": f"{2 * self.group_wait_s}s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "webhook",
                    "webhook_configs": [{"url": self.webhook, "send_resolved": True}],
                }
            ],
        }
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "alertmanager.yml").write_text(yaml.safe_dump(config))
        with (self.home / "alertmanager.log").open("wb") as log:
            self._process = subprocess.Popen(
                [binary, f"--config.file={self.home / 'alertmanager.yml'}",
                 f"--storage.path={self.home / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_ready(self.url, self._process, "alertmanager", 60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None


def instant_values(url: str, expr: str, *, timeout_s: float = 5.0) -> list[float]:
    """The values of an instant query (an empty list while it has no series)."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=timeout_s).json()
    return [float(sample["value"][1]) for sample in body["data"]["result"]]


class LocalPrometheus:
    """A Prometheus process with its own config and TSDB under ``home``; SIGTERM on exit."""

    def __init__(
        self,
        home: Path,
        targets: dict[str, str],
        *,
        interval_s: int = 1,
        namespace: str = "local",
        rule_files: Sequence[Path] = (),
        alertmanager: str | None = None,
    ) -> None:
        self.home = home
        self.targets = targets
        self.interval_s = interval_s
        self.namespace = namespace
        self.rule_files = list(rule_files)
        self.alertmanager = alertmanager
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalPrometheus:
        binary = _binary("prometheus")
        interval = f"{self.interval_s}s"
        config: dict[str, object] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [
                    {"targets": [target], "labels": {"namespace": self.namespace}}]}
                for job, target in self.targets.items()
            ],
        }  # fmt: skip
        if self.rule_files:
            config["rule_files"] = [str(f) for f in self.rule_files]
        if self.alertmanager is not None:
            target = self.alertmanager.removeprefix("http://")
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(config))
        with (self.home / "prometheus.log").open("wb") as log:
            self._process = subprocess.Popen(
                [binary, f"--config.file={self.home / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.home / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            self.wait_for("vector(1)", timeout_s=30)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def wait_for(self, expr: str, *, timeout_s: float, value: float | None = None) -> None:
        """Until ``expr`` has a series (with ``value`` when given); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                values = instant_values(self.url, expr)
                if values and (value is None or value in values):
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"no series for {expr} (value {value}) after {timeout_s} s")
