"""Idempotency by content hash: what ingestion decides to write."""

from __future__ import annotations

from services.domain.documents.ingest import Product, plan
from services.domain.documents.pdf import text_hash


def test_plan_creates_updates_and_leaves_alone() -> None:
    existing = {
        "same": ("h1", "ready"),
        "changed": ("h2", "ready"),
        "failed-before": ("h3", "failed"),
        "interrupted": ("h4", "processing"),
    }
    incoming = {
        "same": "h1",
        "changed": "h2-new",
        "failed-before": "h3",
        "interrupted": "h4",
        "new": "h5",
    }
    assert plan(existing, incoming) == {
        "same": "unchanged",
        "changed": "updated",
        "failed-before": "updated",
        "interrupted": "updated",
        "new": "created",
    }


def test_text_hash_depends_on_every_page_and_their_order() -> None:
    assert text_hash("a", "b") == text_hash("a", "b")
    assert text_hash("a", "b") != text_hash("b", "a")
    assert text_hash("ab") != text_hash("a", "b")


def _product(**changes: object) -> Product:
    values: dict[str, object] = {
        "product_id": "P1",
        "title": "Acme Laptop 14",
        "description": "A light laptop.",
        "brand": "Acme",
        "price": 499.0,
        "category_path": "Electronics > Computers > Laptops",
    }
    values.update(changes)
    return Product(**values)  # type: ignore[arg-type]


def test_product_hash_changes_with_what_its_chunk_says() -> None:
    base = _product()
    assert base.content_hash() == _product().content_hash()
    assert base.content_hash() != _product(price=449.0).content_hash()
    assert base.content_hash() != _product(description="Now lighter.").content_hash()
    assert base.category == "Laptops"
    assert "499.00 USD" in base.text()
