"""charts/modelfleet/README.md's parameters are what readme-generator-for-helm (npm
`@bitnami/readme-generator-for-helm`, installed by scripts/ensure-tools into .venv/npm) writes
from values.yaml's `## @param` lines; the generator also fails on a value without a
description, so every key of values.yaml stays documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart.conftest import CHART, ROOT

GENERATOR = (
    ROOT / ".venv" / "npm" / "node_modules" / "@bitnami" / "readme-generator-for-helm" / "bin"
    / "index.js"
)  # fmt: skip
README = CHART / "README.md"


def _generate(values: Path, readme: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not GENERATOR.exists():
        pytest.fail("readme-generator-for-helm missing: run scripts/ensure-tools (needs npm)")
    return subprocess.run(
        [node, str(GENERATOR), "--values", str(values), "--readme", str(readme)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_readme_is_what_the_generator_writes(tmp_path: Path) -> None:
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    result = _generate(CHART / "values.yaml", copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert copy.read_text() == README.read_text(), (
        "charts/modelfleet/README.md is stale: run the command in its header"
    )
    row = re.search(r"^\| `components\.chatbot\.settings\.MAX_UPLOAD_BYTES` +\|(.*)$",
                    README.read_text(), re.M)  # fmt: skip
    assert row and "`10485760`" in row.group(1)


def test_a_value_without_a_description_fails_the_generator(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text((CHART / "values.yaml").read_text() + "undocumented: 1\n")
    shutil.copy(README, tmp_path / "README.md")
    result = _generate(values, tmp_path / "README.md")
    assert result.returncode != 0
    assert "Missing metadata for key: undocumented" in result.stdout
