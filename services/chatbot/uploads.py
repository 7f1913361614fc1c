"""PDF uploads: checked in the request, ingested in the background, status in ``documents``.

The request path checks the size (413) and the ``%PDF-`` signature (415), then parses the file
in a thread (:func:`services.domain.documents.pdf.parse_pdf`: unreadable, encrypted or textless
-> 422), all before anything is written. Then :func:`begin_pdf` creates (or marks) the
document ``processing`` and its id is the status URL's; :class:`Ingestion` embeds and stores
the chunks in a background task of the process (one transaction: a failure leaves the document
``failed`` with the reason and nothing half-stored) and, on success, bumps the corpus generation
so no answer cached before the upload is served again. Tasks still running at shutdown are
cancelled and their documents marked ``failed`` ("interrupted"), so none stays ``processing``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from services.chatbot import metrics
from services.common.errors import PayloadTooLarge, UnsupportedMediaType
from services.domain.documents.embeddings import TextEmbedder
from services.domain.documents.ingest import begin_pdf, ingest_parsed
from services.domain.documents.pdf import PDF_MAGIC, ParsedPdf, parse_pdf
from services.domain.documents.store import mark_failed

log = logging.getLogger(__name__)

#: Called after a document changed (bumps the corpus generation).
OnChange = Callable[[], Awaitable[None]]


def check_upload(data: bytes, limit: int) -> None:
    """413 over ``limit`` bytes, 415 without the PDF signature."""
    if len(data) > limit:
        raise PayloadTooLarge(f"the file is over the limit of {limit} bytes")
    if not data.lstrip()[:1024].startswith(PDF_MAGIC):
        raise UnsupportedMediaType("the file is not a PDF (no %PDF- signature)")


async def parse_upload(name: str, data: bytes) -> ParsedPdf:
    """The parsed PDF (in a thread); 422 problem for a bad, encrypted or textless file."""
    return await asyncio.to_thread(parse_pdf, name, data)


class Ingestion:
    """Background ingestion tasks of this process (see module doc)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: TextEmbedder,
        on_change: OnChange,
        *,
        timeout_s: float,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.on_change = on_change
        self.timeout_s = timeout_s
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def submit(self, parsed: ParsedPdf) -> tuple[uuid.UUID, bool]:
        """The document id, and whether an ingestion started (False: same content, ready)."""
        document_id, todo = await begin_pdf(self.pool, parsed)
        if todo:
            task = asyncio.create_task(self._run(document_id, parsed), name=f"ingest-{document_id}")
            self.tasks[document_id] = task
            task.add_done_callback(lambda _: self.tasks.pop(document_id, None))
        return document_id, todo

    async def _run(self, document_id: uuid.UUID, parsed: ParsedPdf) -> None:
        try:
            await asyncio.wait_for(
                ingest_parsed(self.pool, self.embedder, parsed), timeout=self.timeout_s
            )
        except asyncio.CancelledError:
            await asyncio.shield(self._fail(document_id, "interrupted: the service stopped"))
            raise
        except TimeoutError:
            await self._fail(document_id, f"ingestion took longer than {self.timeout_s:g} s")
            return
        except Exception as exc:  # the document is marked failed by ingest_parsed; log, count
            log.warning("ingestion of %s failed: %s", parsed.name, exc)
            metrics.UPLOADS.labels("failed").inc()
            return
        metrics.UPLOADS.labels("ingested").inc()
        try:
            await self.on_change()
        except Exception as exc:  # cached answers then expire by TTL only
            log.warning("corpus generation not bumped after %s: %s", parsed.name, exc)

    async def _fail(self, document_id: uuid.UUID, error: str) -> None:
        metrics.UPLOADS.labels("failed").inc()
        try:
            await mark_failed(self.pool, document_id, error, timeout_s=5.0)
        except Exception as exc:  # Postgres down: the row stays as it was, logged
            log.warning("cannot mark document %s failed: %s", document_id, exc)

    async def close(self) -> None:
        """Cancel running ingestions (their documents become failed) and wait for them."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
