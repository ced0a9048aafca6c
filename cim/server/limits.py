"""Request bodies are capped (``CIM_MAX_BODY_BYTES``): an ASGI middleware that
answers 413 at once, before the application sees the request.

- A body whose ``Content-Length`` is over the limit is refused before a byte
  of it is read.
- A body without one (``Transfer-Encoding: chunked``) is counted as the
  application reads it; the moment the count passes the limit the read raises
  :class:`ContentTooLarge` (an ``HTTPException``: 413 through FastAPI's own
  handler), and the rest is never read. Should the application turn that
  error into another answer, the 413 is sent instead of it.

Either way the answer says ``Connection: close``: the server closes the
connection rather than reading (and discarding) the rest of the upload, so a
54 MB POST costs the server nothing beyond the limit.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ContentTooLarge(HTTPException):
    """413: a request body (or a batch in it) over a limit; the message names the limit."""

    def __init__(self, detail: str, *, close: bool = False) -> None:
        super().__init__(status_code=413, detail=detail, headers={"Connection": "close"} if close else None)


def body_too_large(limit: int) -> ContentTooLarge:
    """The body's refusal: the connection is closed after it, the rest of the upload unread."""
    return ContentTooLarge(f"the request body is larger than {limit:,} bytes (CIM_MAX_BODY_BYTES)", close=True)


class BodyLimit:
    """``app.add_middleware(BodyLimit, max_bytes=...)``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        exceeded = started = replaced = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise body_too_large(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise body_too_large(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
                if exceeded and message["status"] != 413:  # the application answered the error otherwise
                    replaced = True
                    await self._refuse(send)
                    return
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except ContentTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": body_too_large(self.max_bytes).detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request itself
    return None
