"""The request-body limit, written once: 413 as soon as a body passes its route's limit.

The security layer (:mod:`services.common.security.guard`) wraps every request's ``receive``
with :func:`limit_body`, using the limit its route declares (else the service's
``<P>_MAX_BODY_BYTES``), so a handler reads its body the ordinary way (``await request.body()``,
``request.form()``, a fast route's read) and never counts bytes itself. A declared
``Content-Length`` over the limit is refused before a byte is read; a chunked body is counted
while it streams.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive


class BodyTooLarge(HTTPException):
    """413: the body passed its limit.

    A Starlette ``HTTPException`` because FastAPI's body reader lets those through (any other
    exception raised while it reads becomes a 400); the app's error handler renders it as
    problem+json, and a fast route catches it.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


def limit_body(receive: Receive, limit: int, *, declared: str | None) -> Receive:
    """``receive`` raising :class:`BodyTooLarge` once the body passes ``limit`` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        size_declared = int(declared)

        async def refuse() -> Message:
            raise BodyTooLarge(f"request body of {size_declared} bytes is over {limit} bytes")

        return refuse
    size = 0

    async def limited() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(f"request body is over {limit} bytes")
        return message

    return limited
