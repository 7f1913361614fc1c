"""Prometheus and Alertmanager of the local stack (Debian packages `prometheus` and
`prometheus-alertmanager`), with the chart's rules and the chart's Alertmanager route.

What the cluster gets from kube-prometheus-stack and the chart (ServiceMonitors, PrometheusRules,
the AlertmanagerConfig), the laptop gets here, from the same files:

- Prometheus scrapes every service of the stack (`job` = component name, as the chart's
  ServiceMonitors name it; label `namespace="local"`) and Triton's metrics, and evaluates
  monitoring/rules/*.yaml, the files the chart ships. Only the timing is the laptop's: every group
  is evaluated every ``MODELFLEET_MONITORING_INTERVAL_S`` (5 s) and each alert's ``for`` is
  ``MODELFLEET_ALERT_FOR`` (30s) instead of minutes, so a demo sees an alert fire; the
  expressions and thresholds are the files'.
- Alertmanager has the chart's route (charts/modelfleet/values.yaml,
  ``monitoring.alertmanagerConfig``: the alerts it routes, group by alert name and model, repeat
  interval) to the classifier's ``POST /v1/alerts``, grouping for
  ``MODELFLEET_MONITORING_INTERVAL_S`` instead of the chart's 30 s.

Without the two binaries the stack runs without them (:func:`monitoring_components` returns
none and :data:`MISSING_HINT` says what to install; `make up` installs them as root).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from services.stack.component import ComponentFailed, ProcessComponent
from services.stack.settings import StackSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = PROJECT_ROOT / "monitoring" / "rules"
CHART_VALUES = PROJECT_ROOT / "charts" / "modelfleet" / "values.yaml"
BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}
MISSING_HINT = (
    "prometheus and alertmanager are not installed, the stack runs without them: "
    "sudo apt-get install -y prometheus prometheus-alertmanager (make up does it as root)"
)
NAMESPACE = "local"


def _binary(component: str) -> str:
    path = shutil.which(BINARIES[component])
    if path is None:
        raise ComponentFailed(f"{BINARIES[component]} not found: {MISSING_HINT}")
    return path


def installed() -> bool:
    """Both binaries are on PATH."""
    return all(shutil.which(binary) is not None for binary in BINARIES.values())


def local_rules(rules: Mapping[str, Any], *, interval_s: int, alert_for: str) -> dict[str, Any]:
    """``rules`` (a rule file's document) with the laptop's timing: every group evaluated every
    ``interval_s``, every alert's ``for`` set to ``alert_for``; nothing else changes."""
    groups = []
    for group in rules["groups"]:
        kept = [
            {**rule, "for": alert_for} if "alert" in rule and "for" in rule else dict(rule)
            for rule in group["rules"]
        ]
        groups.append({**group, "interval": f"{interval_s}s", "rules": kept})
    return {"groups": groups}


def alertmanager_config(
    values: Mapping[str, Any], *, webhook: str, group_wait_s: int
) -> dict[str, Any]:
    """The chart's AlertmanagerConfig (``monitoring.alertmanagerConfig`` of its values) as an
    Alertmanager configuration file: its alerts to ``webhook``, everything else nowhere."""
    route = values["monitoring"]["alertmanagerConfig"]
    alerts = "|".join(route["alerts"])
    return {
        "route": {
            "receiver": "nowhere",
            "routes": [
                {
                    "receiver": "classifier-retraining",
                    "matchers": [f'alertname=~"{alerts}"'],
                    "group_by": ["alertname", "model"],
                    "group_wait": f"{group_wait_s}s",
                    "group_interval": f"{2 * group_wait_s}s",
                    "repeat_interval": route["repeatInterval"],
                }
            ],
        },
        "receivers": [
            {"name": "nowhere"},
            {
                "name": "classifier-retraining",
                "webhook_configs": [{"url": webhook, "send_resolved": True}],
            },
        ],
    }


class _HttpReady(ProcessComponent):
    """A server that answers ``GET /-/ready`` with 200 once it serves."""

    port_setting: str

    @property
    def port(self) -> int:
        port = getattr(self.settings, self.port_setting)
        assert isinstance(port, int)
        return port

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def ports(self) -> dict[str, int]:
        return {self.port_setting: self.port}

    @property
    def startup_timeout(self) -> float:
        return self.settings.service_startup_timeout

    @property
    def home(self) -> Path:
        return self.paths.home / self.name

    def is_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/-/ready", timeout=2.0)
        except httpx.HTTPError as exc:
            self.last_probe = str(exc)
            return False
        self.last_probe = f"GET /-/ready: {response.status_code}"
        return response.status_code == 200


class Alertmanager(_HttpReady):
    """Alertmanager with the chart's route to the classifier's webhook."""

    name = "alertmanager"
    port_setting = "alertmanager_port"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        values = yaml.safe_load(CHART_VALUES.read_text())
        webhook = f"http://{self.settings.host}:{self.settings.classifier_port}/v1/alerts"
        config = alertmanager_config(
            values, webhook=webhook, group_wait_s=self.settings.monitoring_interval_s
        )
        (self.home / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        return [
            _binary(self.name),
            f"--config.file={self.home / 'alertmanager.yml'}",
            f"--storage.path={self.home / 'data'}",
            f"--web.listen-address={self.settings.host}:{self.port}",
            "--cluster.listen-address=",
        ]


class Prometheus(_HttpReady):
    """Prometheus scraping ``targets`` ({job: host:port, or host:port/path}) with the chart's
    rules, alerting through the stack's Alertmanager."""

    name = "prometheus"
    port_setting = "prometheus_port"

    def __init__(self, settings: StackSettings, targets: Mapping[str, str]) -> None:
        super().__init__(settings)
        self.targets = dict(targets)

    @property
    def extra_urls(self) -> dict[str, str]:
        return {"alerts": f"{self.url}/alerts", "targets": f"{self.url}/targets"}

    def prepare(self) -> None:
        rules_dir = self.home / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        interval = self.settings.monitoring_interval_s
        for source in sorted(RULES_DIR.glob("*.yaml")):
            rules = local_rules(
                yaml.safe_load(source.read_text()),
                interval_s=interval,
                alert_for=self.settings.alert_for,
            )
            (rules_dir / source.name).write_text(yaml.safe_dump(rules, sort_keys=False))
        scrape = []
        for job, target in self.targets.items():
            address, _, path = target.partition("/")
            scrape.append(
                {
                    "job_name": job,
                    "metrics_path": f"/{path or 'metrics'}",
                    "static_configs": [{"targets": [address], "labels": {"namespace": NAMESPACE}}],
                }
            )
        alertmanager = f"{self.settings.host}:{self.settings.alertmanager_port}"
        config = {
            "global": {"scrape_interval": f"{interval}s", "evaluation_interval": f"{interval}s"},
            "rule_files": [str(rules_dir / "*.yaml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
            "scrape_configs": scrape,
        }
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        return [
            _binary(self.name),
            f"--config.file={self.home / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.home / 'tsdb'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={self.settings.host}:{self.port}",
        ]


def monitoring_components(
    settings: StackSettings, targets: Mapping[str, str]
) -> list[ProcessComponent]:
    """Alertmanager, then Prometheus scraping ``targets``; none when either binary is missing or
    ``MODELFLEET_MONITORING`` is off."""
    if not settings.monitoring or not installed():
        return []
    return [Alertmanager(settings), Prometheus(settings, targets)]
