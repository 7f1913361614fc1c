"""PDF parsing: text per page, and a clear error for anything unusable."""

from __future__ import annotations

import io

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from services.domain.documents.pdf import EncryptedDocument, InvalidDocument, parse_pdf


def _pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def _encrypted(data: bytes, password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_text_per_page_and_a_stable_hash() -> None:
    data = _pdf("The Orion lamp uses 7 watts.", "Page two is about the kettle.")
    parsed = parse_pdf("folder/Manual.pdf", data)
    assert parsed.name == "Manual.pdf"
    assert parsed.page_count == 2
    assert "Orion lamp uses 7 watts" in parsed.pages[0]
    assert "kettle" in parsed.pages[1]
    assert parsed.content_hash == parse_pdf("Manual.pdf", data).content_hash
    assert parsed.content_hash != parse_pdf("Manual.pdf", _pdf("Other text.")).content_hash


def test_garbage_is_invalid() -> None:
    with pytest.raises(InvalidDocument, match="not a PDF"):
        parse_pdf("x.pdf", b"hello, I am not a PDF")
    with pytest.raises(InvalidDocument, match="not a readable PDF"):
        parse_pdf("x.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 100)


def test_a_truncated_pdf_is_invalid() -> None:
    data = _pdf("Some text here.")
    with pytest.raises(InvalidDocument):
        parse_pdf("cut.pdf", data[: len(data) // 3])


def test_password_protected_pdf_is_refused_with_its_own_type() -> None:
    with pytest.raises(EncryptedDocument) as caught:
        parse_pdf("secret.pdf", _encrypted(_pdf("Secret facts."), "s3cret"))
    assert caught.value.status == 422
    assert caught.value.type_slug == "encrypted-document"


def test_owner_password_only_pdf_is_read() -> None:
    parsed = parse_pdf("open.pdf", _encrypted(_pdf("Readable facts."), ""))
    assert "Readable facts" in parsed.pages[0]


def test_a_pdf_without_text_is_refused() -> None:
    with pytest.raises(InvalidDocument, match="no extractable text"):
        parse_pdf("scan.pdf", _pdf(""))


def test_a_name_is_required() -> None:
    with pytest.raises(InvalidDocument):
        parse_pdf("  ", _pdf("x"))
