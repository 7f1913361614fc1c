"""Builds the Triton model repository (see docs/architecture.md).

``MODELS`` is the registry: ride_duration (minutes), tip_amount and total_amount (USD), all three
trained from the same trips (synthetic TLC data by default, or real TLC files) with the same
features; and classifier (product category probabilities) trained from a product catalogue
(synthetic by default, ``catalogue_rows`` products, or a real catalogue file).
``build_models(repo_dir)`` builds every one of them by one code path and returns a
result per model; ``build_repository(repo_dir)`` does the same and returns ride_duration's result
(what its callers show). Per model it writes::

    <repo_dir>/<model>/
      config.pbtxt          platform "onnxruntime_onnx" (NVIDIA's Triton image)
      configs/local.pbtxt   backend "python" (local Triton, --model-config-name=local)
      <N>/model.onnx        the model
      <N>/model.py          copy of models/triton/onnx_model.py
      <N>/model_card.json   the model card of version N
      <N>/<artifact>        extra files of the trainer (classifier: confusion_matrix.png)
      build-stamp.json      what the newest version was built from (to skip rebuilds)

Both configs carry every present version's card as parameter ``model_card.v<N>`` (a JSON string).
A build is skipped when the stamp shows the same code hash, seed, rows and data were already
built (unless ``force``); otherwise it writes version max+1 and keeps the 3 newest versions.
The trips are generated (or loaded) once per call, and only when some model needs a build.
A version is built in a staging folder and renamed into place, config and stamp files are
replaced atomically, so a crashed build never leaves a half-written version behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import pandas as pd

from models.classifier.data import generate_catalogue, load_catalogue
from models.classifier.train import MODEL_NAME as CLASSIFIER_MODEL
from models.classifier.train import OUTPUT_NAME as CLASSIFIER_OUTPUT
from models.classifier.train import train_classifier
from models.embedding.package import package_embedding_model
from models.fare.train import COST_MODEL, TIP_MODEL, train_cost_model, train_tip_model
from models.ride_duration.data import generate_trips, load_trips
from models.ride_duration.train import INPUT_NAME, MODEL_NAME, OUTPUT_NAME, train_model
from services.domain.catalog.features import N_FEATURES as CATALOG_FEATURES
from services.domain.documents.embeddings import EMBEDDING_DIM
from services.domain.documents.embeddings import INPUT_NAMES as EMBEDDING_INPUTS
from services.domain.documents.embeddings import MODEL_NAME as EMBEDDING_MODEL
from services.domain.documents.embeddings import OUTPUT_NAME as EMBEDDING_OUTPUT
from services.domain.taxi.features import N_FEATURES

ROOT: Final = Path(__file__).resolve().parent.parent
ONNX_MODEL_PY: Final = Path(__file__).resolve().parent / "triton" / "onnx_model.py"
CODE_PATHS: Final = (
    "models/ride_duration",
    "models/triton/onnx_model.py",
    "models/repository.py",
    "services/domain/taxi",
)
"""Source files whose content makes up ride_duration's code hash (folders: their *.py files)."""
CLASSIFIER_CODE_PATHS: Final = (
    "models/classifier",
    "models/triton/onnx_model.py",
    "models/repository.py",
    "services/domain/catalog",
)
EMBEDDING_CODE_PATHS: Final = (
    "models/embedding",
    "models/triton/onnx_model.py",
    "models/repository.py",
    "services/domain/documents/embeddings.py",
)
CATALOGUE_ROWS: Final = 5000
"""Most products of the synthetic catalogue the classifier is trained on by default."""
MIN_CATALOGUE_ROWS: Final = 500
TRIPS_PER_PRODUCT: Final = 40
"""Default catalogue size: one product per 40 trips, 500 to 5,000 (the CLI's 200,000 trips give
5,000 products; a small test build stays small)."""
DEFAULT_TRIPS: Final = 200_000
"""Trips a build trains on unless told otherwise."""


