"""Fixtures of tests/kube: the built images, and one running cluster per scenario.

Root only: the images (buildah), the pod network (ip netns, nftables) and the kubelet stand-in
(mount namespaces, chroot) all need it; without root every test here fails saying so.

``cluster`` is module-scoped and parametrised over the default and minikube values, so pytest
runs all tests of one scenario on one cluster, tears it down, then starts the next: the images,
their mounted roots and Triton's server tree are shared between the scenarios, state is not.
The values are the scenario file plus ``EXTRA_VALUES`` (what the tests need switched on).

Figures (ready time of each workload, Job exit codes) are printed in the terminal summary and
written to ``<basetemp>/kube-workloads.txt``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import scenario_values
from tests.kube.cluster import Cluster, ImageCatalog, Row, deep_merge, start_cluster
from tests.kube.kubelet import LocalImage

SCENARIOS = ("default", "minikube")
# Switched on for the tests (the ci/ files leave them off): the two CronJobs, the model
# repository on a claim shared by Triton and the retraining Job (the chart then runs Triton in
# explicit model-control mode, so the Job's load call adds a version), and a retraining gate
# that accepts any candidate (CLASSIFIER_RETRAIN_MIN_GAIN: the test checks that a new version
# reaches Triton).
EXTRA_VALUES: dict[str, Any] = {
    "modelRepository": {
        "volume": {"type": "persistentVolumeClaim", "existingClaim": "modelfleet-models"}
    },
    "components": {
        "classifier": {"settings": {"RETRAIN_ROWS": "2000", "RETRAIN_MIN_GAIN": "-1"}},
    },
    "cronJobs": {"ride-scoring": {"enabled": True}, "documents-ingest": {"enabled": True}},
}

ROWS: list[Row] = []
_TIMES: dict[str, float] = {}


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "tests/kube need root (buildah, ip netns, nftables, mount namespaces, chroot): "
            f"running as uid {os.geteuid()}; run make test as root, as CI does",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def catalog() -> Iterator[ImageCatalog]:
    require_root()
    from tests.kube.images import build_images

    started = time.monotonic()
    built = build_images()
    _TIMES["images built (or found up to date)"] = time.monotonic() - started
    service, builder = LocalImage(built.service), LocalImage(built.model_builder)
    try:
        yield ImageCatalog(service=service, model_builder=builder)
    finally:
        service.release()
        builder.release()


def values_for(scenario: str) -> dict[str, Any]:
    return deep_merge(scenario_values(scenario), EXTRA_VALUES)


@pytest.fixture(scope="module", params=SCENARIOS)
def cluster(request: pytest.FixtureRequest, catalog: ImageCatalog) -> Iterator[Cluster]:
    scenario = str(request.param)
    started = time.monotonic()
    # Not under pytest's basetemp (mode 0700): the substitutes run as the pods' users on the
    # host and traverse this folder to their volumes.
    state = Path(tempfile.mkdtemp(prefix=f"modelfleet-kube-{scenario}-", dir="/var/tmp"))
    state.chmod(0o755)
    try:
        with start_cluster(scenario=scenario, values=values_for(scenario), catalog=catalog,
                           state_dir=state, rows=ROWS) as running:  # fmt: skip
            yield running
    finally:
        shutil.rmtree(state, ignore_errors=True)
    _TIMES[f"scenario {scenario} (start to teardown)"] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS and not _TIMES:
        return
    lines = [f"{'scenario':<9} {'workload':<44} {'kind':<11} {'ready s':>8}  exit codes / note"]
    for r in ROWS:
        ready = f"{r.ready_s:8.1f}" if r.ready_s is not None else f"{'-':>8}"
        codes = ",".join(str(c) for c in r.exit_codes)
        lines.append(f"{r.scenario:<9} {r.workload:<44} {r.kind:<11} {ready}  {codes} {r.note}")
    lines += [f"{what}: {seconds:.0f} s" for what, seconds in _TIMES.items()]
    text = "\n".join(lines) + "\n"
    terminalreporter.write_sep("-", "tests/kube: workloads run by the kubelet stand-in")
    terminalreporter.write(text)
    basetemp = terminalreporter.config._tmp_path_factory.getbasetemp()
    Path(basetemp, "kube-workloads.txt").write_text(text)
