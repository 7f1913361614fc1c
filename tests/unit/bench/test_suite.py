"""RESULTS.md keeps one section per benchmark suite: a run of some suites keeps the others."""

from __future__ import annotations

from bench.suite import read_sections, render_results


def test_a_rerun_section_replaces_its_old_text_and_keeps_the_others() -> None:
    old = render_results(["a", "b"], {"a": "## A\n\nold a", "b": "## B\n\nold b"})
    new = render_results(["a", "b"], read_sections(old) | {"b": "## B\n\nnew b"})
    assert read_sections(new) == {"a": "## A\n\nold a", "b": "## B\n\nnew b"}


def test_sections_follow_the_registry_order_and_unknown_ones_come_last() -> None:
    text = render_results(["b", "a"], {"a": "A", "zz": "Z", "b": "B"})
    assert list(read_sections(text)) == ["b", "a", "zz"]


def test_a_results_file_of_an_older_layout_has_no_sections() -> None:
    assert read_sections("# Benchmark results\n\n## Ratios\n| 1 | 2 |\n") == {}
