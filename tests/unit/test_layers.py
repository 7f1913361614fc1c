"""The package layers, enforced over the import statements of every module (lazy ones included).

- ``services.common`` is plumbing: it imports no service, no domain and nothing of ``models/``;
- ``services.domain`` (shared by training and serving) imports only the plumbing;
- a serving process (backend, chatbot, classifier, dashboards, ride-duration, the workers)
  imports the plumbing, the domains and itself: never another service, never ``models/``
  (training code);
- ``models/`` imports the plumbing and the domains, never a service.

Jobs, the local stack and rollouts compose the rest and are checked for the one rule that holds
for them too: they import no serving service's internals. The CLI is the composition root: it
may import a service's entry point (``modelfleet worker`` runs ``services.workers.__main__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SERVING = frozenset(
    {"backend", "chatbot", "city", "classifier", "dashboards", "ride_duration", "workers"}
)
COMPOSERS = frozenset({"jobs", "stack", "rollout", "cli"})

#: what each layer may import besides itself (a name under services/, or "models")
ALLOWED: dict[str, frozenset[str]] = {
    "common": frozenset(),
    "domain": frozenset({"common"}),
    **{name: frozenset({"common", "domain"}) for name in SERVING},
    "models": frozenset({"common", "domain"}),
    **{name: frozenset({"common", "domain", "models"}) | COMPOSERS for name in COMPOSERS},
    # the console script is the composition root: it starts what it runs (a worker's __main__)
    "cli": frozenset({"common", "domain", "models"}) | COMPOSERS | SERVING,
}


def layer_of(path: Path) -> str:
    """The layer of a source file: ``services/<layer>/...``, ``services/<layer>.py`` or models."""
    relative = path.relative_to(ROOT).parts
    if relative[0] == "models":
        return "models"
    return relative[1].removesuffix(".py")


def imported_layers(source: str) -> set[str]:
    """The layers a module's absolute imports reach (``services.X`` -> X, ``models`` -> models)."""
    layers: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "services":
                names = [f"services.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "models":
                layers.add("models")
            elif parts[0] == "services" and len(parts) > 1:
                layers.add(parts[1])
    return layers


def violations(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        own = layer_of(path)
        allowed = ALLOWED.get(own)
        assert allowed is not None, f"{path}: a new layer {own!r}: give it a row in ALLOWED"
        for layer in sorted(imported_layers(path.read_text(encoding="utf-8")) - {own}):
            if layer not in allowed:
                found.append(f"{path.relative_to(ROOT)} ({own}) imports {layer}")
    return found


def _sources() -> list[Path]:
    modules = [*ROOT.glob("services/**/*.py"), *ROOT.glob("models/**/*.py")]
    return sorted(path for path in modules if path != ROOT / "services" / "__init__.py")


def test_every_module_keeps_to_its_layer() -> None:
    sources = _sources()
    assert len(sources) > 150, "the scan found too few modules to mean anything"
    assert violations(sources) == []


@pytest.mark.parametrize(
    ("where", "statement", "reached"),
    [
        (
            "services/common/fake_plumbing.py",
            "from services.ride_duration import api",
            "ride_duration",
        ),
        ("services/common/fake_plumbing.py", "import services.domain.taxi.zones", "domain"),
        (
            "services/domain/fake_domain.py",
            "from services.chatbot.cache import AnswerCache",
            "chatbot",
        ),
        ("services/backend/fake.py", "from services.workers import handlers", "workers"),
        (
            "services/classifier/fake.py",
            "def f():\n    from models.classifier import train",
            "models",
        ),
        ("models/fake.py", "from services.classifier.predictor import Predictor", "classifier"),
        ("services/jobs/fake.py", "from services import ride_duration", "ride_duration"),
    ],
)
def test_a_crossing_import_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, statement: str, reached: str
) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    module = tmp_path / where
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(statement + "\n", encoding="utf-8")
    assert violations([module]) == [f"{where} ({layer_of(module)}) imports {reached}"]


def test_allowed_imports_are_not_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    module = tmp_path / "services/ride_duration/fake.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from services.common.errors import NotFound\nfrom services.domain.taxi import zones\n"
        "from services.ride_duration.routing.live import LiveRouting\nfrom . import api\n",
        encoding="utf-8",
    )
    assert violations([module]) == []


def test_the_cli_package_may_start_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the composition root's exception holds for every module of the services/cli package
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    module = tmp_path / "services/cli/worker.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "def f():\n    from services.workers import __main__\n    from models import repository\n",
        encoding="utf-8",
    )
    assert violations([module]) == []
