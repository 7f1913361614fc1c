"""Build stamps: what a model's newest version was built from, so an identical build is skipped.

``build-stamp.json`` in a model folder holds the build key (code hash, seed, rows, data path and
a fingerprint of the data files) and the version built from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

from models.repository.storage import write_atomic

STAMP_FILE: Final = "build-stamp.json"


def data_fingerprint(data_path: Path | None) -> str | None:
    """Path plus size/mtime of each data file, so a changed file triggers a rebuild."""
    if data_path is None:
        return None
    path = data_path.resolve()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256(str(path).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def write_stamp(model_dir: Path, *, key: dict[str, Any], version: int, built_at: str) -> None:
    """Record that ``version`` was built from ``key`` (replaced atomically)."""
    record = {"key": key, "version": version, "built_at": built_at}
    write_atomic(model_dir / STAMP_FILE, (json.dumps(record, indent=2) + "\n").encode())


def stamped_version(model_dir: Path, key: dict[str, Any]) -> int | None:
    """The version the stamp says was built from ``key``; None if no stamp or another key."""
    try:
        stamp = json.loads((model_dir / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("key") != key:
        return None
    version = stamp.get("version")
    return version if isinstance(version, int) else None
