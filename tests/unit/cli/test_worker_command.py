"""`modelfleet worker KIND ...` runs the worker entry point with the same arguments."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services import cli


def test_worker_arguments_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.workers.__main__ as worker_main

    seen: list[list[str]] = []

    def fake_main(argv: Sequence[str] | None = None) -> int:
        seen.append(list(argv or []))
        return 0

    monkeypatch.setattr(worker_main, "main", fake_main)
    assert cli.main(["worker", "tip", "--port", "9010"]) == 0
    assert seen == [["tip", "--port", "9010"]]
