"""Upload checks that run before anything is parsed or stored."""

from __future__ import annotations

import pytest

from services.chatbot.uploads import check_upload
from services.common.errors import PayloadTooLarge, UnsupportedMediaType


def test_a_pdf_within_the_limit_passes() -> None:
    check_upload(b"%PDF-1.7\n...", limit=1024)
    check_upload(b"\n  %PDF-1.4\n...", limit=1024)  # leading white space is allowed


def test_over_the_limit_is_413_before_the_type_is_looked_at() -> None:
    with pytest.raises(PayloadTooLarge):
        check_upload(b"x" * 2048, limit=1024)


@pytest.mark.parametrize("data", [b"", b"hello", b"PK\x03\x04 a zip", b"%PS-Adobe"])
def test_anything_but_a_pdf_is_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_upload(data, limit=1024)
