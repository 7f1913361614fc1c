"""Triton inference over its HTTP/REST endpoint with binary tensors: the hot path's transport.

:class:`services.common.triton.TritonClient` sends ``infer`` here when ``TRITON_INFER_TRANSPORT``
is ``http`` (decision 53: one call of one row costs ~0.54 ms of CPU through tritonclient's
grpc.aio on this 2-core machine, ~0.41 ms through aiohttp, ~0.15 ms here). The request is
Triton's binary tensor data extension (the JSON header, ``Inference-Header-Content-Length`` long,
then each input's raw little-endian bytes), the outputs are asked for as binary too. Every other
call of the client (readiness, the repository index, model control, configs) stays on gRPC.

The HTTP/1.1 is this module's own, on asyncio protocols, because it needs so little: a POST
with a Content-Length body to one server, an answer with a Content-Length body (Triton's are;
anything else is refused), keep-alive connections in a pool, one request per connection at a
time. A deadline covers connecting, sending and the whole answer; a connection whose request
timed out or failed is closed, never reused. A kept-alive connection the server has closed
meanwhile fails before any answer: the call is sent once more on a new connection.

Errors leave as tritonclient's :class:`~tritonclient.utils.InferenceServerException` with the
gRPC status the HTTP answer means, so the client's one retry policy and error translation apply
unchanged:

    503 / connection refused or dropped  -> UNAVAILABLE (retried inside the deadline)
    404                                  -> NOT_FOUND
    our own timeout, 408, 504            -> DEADLINE_EXCEEDED
    400                                  -> INVALID_ARGUMENT
    anything else                        -> INTERNAL

    transport = TritonHttpInfer("http://127.0.0.1:8100")
    output = await transport.infer("ride_duration", {"features": x}, outputs=["duration_minutes"],
                                   version="", request_id="", timeout_s=0.5)
    await transport.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import orjson
from tritonclient.utils import (
    InferenceServerException,
    deserialize_bytes_tensor,
    np_to_triton_dtype,
    serialize_byte_tensor,
    triton_to_np_dtype,
)

if TYPE_CHECKING:
    from services.common.triton import InferOutput

#: The binary tensor data extension's header: the length of the JSON part of a body.
HEADER_LENGTH = "Inference-Header-Content-Length"
_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _error(status: str, message: str) -> InferenceServerException:
    return InferenceServerException(message, status=f"StatusCode.{status}")


def _tensor_bytes(array: npt.NDArray[Any]) -> tuple[str, bytes]:
    """The Triton datatype and raw bytes of one input (BYTES length-prefixed, as Triton reads)."""
    datatype = np_to_triton_dtype(array.dtype)
    if datatype == "BYTES":
        serialized = serialize_byte_tensor(array)
        return datatype, serialized.tobytes() if serialized.size else b""
    return datatype, np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_request(
    inputs: Mapping[str, npt.NDArray[Any]], outputs: Sequence[str], request_id: str
) -> tuple[bytes, int]:
    """The body of one binary infer request and the length of its JSON header."""
    parts: list[bytes] = []
    header_inputs: list[dict[str, Any]] = []
    for name, array in inputs.items():
        datatype, raw = _tensor_bytes(array)
        parts.append(raw)
        header_inputs.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
    header: dict[str, Any] = {
        "inputs": header_inputs,
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
    }
    if request_id:
        header["id"] = request_id
    json_part = orjson.dumps(header)
    return b"".join([json_part, *parts]), len(json_part)


def decode_response(raw: bytes, header_length: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the answer's JSON header, {output name: array}) of one infer answer."""
    end = header_length if header_length is not None else len(raw)
    header: dict[str, Any] = orjson.loads(raw[:end])
    arrays: dict[str, Any] = {}
    offset = end
    for item in header.get("outputs", []):
        datatype: str = item["datatype"]
        shape = item["shape"]
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is None:
            dtype = np.object_ if datatype == "BYTES" else triton_to_np_dtype(datatype)
            arrays[item["name"]] = np.array(item["data"], dtype=dtype).reshape(shape)
            continue
        chunk = raw[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            arrays[item["name"]] = deserialize_bytes_tensor(chunk).reshape(shape)
        else:
            arrays[item["name"]] = np.frombuffer(chunk, dtype=triton_to_np_dtype(datatype)).reshape(
                shape
            )
    return header, arrays


def _parse_head(head: bytes) -> tuple[int, int, int | None, bool]:
    """(status, Content-Length, Inference-Header-Content-Length, keep-alive) of an answer head."""
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    status = int(status_line[1])
    length: int | None = None
    header_length: int | None = None
    keep_alive = status_line[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"inference-header-content-length":
            header_length = int(value)
        elif name == b"connection":
            keep_alive = value.strip().lower() == b"keep-alive"
        elif name == b"transfer-encoding":
            raise ValueError("a chunked answer (this client reads Content-Length answers only)")
    if length is None:
        raise ValueError("an answer without Content-Length")
    return status, length, header_length, keep_alive


class _Answer:
    """What the client reads of an HTTP answer."""

    __slots__ = ("body", "header_length", "keep_alive", "status")

    def __init__(self, status: int, header_length: int | None, body: bytes, keep_alive: bool):
        self.status = status
        self.header_length = header_length
        self.body = body
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, its answer as a future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[_Answer] | None = None
        self.received_any = False
        self.closed = False
        self._buffer = bytearray()
        self._head: tuple[int, int, int | None, bool] | None = None
        self._body_start = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("Triton closed the connection"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes, waiter: asyncio.Future[_Answer]) -> None:
        assert self.transport is not None
        self.waiter = waiter
        self.received_any = False
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                self._head = _parse_head(bytes(self._buffer[:end]))
            except ValueError as exc:
                self._fail(exc)
                self.close()
                return
            self._body_start = end + 4
        status, length, header_length, keep_alive = self._head
        end = self._body_start + length
        if len(self._buffer) < end:
            return
        body = bytes(self._buffer[self._body_start : end])
        if len(self._buffer) > end:  # bytes nobody asked for: the connection is unusable
            keep_alive = False
        self._buffer.clear()
        self._head = None
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(_Answer(status, header_length, body, keep_alive))
        if not keep_alive:
            self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class TritonHttpInfer:
    """Inference calls to Triton's HTTP endpoint (``http://host:port``), binary tensors."""

    def __init__(self, url: str, *, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"Triton's HTTP URL must be http://host:port, not {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._host_header = f"Host: {parts.netloc}\r\n".encode()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        return connection

    def _release(self, connection: _Connection) -> None:
        if connection.closed or len(self._idle) >= self.max_idle:
            connection.close()
        else:
            self._idle.append(connection)

    async def _exchange(self, request: bytes) -> _Answer:
        """Send one request on a pooled connection (a new one when a kept one was closed)."""
        loop = asyncio.get_running_loop()
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            waiter: asyncio.Future[_Answer] = loop.create_future()
            connection.send(request, waiter)
            try:
                answer = await waiter
            except ConnectionResetError:
                if connection.received_any:
                    raise
                continue  # the server closed it while idle: the request never ran
            except BaseException:
                connection.close()  # a cancelled or timed-out request: its answer may come
                raise
            self._release(connection)
            return answer
        connection = await self._connect()
        waiter = loop.create_future()
        connection.send(request, waiter)
        try:
            answer = await waiter
        except BaseException:
            connection.close()
            raise
        self._release(connection)
        return answer

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        outputs: Sequence[str],
        version: str,
        request_id: str,
        timeout_s: float,
    ) -> InferOutput:
        """One infer call under ``timeout_s``; errors as described in the module."""
        from services.common.triton import InferOutput

        body, header_length = encode_request(inputs, outputs, request_id)
        path = (
            f"/v2/models/{model}/versions/{version}/infer"
            if version
            else f"/v2/models/{model}/infer"
        )
        request = b"".join(
            [
                f"POST {path} HTTP/1.1\r\n".encode(),
                self._host_header,
                b"Content-Type: application/octet-stream\r\n",
                f"{HEADER_LENGTH}: {header_length}\r\nContent-Length: {len(body)}\r\n\r\n".encode(),
                body,
            ]
        )
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._exchange(request)
        except TimeoutError as exc:
            raise _error("DEADLINE_EXCEEDED", "Triton did not answer in time") from exc
        except OSError as exc:  # refused, reset, unreachable
            raise _error("UNAVAILABLE", f"Triton's HTTP endpoint: {exc}") from exc
        except ValueError as exc:
            raise _error("INTERNAL", f"an answer that is not Triton's: {exc}") from exc
        if answer.status != 200:
            try:
                message = str(orjson.loads(answer.body).get("error", ""))
            except (orjson.JSONDecodeError, AttributeError):
                message = answer.body[:200].decode("utf-8", "replace")
            raise _error(_STATUS.get(answer.status, "INTERNAL"), message or f"HTTP {answer.status}")
        try:
            header, arrays = decode_response(answer.body, answer.header_length)
            return InferOutput(
                outputs={name: arrays[name] for name in outputs},
                model_name=str(header.get("model_name", model)),
                model_version=str(header.get("model_version", "")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise _error("INTERNAL", f"an answer that is not Triton's: {exc}") from exc
