"""The project's Prometheus rules cut down for a test's real Prometheus
(services.stack.prometheus.LocalPrometheus):

    rules = rules_for_test(home / "rules.yaml", alerts=[F1_ALERT], for_="3s")

Only the timing is shortened (each group evaluated every second, each alert's ``for``); the
expressions and thresholds are the file's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "monitoring" / "rules" / "modelfleet.rules.yaml"


def rules_for_test(
    target: Path, *, alerts: Iterable[str], for_: str, recording_groups: Iterable[str] = ()
) -> Path:
    """``target``: the named alerts of the project's rules (each alone in a group) and every rule
    of the named recording groups, evaluated every second, each alert's ``for`` set to
    ``for_``."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    wanted = set(alerts)
    kept: list[dict[str, Any]] = [
        {**g, "interval": "1s"} for g in groups if g["name"] in set(recording_groups)
    ]
    found = [r for g in groups for r in g["rules"] if r.get("alert") in wanted]
    assert {r["alert"] for r in found} == wanted, f"not in {RULES}: {wanted}"
    kept += [
        {"name": f"test-{r['alert']}", "interval": "1s", "rules": [{**r, "for": for_}]}
        for r in found
    ]
    target.write_text(yaml.safe_dump({"groups": kept}))
    return target
