"""``modelfleet ingest``: catalogue products and PDF files into pgvector (the refresh CronJob).

Products come from a real catalogue file (JSON lines/CSV, ``models.classifier.data``) or the
synthetic catalogue the classifier is trained on (same seed and size: the same product ids);
PDFs from files or folders (the chart mounts a PersistentVolumeClaim at ``INGEST_PDF_DIR``).
Everything is idempotent (:mod:`services.domain.documents.ingest`): a second run with the same
inputs embeds and writes nothing. A PDF that cannot be read is reported and skipped; the run
then exits non-zero. When anything changed, the chatbot's answer cache is invalidated (a new
corpus generation in NATS KV).

Duplicates, decided before anything is written (:func:`unique_products`, :func:`unique_pdfs`):

- a product id on several rows of the catalogue: the last row wins (a later row of an export is
  the later edit), the product is ingested once and the run names the repeated ids. Without
  this a repeat beyond one write batch (256 products) was written twice per run, first the old
  row then the new, so no run ever found the catalogue unchanged.
- PDFs: a document is known by its file name. Copies of one file under several folders are
  ingested once; different files with the same name are each reported as a failure (the run
  exits non-zero) and none of them is written: which one is the document is not for the job to
  guess (before, each run replaced one by the other).

    report = await run_ingest(settings=IngestSettings(), pdf_paths=[Path("docs/")], say=print)
"""

from __future__ import annotations

import asyncio
import filecmp
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
    repeated_products: list[str] = field(default_factory=list)
    """Product ids on more than one catalogue row (the last row of each was ingested)."""

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


def unique_products(products: Sequence[Product]) -> tuple[list[Product], list[str]]:
    """Each product id once, the last row of an id winning (at the place of its first row);
    and the ids that came more than once, in the order they first came."""
    latest: dict[str, Product] = {}
    rows: dict[str, int] = {}
    for product in products:
        latest[product.product_id] = product
        rows[product.product_id] = rows.get(product.product_id, 0) + 1
    return list(latest.values()), [key for key, count in rows.items() if count > 1]


@dataclass(frozen=True)
class PdfSelection:
    """The PDF files to ingest, one per file name."""

    files: list[Path]
    conflicts: list[tuple[str, str]]
    """(file, why) of every file whose name another, different file has: none is ingested."""
    copies: list[tuple[Path, Path]]
    """(copy, the file kept): the same bytes under another folder, not ingested again."""


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:  # unreadable: not known to be a copy
        return False


def unique_pdfs(files: Sequence[Path]) -> PdfSelection:
    """One file per name (a document's id is its file name); see the module docstring."""
    by_name: dict[str, list[Path]] = {}
    for file in files:
        by_name.setdefault(file.name, []).append(file)
    kept: list[Path] = []
    conflicts: list[tuple[str, str]] = []
    copies: list[tuple[Path, Path]] = []
    for name, group in by_name.items():
        first, *others = group
        if all(_same_bytes(first, other) for other in others):
            kept.append(first)
            copies.extend((other, first) for other in others)
            continue
        for file in group:
            rest = ", ".join(str(other) for other in group if other != file)
            conflicts.append(
                (str(file), f"another file is also named {name!r} ({rest}): rename one")
            )
    return PdfSelection(sorted(kept), conflicts, copies)


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
    selection = unique_pdfs(pdf_files(paths))
    files = selection.files
    products, repeated = unique_products(load_products(settings) if settings.products else [])
    report = IngestReport(failures=list(selection.conflicts), repeated_products=repeated)
    for conflicting, why in selection.conflicts:
        say(f"{conflicting}: FAILED: {why}")
    for copy, original in selection.copies:
        say(f"{copy}: the same file as {original}: ingested once")
    if repeated:
        shown = ", ".join(repeated[:10])
        if len(repeated) > 10:
            shown += f" (+{len(repeated) - 10} more)"
        say(f"products: {len(repeated)} id(s) on several rows, the last row of each wins: {shown}")
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
