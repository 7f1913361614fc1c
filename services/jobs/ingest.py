"""``modelfleet ingest``: catalogue products and PDF files into pgvector (the refresh CronJob).

Products come from a real catalogue file (JSON lines/CSV, ``models.classifier.data``) or the
synthetic catalogue the classifier is trained on (same seed and size: the same product ids);
PDFs from files or folders (the chart mounts a PersistentVolumeClaim at ``INGEST_PDF_DIR``).
Everything is idempotent (:mod:`services.domain.documents.ingest`): a second run with the same
inputs embeds and writes nothing. A PDF that cannot be read is reported and skipped; the run
then exits non-zero. When anything changed, the chatbot's answer cache is invalidated (a new
corpus generation in NATS KV).

    report = await run_ingest(settings=IngestSettings(), pdf_paths=[Path("docs/")], say=print)
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tqdm import tqdm  # type: ignore[import-untyped]

from services.common.db import create_pool
from services.common.errors import ModelfleetError
from services.common.nats import connect
from services.common.triton import TritonClient
from services.domain.documents.corpus import bump_generation
from services.domain.documents.embeddings import Embedder, EmbeddingSettings
from services.domain.documents.ingest import (
    IngestResult,
    Product,
    ProductIngestSummary,
    ingest_pdf,
    ingest_products,
)
from services.domain.documents.store import apply_documents_schema

log = logging.getLogger(__name__)

Say = Callable[[str], None]
NATS_CONNECT_TIMEOUT_S = 5.0


class IngestSettings(EmbeddingSettings):
    """Environment -> settings of the ingestion job (prefix ``INGEST_``)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_")

    service_name: str = "ingest"
    pdf_dir: str = Field(default="", description="Folder of PDFs to ingest ('' = none).")
    products: bool = Field(default=True, description="Ingest the product catalogue.")
    catalogue_path: str = Field(
        default="", description="Real catalogue (JSON lines/CSV); '' = the synthetic one."
    )
    catalogue_rows: int = Field(
        default=5000, ge=1, description="Products of the synthetic catalogue (or at most)."
    )
    catalogue_seed: int = Field(default=42, description="Seed of the synthetic catalogue.")
    invalidate_cache: bool = Field(
        default=True, description="Bump the chatbot's corpus generation when anything changed."
    )


@dataclass
class IngestReport:
    """What one run did."""

    products: ProductIngestSummary | None = None
    pdfs: list[IngestResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when any document was created or updated."""
        products = self.products is not None and (self.products.created + self.products.updated)
        return bool(products) or any(r.status != "unchanged" for r in self.pdfs)


def catalogue_products(catalogue: pd.DataFrame) -> list[Product]:
    """Rows of a catalogue frame (``models.classifier.data`` schema) as products."""
    return [
        Product(
            product_id=str(row.product_id),
            title=str(row.title),
            description=str(row.description or ""),
            brand=str(row.brand or ""),
            price=float(row.price),
            category_path=str(row.category_path),
        )
        for row in catalogue.itertuples(index=False)
        if row.category_path and row.price == row.price  # no category / NaN price: skipped
    ]


def load_products(settings: IngestSettings) -> list[Product]:
    """The catalogue the settings name: a file, or the synthetic catalogue (no images)."""
    from models.classifier.data import generate_catalogue, load_catalogue  # jobs may use models/

    if settings.catalogue_path:
        frame = load_catalogue(Path(settings.catalogue_path))
        return catalogue_products(frame.head(settings.catalogue_rows))
    frame = generate_catalogue(settings.catalogue_rows, seed=settings.catalogue_seed, images=False)
    return catalogue_products(frame)


def pdf_files(paths: Sequence[Path]) -> list[Path]:
    """The PDF files named, and the ``*.pdf`` files under the folders named, sorted."""
    files: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
        elif path.is_file():
            files.add(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(files)


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on a terminal (stderr), nothing otherwise (CronJob logs stay clean)."""
    with tqdm(total=total, unit=what, desc=what, disable=not sys.stderr.isatty()) as bar:
        yield bar.update


async def run_ingest(
    *,
    settings: IngestSettings,
    pdf_paths: Sequence[Path] = (),
    say: Say = log.info,
) -> IngestReport:
    """Ingest the catalogue (when ``settings.products``) and the PDFs; see the module doc."""
    paths = [*pdf_paths, *([Path(settings.pdf_dir)] if settings.pdf_dir else [])]
    files = pdf_files(paths)
    products = load_products(settings) if settings.products else []
    report = IngestReport()
    pool = await create_pool(settings)
    triton = TritonClient.from_settings(settings)
    try:
        await apply_documents_schema(pool)
        embedder = Embedder.from_settings(settings, triton=triton)
        if products:
            with progress_bar(len(products), "products") as update:
                report.products = await ingest_products(pool, embedder, products, progress=update)
            summary = report.products
            say(
                f"products: {summary.created} created, {summary.updated} updated, "
                f"{summary.unchanged} unchanged"
            )
        with progress_bar(len(files), "pdfs") as update:
            for file in files:
                try:
                    result = await ingest_pdf(pool, embedder, file.name, file.read_bytes())
                except (ModelfleetError, OSError) as exc:
                    detail = getattr(exc, "detail", str(exc))
                    report.failures.append((str(file), detail))
                    say(f"{file}: FAILED: {detail}")
                    continue
                finally:
                    update(1)
                report.pdfs.append(result)
                say(f"{file.name}: {result.status} ({result.pages} pages, {result.chunks} chunks)")
    finally:
        await triton.close()
        await pool.close()
    if report.changed and settings.invalidate_cache:
        await _invalidate_cache(settings, say)
    return report


async def _invalidate_cache(settings: IngestSettings, say: Say) -> None:
    """New corpus generation: the chatbot stops serving answers cached before this run."""
    try:
        # connect() retries for ever once it has a server list; a job gives it a deadline.
        nc = await asyncio.wait_for(
            connect(settings.nats_url, name="ingest"), timeout=NATS_CONNECT_TIMEOUT_S
        )
    except (ModelfleetError, TimeoutError) as exc:
        detail = getattr(exc, "detail", f"no NATS at {settings.nats_url}")
        say(f"warning: answer cache not invalidated ({detail}); cached answers expire by TTL")
        return
    try:
        await bump_generation(nc.jetstream())
    except ModelfleetError as exc:
        say(f"warning: answer cache not invalidated ({exc.detail}); cached answers expire by TTL")
    finally:
        await nc.close()
