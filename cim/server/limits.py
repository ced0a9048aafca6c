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

Neither answer goes through the app's exception handlers (which audit refused
changes), nor does a 413 the application raises itself (a batch over
``CIM_LIVE_BATCH_MAX``, through Starlette's own handler): the middleware writes
their audit rows (``request.too_large``, and ``refused`` with status 413), from
a task on the event loop started once the answer is sent, a few at a time
(under a flood the rows beyond that are counted in the next one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cim.auth.store import ANONYMOUS, Identity
from cim.server.access import audit

log = logging.getLogger("cim.server")

_AUDITS_IN_FLIGHT = 4  # audit rows of 413s being written at once (each holds a connection of the pool)
_REASON_BYTES = 2_000  # of a 413 the application answers, the body's first bytes are read for its reason


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
        self._audits: set[asyncio.Task[None]] = set()
        self._unaudited = 0  # 413s left out of the audit under a flood, since the last row

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(send)
            self._audit(scope, "request.too_large", {"status": 413, "limit": self.max_bytes, "content_length": length})
            return
        received = 0
        exceeded = started = replaced = False
        answered_413 = bytearray()  # the start of a 413 the application answered itself: its reason
        refused_by_app = False

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
            nonlocal started, replaced, refused_by_app
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
                if exceeded and message["status"] != 413:  # the application answered the error otherwise
                    replaced = True
                    await self._refuse(send)
                    return
                refused_by_app = message["status"] == 413 and not exceeded
            elif refused_by_app and len(answered_413) < _REASON_BYTES:
                answered_413.extend(message.get("body", b"")[: _REASON_BYTES - len(answered_413)])
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except ContentTooLarge:
            if started:
                raise
            await self._refuse(send)
        finally:
            if exceeded:
                detail = {"status": 413, "limit": self.max_bytes, "received": received}
                self._audit(scope, "request.too_large", detail)
            elif refused_by_app:
                self._audit(scope, "refused", {"status": 413, "reason": _reason_of(bytes(answered_413))})

    def _audit(self, scope: Scope, action: str, detail: dict[str, Any]) -> None:
        """The refusal's audit row, written by a task of its own (the answer does not wait for it);
        with too many being written, counted for the next row instead."""
        if len(self._audits) >= _AUDITS_IN_FLIGHT:
            self._unaudited += 1
            return
        if self._unaudited:
            detail["not_audited_before"], self._unaudited = self._unaudited, 0
        task = asyncio.get_running_loop().create_task(_write_audit(HTTPConnection(scope), action, detail))
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)

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


async def _write_audit(conn: HTTPConnection, action: str, detail: dict[str, Any]) -> None:
    """One audit row of a refused request: who sent it (known when the access check ran before the
    body was read; else identified now from its token or session), the method and path."""
    try:
        who = await _identity(conn)
        await audit(conn, who, action, f"{conn.scope.get('method', '')} {conn.url.path}"[:500], ok=False, detail=detail)
    except Exception:  # the audit's own failure must not be the request's
        log.exception("could not write the audit row of a refused %s %s", conn.scope.get("method"), conn.url.path)


async def _identity(conn: HTTPConnection) -> Identity:
    known = conn.scope.get("state", {}).get("identity")
    if isinstance(known, Identity):
        return known
    authenticator = getattr(conn.app.state, "authenticator", None)
    if authenticator is None:
        return ANONYMOUS
    try:
        return await authenticator.identify(conn, getattr(conn.app.state, "pool", None))
    except Exception:  # a token unknown or revoked, or no database: nobody known
        return ANONYMOUS


def _reason_of(body: bytes) -> str:
    """The ``detail`` of a JSON error answer (its first bytes), or nothing."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return ""
    return detail[:500] if isinstance(detail, str) else ""
