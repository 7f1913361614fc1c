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


class RequestIdMiddleware:
    """Attach a request id to the request context and to the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == _HEADER_BYTES:
                request_id = value.decode("latin-1")[:_MAX_REQUEST_ID_LENGTH]
                break
        if not request_id or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        raw_id = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (_HEADER_BYTES, raw_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
