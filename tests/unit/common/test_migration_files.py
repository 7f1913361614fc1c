"""Migration files: named NNNN_name.sql, unique versions, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.migrations import MigrationError, discover


def test_discovered_in_version_order(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("select 2;")
    (tmp_path / "0001_a.sql").write_text("select 1;")
    (tmp_path / "0010_c.sql").write_text("select 10;")
    assert [(m.version, m.name) for m in discover(tmp_path)] == [(1, "a"), (2, "b"), (10, "c")]


@pytest.mark.parametrize("bad", ["1_a.sql", "0001-a.sql", "0001_A.sql", "init.sql"])
def test_badly_named_file_is_an_error(tmp_path: Path, bad: str) -> None:
    (tmp_path / bad).write_text("select 1;")
    with pytest.raises(MigrationError):
        discover(tmp_path)


def test_duplicate_version_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("select 1;")
    (tmp_path / "0001_b.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="share a version"):
        discover(tmp_path)


def test_service_migrations_are_well_formed() -> None:
    folder = Path(__file__).parents[3] / "services" / "ride_duration" / "migrations"
    assert [m.version for m in discover(folder)] == [1, 2]
    routing = Path(__file__).parents[3] / "services" / "ride_duration" / "routing" / "migrations"
    assert [m.version for m in discover(routing)] == [1]
