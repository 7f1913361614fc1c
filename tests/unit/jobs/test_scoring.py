"""Batch scoring logic without servers: chunk plan, resume position, records, pipeline order,
bad input files, settings, progress bar."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from models.repository import MODELS
from models.ride_duration.data import generate_trips
from services.common.errors import InvalidInput
from services.domain.taxi.features import N_FEATURES
from services.jobs.scoring.file_source import FileSource
from services.jobs.scoring.progress import Progress, render_bar
from services.jobs.scoring.runner import (
    MODEL_OUTPUTS,
    Scored,
    _pipeline,
    check_models,
    chunk_records,
)
from services.jobs.scoring.settings import ScoreSettings
from services.jobs.scoring.sources import Chunk, chunk_bounds


@pytest.mark.parametrize(
    ("total", "done", "size", "want"),
    [
        (10, 0, 4, [(0, 4), (4, 8), (8, 10)]),
        (10, 4, 4, [(4, 8), (8, 10)]),  # resumed after one chunk
        (10, 6, 4, [(6, 10)]),  # resumed mid-plan with another chunk size
        (10, 10, 4, []),  # complete
        (3, 0, 100, [(0, 3)]),
    ],
)
def test_chunk_bounds(total: int, done: int, size: int, want: list[tuple[int, int]]) -> None:
    assert list(chunk_bounds(total, done, size)) == want


def test_chunks_cover_every_row_exactly_once_across_a_resume() -> None:
    first = list(chunk_bounds(1001, 0, 70))[:5]
    done = first[-1][1]
    rest = list(chunk_bounds(1001, done, 70))
    rows = [i for start, stop in first + rest for i in range(start, stop)]
    assert rows == list(range(1001))


@pytest.mark.parametrize(("total", "done", "size"), [(10, 11, 4), (10, -1, 4), (10, 0, 0)])
def test_chunk_bounds_rejects_impossible_positions(total: int, done: int, size: int) -> None:
    with pytest.raises(ValueError):
        list(chunk_bounds(total, done, size))


def _trips_csv(tmp_path: Path, rows: int = 50) -> Path:
    path = tmp_path / "trips.csv"
    generate_trips(rows, seed=3).to_csv(path, index=False)
    return path


def test_file_source_reads_tlc_csv_and_resumes_at_a_row(tmp_path: Path) -> None:
    source = FileSource.open(_trips_csv(tmp_path, 50))
    assert source.rows == 50 and len(source.fingerprint) == 64

    async def collect(done: int) -> list[Chunk]:
        return [chunk async for chunk in source.chunks(done=done, size=20)]

    chunks = asyncio.run(collect(20))
    assert [c.start for c in chunks] == [20, 40]
    assert chunks[0].row_keys[0] == "20" and chunks[-1].row_keys[-1] == "49"
    assert chunks[0].features.shape == (20, 26) and chunks[0].features.dtype == np.float32


def test_file_fingerprint_changes_with_content(tmp_path: Path) -> None:
    path = _trips_csv(tmp_path, 10)
    before = FileSource.open(path).fingerprint
    path.write_text(path.read_text() + path.read_text().splitlines()[-1] + "\n")
    assert FileSource.open(path).fingerprint != before


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("trips.csv", "", "not a readable TLC trip file"),
        ("trips.csv", "a,b\n1,2\n", "missing required column"),
        ("trips.parquet", "not parquet at all", "not a readable TLC trip file"),
        ("trips.txt", "x", "unsupported trip file"),
    ],
)
def test_bad_files_are_invalid_input(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        FileSource.open(path)


def test_missing_file_and_missing_pickup_times_are_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        FileSource.open(tmp_path / "nope.parquet")
    trips = generate_trips(5, seed=1)
    trips.loc[3, "tpep_pickup_datetime"] = None
    path = tmp_path / "holes.csv"
    trips.to_csv(path, index=False)
    with pytest.raises(InvalidInput, match=r"1 trips have no tpep_pickup_datetime \(first: row 3"):
        FileSource.open(path)


def test_header_only_file_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    generate_trips(3, seed=1).head(0).to_csv(path, index=False)
    with pytest.raises(InvalidInput, match="no trips"):
        FileSource.open(path)


def test_chunk_records_one_per_row_and_model() -> None:
    chunk = Chunk(start=0, row_keys=["0", "1"], features=np.zeros((2, 26), np.float32))
    scored = {
        "tip_amount": Scored(np.array([1.5, 2.5], np.float32), ["3", "3"]),
        "ride_duration": Scored(np.array([10.0, 11.0], np.float32), ["1", "2"]),
    }
    records = chunk_records("run", chunk, scored)
    assert records == [
        ("run", "0", "tip_amount", "3", 1.5),
        ("run", "1", "tip_amount", "3", 2.5),
        ("run", "0", "ride_duration", "1", 10.0),
        ("run", "1", "ride_duration", "2", 11.0),
    ]
    with pytest.raises(RuntimeError):
        chunk_records("run", chunk, {"x": Scored(np.array([1.0], np.float32), ["1"])})


class _SumScorer:
    """Test scorer: the row sum of the features (records the order of calls)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def score(self, model: str, features: np.ndarray) -> Scored:  # type: ignore[type-arg]
        self.calls.append(model)
        await asyncio.sleep(0)
        return Scored(features.sum(axis=1).astype(np.float32), ["1"] * len(features))


