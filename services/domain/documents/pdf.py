"""PDF bytes -> text per page (pypdf), or a clear client error before anything is stored.

    parsed = parse_pdf("manual.pdf", data)   # InvalidDocument / EncryptedDocument (422)
    parsed.pages[0], parsed.content_hash

``parse_pdf`` is CPU work: call it in a thread from async code (``asyncio.to_thread``).
Encrypted files that open with the empty password (owner-password only) are read; any other
encrypted file is refused. A PDF without extractable text (scanned images) is refused too.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

from pypdf import PdfReader

from services.common.errors import InvalidInput
from services.domain.documents.chunking import CHUNKER_VERSION, normalise
from services.domain.documents.embeddings import MODEL_NAME

log = logging.getLogger(__name__)

PDF_MAGIC: Final = b"%PDF-"
MAX_PAGES: Final = 2000
MAX_NAME_CHARS: Final = 255

# pypdf logs every recoverable oddity of a damaged file as a warning; the outcome is what counts.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class InvalidDocument(InvalidInput):
    """The upload is not a readable PDF (or has no text); nothing was stored."""

    type_slug = "invalid-document"
    title = "Invalid document"


class EncryptedDocument(InvalidDocument):
    """The PDF is password-protected; nothing was stored."""

    type_slug = "encrypted-document"
    title = "Encrypted document"


@dataclass(frozen=True, slots=True)
class ParsedPdf:
    """A readable PDF: its name, title, normalised text per page and content hash."""

    name: str
    title: str
    pages: tuple[str, ...]
    content_hash: str

    @property
    def page_count(self) -> int:
        return len(self.pages)


def text_hash(*parts: str) -> str:
    """sha256 over the chunker version, the embedding model and ``parts`` (what chunks depend
    on): equal hash -> the stored chunks are still right."""
    digest = hashlib.sha256(f"{CHUNKER_VERSION}\0{MODEL_NAME}".encode())
    for part in parts:
        digest.update(b"\0")
        digest.update(part.encode("utf-8"))
    return digest.hexdigest()


def document_name(name: str) -> str:
    """The file name part of an upload's name (no folders), checked."""
    base = PurePath(name.replace("\\", "/")).name.strip()
    if not base or len(base) > MAX_NAME_CHARS:
        raise InvalidDocument(f"a document needs a file name of 1 to {MAX_NAME_CHARS} characters")
    return base


def parse_pdf(name: str, data: bytes, *, max_pages: int = MAX_PAGES) -> ParsedPdf:
    """Read ``data`` as a PDF; raise :class:`InvalidDocument` for anything unusable."""
    name = document_name(name)
    if not data.lstrip()[:1024].startswith(PDF_MAGIC) and PDF_MAGIC not in data[:1024]:
        raise InvalidDocument(f"{name} is not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise EncryptedDocument(f"{name} is password-protected; upload an unprotected copy")
        if len(reader.pages) > max_pages:
            raise InvalidDocument(f"{name} has {len(reader.pages)} pages; at most {max_pages}")
        pages = tuple(normalise(page.extract_text() or "") for page in reader.pages)
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except InvalidDocument:
        raise
    except Exception as exc:  # pypdf raises many types on damaged input: all mean "unreadable"
        raise InvalidDocument(f"{name} is not a readable PDF ({type(exc).__name__})") from exc
    if not pages or not any(pages):
        raise InvalidDocument(f"{name} has no extractable text (scanned pages are not supported)")
    title = str(metadata_title).strip()[:MAX_NAME_CHARS] or PurePath(name).stem
    return ParsedPdf(name=name, title=title, pages=pages, content_hash=text_hash(*pages))
