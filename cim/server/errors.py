"""One map from the project's errors to HTTP status codes, installed on the
app (as TiPg's ``errors.py``): routes raise domain errors and never build an
error response themselves. The body is FastAPI's ``{"detail": message}``."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cim.auth.store import ANONYMOUS
from cim.errors import CimError, ConfigError, DatabaseError, Forbidden, InputError, NotFoundError, Unauthenticated
from cim.live.records import RecordError
from cim.server.access import audit

log = logging.getLogger("cim.server")

#: most specific first: the first class an error is an instance of gives its status
STATUS_CODES: dict[type[Exception], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFoundError: 404,
    InputError: 400,
    RecordError: 400,
    psycopg.errors.DataError: 400,  # a value the column's type cannot hold (a property filter)
    DatabaseError: 503,
    psycopg.OperationalError: 503,  # the database is down or restarting
    ConfigError: 500,
    CimError: 400,
}


def status_of(exc: Exception) -> int:
    return next((code for cls, code in STATUS_CODES.items() if isinstance(exc, cls)), 500)


def message_of(exc: Exception) -> str:
    if isinstance(exc, psycopg.Error):
        primary = exc.diag.message_primary if exc.diag else None
        return f"the database refused the request: {primary or str(exc).strip().splitlines()[0]}"
    return str(exc)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.scope.get("method", "WS"), request.url.path, message_of(exc), exc_info=exc)
    elif request.scope.get("method", "GET") not in ("GET", "HEAD", "OPTIONS") and status not in (401, 403):
        await _audit_refusal(request, status, message_of(exc))  # 401/403: the access check has written it
    headers = {"WWW-Authenticate": 'Bearer realm="cim"'} if status == 401 else None
    return JSONResponse({"detail": message_of(exc)}, status_code=status, headers=headers)


async def _audit_refusal(request: Request, status: int, message: str) -> None:
    """A refused change (a bad ticket, a batch too large...) in the audit, with who sent it."""
    who = getattr(request.state, "identity", None)
    try:
        await audit(
            request,
            who if who is not None else ANONYMOUS,
            "refused",
            f"{request.method} {request.url.path}"[:500],
            ok=False,
            detail={"status": status, "reason": message[:500]},
        )
    except Exception:  # the audit's own failure must not hide the refusal
        log.exception("could not write the audit row of a refused %s %s", request.method, request.url.path)


def add_exception_handlers(app: FastAPI) -> None:
    for cls in STATUS_CODES:
        app.add_exception_handler(cls, _handle)
