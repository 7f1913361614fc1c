"""docs/kubernetes.md lists exactly what the chart renders per scenario."""

from __future__ import annotations

from tests.chart.inventory import documented, markdown


def test_docs_list_what_the_chart_renders() -> None:
    assert documented() == markdown(), "run: .venv/bin/python -m tests.chart.inventory"
