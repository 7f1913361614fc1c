"""`modelfleet bench` runs every suite bench/ defines, each under its own name."""

from __future__ import annotations

import importlib
import pkgutil

import bench
from bench.run import SUITES
from bench.suite import Suite


def test_every_suite_module_is_registered_once() -> None:
    defined = set()
    for module_info in pkgutil.iter_modules(bench.__path__):
        module = importlib.import_module(f"bench.{module_info.name}")
        suite = getattr(module, "SUITE", None)
        if isinstance(suite, Suite):
            defined.add(suite.name)
    names = [suite.name for suite in SUITES]
    assert len(names) == len(set(names))
    assert set(names) == defined
    assert "rollout" in defined
