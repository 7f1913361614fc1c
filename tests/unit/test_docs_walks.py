"""The request walks of docs/architecture.md name code that exists.

Each numbered step of a walk (the ``### Walk ...`` sections) begins with the file and the
function it happens in, as two code spans: ``1. `services/common/app.py` `ServiceApp.__call__`:
...``. This test reads every step, opens the file and looks the (dotted) name up in its syntax
tree, so a rename or a move that leaves the walk behind fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
STEP = re.compile(r"^\d+\. `(?P<path>[\w/.]+\.py)` `(?P<name>[\w.]+)`")
WALK_HEADING = re.compile(r"^### Walk \d+: ")


def walks(text: str) -> dict[str, list[tuple[str, str]]]:
    """{walk heading: [(file, name) of each numbered step]}; a step without both fails."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            current = line if WALK_HEADING.match(line) else None
            if current is not None:
                found[current] = []
            continue
        if current is None or not re.match(r"^\d+\. ", line):
            continue
        step = STEP.match(line)
        assert step is not None, f"{current}: step does not start with `file` `name`: {line}"
        found[current].append((step["path"], step["name"]))
    return found


def defines(tree: ast.Module, dotted: str) -> bool:
    """Whether ``dotted`` (``f``, ``Class``, ``Class.method``) is defined at that nesting."""
    scope: list[ast.stmt] = tree.body
    for part in dotted.split("."):
        match = next(
            (
                node
                for node in scope
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and node.name == part
            ),
            None,
        )
        if match is None:
            return False
        scope = match.body
    return True


def test_the_document_has_two_walks_of_steps() -> None:
    found = walks(ARCHITECTURE.read_text())
    assert len(found) >= 2, f"walks found: {list(found)}"
    assert all(len(steps) >= 5 for steps in found.values()), found


def test_every_step_names_a_function_that_exists() -> None:
    missing = []
    for heading, steps in walks(ARCHITECTURE.read_text()).items():
        for path, name in steps:
            source = ROOT / path
            if not source.is_file():
                missing.append(f"{heading}: {path} does not exist")
            elif not defines(ast.parse(source.read_text()), name):
                missing.append(f"{heading}: {path} defines no {name}")
    assert missing == []


def test_the_check_sees_a_renamed_function() -> None:
    text = "### Walk 1: x\n1. `services/common/app.py` `ServiceApp.gone`: step\n"
    ((path, name),) = walks(text)["### Walk 1: x"]
    assert not defines(ast.parse((ROOT / path).read_text()), name)
    assert defines(ast.parse((ROOT / path).read_text()), "ServiceApp.dispatch")
    with pytest.raises(AssertionError):
        walks("### Walk 2: y\n1. no file named here\n")
