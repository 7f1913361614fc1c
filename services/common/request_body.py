"""Reading a request body with a size limit, written once: 413 as soon as the limit is passed.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body
is counted while it streams. The bytes read are cached by Starlette, so ``request.form()`` can
parse them afterwards (multipart uploads).

    body = await read_body(request, limit=settings.max_upload_bytes + 64 * 1024)
"""

from __future__ import annotations

from starlette.requests import Request

from services.common.errors import PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 (PayloadTooLarge) as soon as it passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # what Request.body()/form() read next (Starlette's own cache)
    return body