def default_catalogue_rows(rows: int = DEFAULT_TRIPS) -> int:
    """Products of the synthetic catalogue a build of ``rows`` trips makes (and the chatbot's
    ingestion after ``modelfleet up`` loads: the same products)."""
    return min(CATALOGUE_ROWS, max(MIN_CATALOGUE_ROWS, rows // TRIPS_PER_PRODUCT))


class Trained(Protocol):
    """What a trainer returns: the ONNX bytes and the model card (without version/dates)."""

    @property
    def onnx_bytes(self) -> bytes: ...

    @property
    def card(self) -> dict[str, Any]: ...


class Trainer(Protocol):
    """A training function of the registry: its data (trips or catalogue) in, a model out."""

    def __call__(self, data: pd.DataFrame, /, *, seed: int, source: str) -> Trained: ...


@dataclass(frozen=True)
class ModelSpec:
    """One model of the repository: its Triton name, output tensor, trainer and code.

    ``data`` names the training data (``"trips"``, ``"catalogue"`` or ``"none"``: a packaged
    model such as the sentence embedder); ``input_dim`` and
    ``output_dim`` are the widths of the ``features`` input and of the output tensor (-1:
    variable; the classifier has one column per category of its catalogue, named in its card).
    """

    name: str
    output: str
    train: Trainer
    code_paths: tuple[str, ...]
    unit: str
    data: str = "trips"
    input_dim: int = N_FEATURES
    output_dim: int = 1
    tensors: tuple[str, ...] | None = None
    """Config lines of the inputs and outputs when they are not one FP32 ``features`` input and
    one FP32 output (the embedding model: three INT64 [-1] inputs, FP32 [-1, 384] output)."""
    max_batch_size: int | None = None
    """Largest batch Triton forms (default ``MAX_BATCH_SIZE``)."""
    version_policy: str = "latest: { num_versions: 1 }"
    """Triton version policy. ride_duration serves ``all`` its versions so a routing table
    can send traffic to any of them (docs/rollouts.md); requests naming no version get the
    newest."""


MODELS: Final[tuple[ModelSpec, ...]] = (
    ModelSpec(MODEL_NAME, OUTPUT_NAME, train_model, CODE_PATHS, "min", version_policy="all: { }"),
    ModelSpec(TIP_MODEL, TIP_MODEL, train_tip_model, (*CODE_PATHS, "models/fare"), "USD"),
    ModelSpec(COST_MODEL, COST_MODEL, train_cost_model, (*CODE_PATHS, "models/fare"), "USD"),
    ModelSpec(
        CLASSIFIER_MODEL,
        CLASSIFIER_OUTPUT,
        train_classifier,
        CLASSIFIER_CODE_PATHS,
        "macro-F1",
        data="catalogue",
        input_dim=CATALOG_FEATURES,
        output_dim=-1,  # one column per category of the training catalogue
    ),
    ModelSpec(
        EMBEDDING_MODEL,
        EMBEDDING_OUTPUT,
        package_embedding_model,
        EMBEDDING_CODE_PATHS,
        "cosine",
        data="none",
        tensors=(
            "input [",
            ",\n".join(
                f'  {{ name: "{name}" data_type: TYPE_INT64 dims: [ -1 ] }}'
                for name in EMBEDDING_INPUTS
            ),
            "]",
            "output [",
            f'  {{ name: "{EMBEDDING_OUTPUT}" data_type: TYPE_FP32 '
            f"dims: [ -1, {EMBEDDING_DIM} ] }}",
            "]",
        ),
        max_batch_size=64,
    ),
)
"""The registry: every model ``build_models`` builds, ride_duration first."""

MAX_BATCH_SIZE: Final = 1024
MAX_QUEUE_DELAY_MICROSECONDS: Final = 200
INSTANCE_COUNT: Final = 2
KEEP_VERSIONS: Final = 3
STAMP_FILE: Final = "build-stamp.json"
CARD_FILE: Final = "model_card.json"
LOCAL_CONFIG_NAME: Final = "local"
SYNTHETIC_SOURCE: Final = "synthetic-tlc"
SYNTHETIC_CATALOGUE: Final = "synthetic-catalogue"

_logger = logging.getLogger(__name__)


def _log_info(message: str) -> None:
    _logger.info(message)


@dataclass(frozen=True)
class BuildResult:
    """Outcome of ``build_repository``: ``built`` is False when an identical build was found."""

    model: str
    version: int
    built: bool
    card: dict[str, Any]
    path: Path
    """The version folder."""


def code_hash(paths: tuple[str, ...] = CODE_PATHS) -> str:
    """sha256 over the relative paths and contents of the files in ``paths``."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for rel in paths:
        path = ROOT / rel
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    for path in sorted(set(files)):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _data_fingerprint(data_path: Path | None) -> str | None:
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


def pbtxt_string(value: str) -> str:
    """``value`` as a double-quoted protobuf text-format string literal."""
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03o}")
        elif ord(char) > 0x7F:
            out.append("".join(f"\\{byte:03o}" for byte in char.encode()))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def render_config(
    *, local: bool, cards: dict[int, dict[str, Any]], spec: ModelSpec = MODELS[0]
) -> str:
    """The model config (protobuf text); ``local`` selects the Python backend over ONNX RT."""
    runtime = 'backend: "python"' if local else 'platform: "onnxruntime_onnx"'
    lines = [
        "# Generated by models/repository.py (modelfleet models build); do not edit.",
        f'name: "{spec.name}"',
        runtime,
        f"max_batch_size: {spec.max_batch_size or MAX_BATCH_SIZE}",
        f"version_policy: {{ {spec.version_policy} }}",
        *(
            spec.tensors
            or (
                "input [",
                f'  {{ name: "{INPUT_NAME}" data_type: TYPE_FP32 dims: [ {spec.input_dim} ] }}',
                "]",
                "output [",
                f'  {{ name: "{spec.output}" data_type: TYPE_FP32 dims: [ {spec.output_dim} ] }}',
                "]",
            )
        ),
        f"dynamic_batching {{ max_queue_delay_microseconds: {MAX_QUEUE_DELAY_MICROSECONDS} }}",
        f"instance_group [ {{ kind: KIND_CPU count: {INSTANCE_COUNT} }} ]",
    ]
    for version in sorted(cards):
        card_json = json.dumps(cards[version], sort_keys=True, separators=(",", ":"))
        lines += [
            "parameters {",
            f'  key: "model_card.v{version}"',
            f"  value: {{ string_value: {pbtxt_string(card_json)} }}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, data: bytes) -> None:
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


def _versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0
    )


def _read_card(version_dir: Path) -> dict[str, Any] | None:
    try:
        card = json.loads((version_dir / CARD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


@contextmanager
def _locked(model_dir: Path) -> Iterator[None]:
    """One build at a time per model folder (an advisory lock file)."""
    with open(model_dir / ".build.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_configs(model_dir: Path, spec: ModelSpec = MODELS[0]) -> dict[int, dict[str, Any]]:
    """(Re)write both configs with the cards of the versions present; returns those cards."""
    cards = {
        version: card
        for version in _versions(model_dir)
        if (card := _read_card(model_dir / str(version))) is not None
    }
    _write_atomic(
        model_dir / "config.pbtxt", render_config(local=False, cards=cards, spec=spec).encode()
    )
    _write_atomic(
        model_dir / "configs" / f"{LOCAL_CONFIG_NAME}.pbtxt",
        render_config(local=True, cards=cards, spec=spec).encode(),
    )
    return cards


def build_repository(
    repo_dir: Path,
    *,
    seed: int = 42,
    rows: int = DEFAULT_TRIPS,
    data_path: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = _log_info,
    catalogue_rows: int | None = None,
    catalogue_path: Path | None = None,
) -> BuildResult:
    """Build every model of ``MODELS`` (see :func:`build_models`); return ride_duration's result."""
    results = build_models(
        repo_dir,
        seed=seed,
        rows=rows,
        data_path=data_path,
        force=force,
        log=log,
        catalogue_rows=catalogue_rows,
        catalogue_path=catalogue_path,
    )
    return results[0]


class _TrainingData:
    """One training data set of a build call (trips or a catalogue), made or loaded on first use.

    ``data_path`` set: read it with ``load`` (sampled down to ``rows``); else ``generate`` it.
    """

    def __init__(
        self,
        *,
        what: str,
        synthetic_source: str,
        load: Callable[[Path], pd.DataFrame],
        generate: Callable[..., pd.DataFrame],
        seed: int,
        rows: int,
        data_path: Path | None,
        log: Callable[[str], None],
    ) -> None:
        self.what, self.synthetic_source = what, synthetic_source
        self._load, self._generate = load, generate
        self.seed, self.rows, self.data_path, self.log = seed, rows, data_path, log
        self._frame: pd.DataFrame | None = None

    @property
    def source(self) -> str:
        return str(self.data_path) if self.data_path is not None else self.synthetic_source

    def get(self) -> pd.DataFrame:
        if self._frame is None:
            if self.data_path is not None:
                self.log(f"loading {self.what} from {self.data_path}")
                frame = self._load(self.data_path)
                if len(frame) > self.rows:
                    frame = frame.sample(n=self.rows, random_state=self.seed)
            else:
                self.log(f"generating {self.rows} synthetic {self.what} (seed {self.seed})")
                frame = self._generate(self.rows, seed=self.seed)
            self._frame = frame
        return self._frame


def build_models(
    repo_dir: Path,
    *,
    seed: int = 42,
    rows: int = DEFAULT_TRIPS,
    data_path: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = _log_info,
    models: tuple[ModelSpec, ...] = MODELS,
    catalogue_rows: int | None = None,
    catalogue_path: Path | None = None,
) -> list[BuildResult]:
    """Train and write a new version of each model in ``repo_dir`` unless already built.

    ``data_path``: real TLC parquet/CSV file or folder (else synthetic trips from ``seed``);
    at most ``rows`` trips are used (a seeded sample of real data). ``catalogue_path``: a real
    product catalogue (JSON lines/CSV, see ``models.classifier.data.load_catalogue``), else
    ``catalogue_rows`` synthetic products (default: see ``TRIPS_PER_PRODUCT``); at most
    ``catalogue_rows`` products of a real one. One result per model, in ``models`` order.
    """
    if catalogue_rows is None:
        catalogue_rows = default_catalogue_rows(rows)
    if rows <= 0 or catalogue_rows <= 0:
        raise ValueError("rows must be positive")
    sources: dict[str, _TrainingData] = {
        "trips": _TrainingData(
            what="trips",
            synthetic_source=SYNTHETIC_SOURCE,
            load=load_trips,
            generate=generate_trips,
            seed=seed,
            rows=rows,
            data_path=data_path,
            log=log,
        ),
        "catalogue": _TrainingData(
            what="products",
            synthetic_source=SYNTHETIC_CATALOGUE,
            load=load_catalogue,
            generate=generate_catalogue,
            seed=seed,
            rows=catalogue_rows,
            data_path=catalogue_path,
            log=log,
        ),
        "none": _TrainingData(  # a packaged model (the embedder): no data, same key every build
            what="nothing",
            synthetic_source="packaged",
            load=lambda _: pd.DataFrame(),
            generate=lambda rows, seed: pd.DataFrame(),
            seed=0,
            rows=0,
            data_path=None,
            log=log,
        ),
    }
    return [
        _build_one(Path(repo_dir), spec, trips=sources[spec.data], force=force, log=log)
        for spec in models
    ]


def _build_one(
    repo_dir: Path,
    spec: ModelSpec,
    *,
    trips: _TrainingData,
    force: bool,
    log: Callable[[str], None],
) -> BuildResult:
    model_dir = repo_dir / spec.name
    model_dir.mkdir(parents=True, exist_ok=True)
    data_path = trips.data_path
    key = {
        "code_hash": code_hash(spec.code_paths),
        "seed": trips.seed,
        "rows": trips.rows,
        "data_path": str(data_path.resolve()) if data_path is not None else None,
        "data_fingerprint": _data_fingerprint(data_path),
    }
    with _locked(model_dir):
        for stale in model_dir.glob(".staging-*"):  # left by a crashed build
            shutil.rmtree(stale, ignore_errors=True)
        skipped = None if force else _up_to_date(model_dir, key)
        if skipped is not None:
            version, card = skipped
            if (
                not (model_dir / "config.pbtxt").exists()
                or not (model_dir / "configs" / f"{LOCAL_CONFIG_NAME}.pbtxt").exists()
            ):
                write_configs(model_dir, spec)
            log(
                f"{spec.name}: version {version} is up to date "
                f"(seed {trips.seed}, {trips.rows} rows)"
            )
            return BuildResult(spec.name, version, False, card, model_dir / str(version))
        return _build(model_dir, spec, key=key, trips=trips, log=log)


def _up_to_date(model_dir: Path, key: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    try:
        stamp = json.loads((model_dir / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("key") != key:
        return None
    version = stamp.get("version")
    if not isinstance(version, int):
        return None
    version_dir = model_dir / str(version)
    card = _read_card(version_dir)
    if card is None or not (version_dir / "model.onnx").is_file():
        return None
    return version, card


def _build(
    model_dir: Path,
    spec: ModelSpec,
    *,
    key: dict[str, Any],
    trips: _TrainingData,
    log: Callable[[str], None],
) -> BuildResult:
    existing = _versions(model_dir)
    data = trips.get() if spec.data != "none" else pd.DataFrame()
    log(f"{spec.name}: training version {(existing[-1] if existing else 0) + 1}")
    trained = spec.train(data, seed=trips.seed, source=trips.source)
    return write_version(model_dir, spec, trained, key=key, log=log)


def publish_version(
    repo_dir: Path,
    spec: ModelSpec,
    trained: Trained,
    *,
    key: dict[str, Any],
    log: Callable[[str], None] = _log_info,
    stamp: bool = True,
) -> BuildResult:
    """Write an already trained model as the next version of ``spec`` (under the build lock).

    For retraining jobs that train (and gate) first; ``key`` goes into the build stamp.
    ``stamp=False`` leaves the build stamp alone (a rollout candidate is not what the next
    build would make, so the next ``models build`` must not think it is up to date or stale).
    """
    model_dir = Path(repo_dir) / spec.name
    model_dir.mkdir(parents=True, exist_ok=True)
    with _locked(model_dir):
        return write_version(model_dir, spec, trained, key=key, log=log, stamp=stamp)


def remove_version(repo_dir: Path, spec: ModelSpec, version: int) -> None:
    """Delete version ``version`` of ``spec`` (under the build lock) and rewrite its configs.

    For rollout candidates taken out again; Triton drops the version on the next
    ``load_model``.
    """
    model_dir = Path(repo_dir) / spec.name
    with _locked(model_dir):
        if version in _versions(model_dir):
            shutil.rmtree(model_dir / str(version))
        write_configs(model_dir, spec)


def write_version(
    model_dir: Path,
    spec: ModelSpec,
    trained: Trained,
    *,
    key: dict[str, Any],
    log: Callable[[str], None],
    stamp: bool = True,
) -> BuildResult:
    """Version max+1 of ``model_dir`` from ``trained``: staged, renamed into place, configs and
    stamp (unless ``stamp`` is false) replaced atomically, only the newest ``KEEP_VERSIONS``
    kept. Call under the lock."""
    existing = _versions(model_dir)
    version = (existing[-1] if existing else 0) + 1
    card: dict[str, Any] = {
        "name": spec.name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in trained.card.items() if k != "name"},
        "code_hash": key.get("code_hash", code_hash(spec.code_paths)),
    }
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
    try:
        (staging / "model.onnx").write_bytes(trained.onnx_bytes)
        shutil.copyfile(ONNX_MODEL_PY, staging / "model.py")
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
        artifacts: dict[str, bytes] = getattr(trained, "artifacts", None) or {}
        for name, content in artifacts.items():
            (staging / Path(name).name).write_bytes(content)
        for file in staging.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        staging.chmod(0o755)
        os.rename(staging, model_dir / str(version))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in _versions(model_dir)[:-KEEP_VERSIONS]:
        log(f"{spec.name}: removing old version {old}")
        shutil.rmtree(model_dir / str(old), ignore_errors=True)
    write_configs(model_dir, spec)
    if stamp:
        record = {"key": key, "version": version, "built_at": card["created_at"]}
        _write_atomic(model_dir / STAMP_FILE, (json.dumps(record, indent=2) + "\n").encode())
    metrics = card["metrics"]
    if "paraphrase_cosine" in metrics:
        log(
            f"{spec.name}: version {version} written: paraphrase cosine "
            f"{metrics['paraphrase_cosine']:.2f}, unrelated {metrics['unrelated_cosine']:.2f}"
        )
    elif "macro_f1" in metrics:
        log(
            f"{spec.name}: version {version} written: macro-F1 {metrics['macro_f1']:.3f} "
            f"(baseline {metrics['baseline_macro_f1']:.3f})"
        )
    else:
        log(
            f"{spec.name}: version {version} written: rmse {metrics['rmse']:.2f} {spec.unit} "
            f"(baseline {metrics['baseline_rmse']:.2f}, "
            f"{metrics['rmse_improvement_vs_baseline']:.0%} better)"
        )
    return BuildResult(spec.name, version, True, card, model_dir / str(version))
