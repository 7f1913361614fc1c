"""Text that Postgres can store: ``text`` and ``jsonb`` hold no NUL character (U+0000).

A request field that ends up in a column is declared :data:`PgText`, so a NUL is a 422 naming
the field instead of a database error (a 500) at the insert.

    title: PgText = Field(default="", max_length=10_000)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def no_nul(value: str) -> str:
    """``value`` unchanged; ValueError when it holds a NUL character."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (U+0000), which Postgres text cannot hold")
    return value


PgText = Annotated[str, AfterValidator(no_nul)]
"""A string field stored in Postgres."""
