"""Text that Postgres can store: ``text`` and ``jsonb`` hold no NUL character (U+0000).

A request field that ends up in a column is declared :data:`PgText`, so a NUL is a 422 naming
the field instead of a database error (a 500) at the insert; its schema's ``pattern`` says so.
Text that must not be blank is checked against :data:`BLANK` (the characters :func:`is_blank`
strips), which :data:`NOT_BLANK_PATTERN` states for the schema.

    title: PgText = Field(default="", max_length=10_000)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field


def no_nul(value: str) -> str:
    """``value`` unchanged; ValueError when it holds a NUL character."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (U+0000), which Postgres text cannot hold")
    return value


#: The JSON Schema pattern of :data:`PgText` (what :func:`no_nul` checks).
NO_NUL_PATTERN = "^[^\\u0000]*$"

PgText = Annotated[
    str, AfterValidator(no_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})
]
"""A string field stored in Postgres (the OpenAPI schema says: no NUL)."""


#: What a blank text is made of: ``str.strip`` would also strip characters a JSON Schema engine
#: may not call white space (U+001C-U+001F), so the service and its schema both use these.
BLANK = " \t\n\r\f\v"
#: The JSON Schema pattern of a text that is not blank (holds a character outside :data:`BLANK`).
NOT_BLANK_PATTERN = "[^ \\t\\n\\r\\f\\v]"


def is_blank(value: str) -> bool:
    """True when ``value`` holds only :data:`BLANK` characters (or nothing)."""
    return not value.strip(BLANK)