def test_pipeline_keeps_chunk_order_and_marks_the_last() -> None:
    async def chunks() -> AsyncIterator[Chunk]:
        for start in (0, 2, 4):
            x = np.full((2, 26), start, np.float32)
            yield Chunk(start=start, row_keys=[str(start), str(start + 1)], features=x)

    async def run() -> list[tuple[int, float, bool]]:
        scorer = _SumScorer()
        out = [
            (chunk.start, float(scored["m"].values[0]), last)
            async for chunk, scored, last in _pipeline(chunks(), scorer, ("m",))
        ]
        assert scorer.calls == ["m", "m", "m"]
        return out

    assert asyncio.run(run()) == [(0, 0.0, False), (2, 52.0, False), (4, 104.0, True)]


def test_unknown_model_is_invalid_input() -> None:
    check_models(("ride_duration", "tip_amount", "total_amount"))
    with pytest.raises(InvalidInput, match="classifier"):
        check_models(("classifier",))


def test_settings_models_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORE_MODELS", " tip_amount , ride_duration ")
    monkeypatch.setenv("SCORE_CHUNK_ROWS", "500")
    settings = ScoreSettings()
    assert settings.model_names == ("tip_amount", "ride_duration")
    assert settings.chunk_rows == 500
    with pytest.raises(ValidationError):
        ScoreSettings(models="a,a")
    with pytest.raises(ValidationError):
        ScoreSettings(chunk_rows=0)


def test_progress_bar_only_on_a_terminal() -> None:
    assert render_bar(12_000, 40_000, 8000.0, width=10).startswith("[###.......] 12,000/40,000")
    pipe = io.StringIO()
    bar = Progress(total=10, done=0, out=pipe)
    bar.advance(10)
    bar.close()
    assert pipe.getvalue() == ""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = Progress(total=10, done=4, out=tty)
    bar.advance(6)
    bar.close()
    assert "10/10 rows" in tty.getvalue() and tty.getvalue().endswith("\n")


def test_model_outputs_match_the_model_registry() -> None:
    # Every model of the ride features (not the sensor-aware one: a stored ride has no reading).
    assert MODEL_OUTPUTS == {
        s.name: s.output for s in MODELS if s.data == "trips" and s.input_dim == N_FEATURES
    }


def test_rides_scoring_imports_no_training_libraries() -> None:
    """The CronJob runs in the service image: no pandas, scikit-learn or skl2onnx there."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'pandas', 'sklearn', 'skl2onnx', 'onnx'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import services.jobs.scoring.runner, services.cli\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
