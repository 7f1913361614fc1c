"""The objects the chart renders per ci/ scenario, as the Markdown list in docs/kubernetes.md.

    .venv/bin/python -m tests.chart.inventory     # rewrites the block between the markers

tests/chart/test_inventory.py fails when the block differs from what the chart renders now.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from tests.chart.conftest import ALL_SCENARIOS, RELEASE, render, scenario_values

DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"
START = "<!-- inventory:start (python -m tests.chart.inventory) -->"
END = "<!-- inventory:end -->"


def markdown() -> str:
    """One subsection per scenario: a kind/count table, then every kind/name."""
    parts: list[str] = []
    for scenario in ALL_SCENARIOS:
        objects = render(scenario_values(scenario))
        kinds = Counter(o["kind"] for o in objects)
        parts.append(
            f"### {scenario} (`ci/{scenario}-values.yaml`, release `{RELEASE}`): "
            f"{len(objects)} objects\n"
        )
        parts.append("| kind | count |\n|---|---|")
        parts.extend(f"| {kind} | {count} |" for kind, count in sorted(kinds.items()))
        names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        parts.append("\n<details><summary>every object</summary>\n")
        parts.extend(f"- `{name}`" for name in names)
        parts.append("\n</details>\n")
    return "\n".join(parts).strip() + "\n"


def documented() -> str:
    text = DOC.read_text()
    return text[text.index(START) + len(START) : text.index(END)].strip() + "\n"


def main() -> int:
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n\n{markdown()}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
