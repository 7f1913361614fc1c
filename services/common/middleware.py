"""Pure ASGI middleware shared by every service (BaseHTTPMiddleware costs a task per request).

``RequestIdMiddleware`` takes ``X-Request-ID`` from the request or makes one, keeps it in
:data:`services.common.logging.request_id_var` for the request and echoes it on the response.
"""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logging import REQUEST_ID_HEADER, request_id_var

_HEADER_BYTES = REQUEST_ID_HEADER.encode()
_MAX_REQUEST_ID_LENGTH = 128


def request_id_of(scope: Scope) -> str:
    """The request's ``X-Request-ID`` if it is usable, else a new random id."""
    for name, value in scope["headers"]:
        if name == _HEADER_BYTES:
            request_id: str = value.decode("latin-1")[:_MAX_REQUEST_ID_LENGTH]
            if request_id and request_id.isprintable():
                return request_id
            break
    return uuid.uuid4().hex


def with_request_id(send: Send, request_id: str) -> Send:
    """``send`` that adds the ``X-Request-ID`` header to the response."""
    raw_id = request_id.encode("latin-1")

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (_HEADER_BYTES, raw_id)]
        await send(message)

    return send_with_id


class RequestIdMiddleware:
    """Attach a request id to the request context and to the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, with_request_id(send, request_id))
        finally:
            request_id_var.reset(token)
