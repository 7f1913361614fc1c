"""The ingestion job's answer to duplicates: a repeated product id's last row wins; PDFs of one
file name are ingested once when they are copies, and all refused when they differ."""

from __future__ import annotations

from pathlib import Path

from services.domain.documents.ingest import Product
from services.jobs.ingest import unique_pdfs, unique_products


def product(product_id: str, title: str) -> Product:
    return Product(product_id, title, "", "Brand", 1.0, "A > B")


def test_a_repeated_product_id_keeps_its_last_row_at_its_first_place() -> None:
    titles = [("p1", "old"), ("p2", "two"), ("p1", "newer"), ("p3", "three"),
              ("p1", "newest"), ("p3", "three again")]  # fmt: skip
    rows = [product(key, title) for key, title in titles]
    products, repeated = unique_products(rows)
    assert [(p.product_id, p.title) for p in products] == [
        ("p1", "newest"),
        ("p2", "two"),
        ("p3", "three again"),
    ]
    assert repeated == ["p1", "p3"]


def test_unique_products_are_left_as_they_are() -> None:
    rows = [product("p1", "one"), product("p2", "two")]
    assert unique_products(rows) == (rows, [])
    assert unique_products([]) == ([], [])


def test_copies_of_one_pdf_are_ingested_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, copy = tmp_path / "a" / "manual.pdf", tmp_path / "b" / "manual.pdf"
    other = tmp_path / "a" / "other.pdf"
    for file, data in ((first, b"%PDF same"), (copy, b"%PDF same"), (other, b"%PDF other")):
        file.write_bytes(data)
    selection = unique_pdfs([first, other, copy])
    assert selection.files == sorted([first, other])
    assert selection.copies == [(copy, first)]
    assert selection.conflicts == []


def test_different_pdfs_of_one_name_are_all_refused(tmp_path: Path) -> None:
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    one, two, three = (tmp_path / f / "manual.pdf" for f in ("a", "b", "c"))
    one.write_bytes(b"%PDF one")
    two.write_bytes(b"%PDF two")
    three.write_bytes(b"%PDF one")
    fine = tmp_path / "a" / "fine.pdf"
    fine.write_bytes(b"%PDF fine")
    selection = unique_pdfs([one, two, three, fine])
    assert selection.files == [fine]
    assert selection.copies == []
    assert [path for path, _ in selection.conflicts] == [str(one), str(two), str(three)]
    why = dict(selection.conflicts)[str(two)]
    assert "'manual.pdf'" in why and str(one) in why and str(three) in why
    assert str(two) not in why
