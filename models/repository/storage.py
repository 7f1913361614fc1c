"""A model's folder on disk: its version folders and their cards, atomic writes, the build lock.

A model folder holds one numbered folder per version (``<N>/``, N > 0) with the version's card
in ``model_card.json``. Files that are rewritten in place (configs, build stamps) are replaced
atomically; one build at a time works on a model folder (an advisory ``fcntl`` lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

CARD_FILE: Final = "model_card.json"
LOCK_FILE: Final = ".build.lock"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (written to a temporary file, synced, renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions(model_dir: Path) -> list[int]:
    """The versions present in ``model_dir``, oldest first."""
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0
    )


def read_card(version_dir: Path) -> dict[str, Any] | None:
    """The card of a version folder, or None when it is missing or not a JSON object."""
    try:
        card = json.loads((version_dir / CARD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


@contextmanager
def locked(model_dir: Path) -> Iterator[None]:
    """One build at a time per model folder (an advisory lock file)."""
    with open(model_dir / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
