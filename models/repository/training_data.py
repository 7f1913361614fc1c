"""The training data of one build call: trips, a product catalogue, or none (a packaged model).

Each is made (synthetic, from the seed) or loaded (a real file, sampled down to ``rows``) on
first use, so a build that skips every model never generates or reads any data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import pandas as pd

from models.classifier.data import generate_catalogue, load_catalogue
from models.ride_duration.data import generate_trips, load_trips

SYNTHETIC_SOURCE: Final = "synthetic-tlc"
SYNTHETIC_CATALOGUE: Final = "synthetic-catalogue"


class TrainingData:
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


def training_data(
    *,
    seed: int,
    rows: int,
    data_path: Path | None,
    catalogue_rows: int,
    catalogue_path: Path | None,
    log: Callable[[str], None],
) -> dict[str, TrainingData]:
    """The data sets of a build by ``ModelSpec.data`` name: ``trips``, ``catalogue``, ``none``."""
    return {
        "trips": TrainingData(
            what="trips",
            synthetic_source=SYNTHETIC_SOURCE,
            load=load_trips,
            generate=generate_trips,
            seed=seed,
            rows=rows,
            data_path=data_path,
            log=log,
        ),
        "catalogue": TrainingData(
            what="products",
            synthetic_source=SYNTHETIC_CATALOGUE,
            load=load_catalogue,
            generate=generate_catalogue,
            seed=seed,
            rows=catalogue_rows,
            data_path=catalogue_path,
            log=log,
        ),
        "none": TrainingData(  # a packaged model (the embedder): no data, same key every build
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
