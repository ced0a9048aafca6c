"""``/healthz``: is the server up, and can it reach the database."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from cim.server.deps import get_pool

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database reachability")
async def healthz(pool: AsyncConnectionPool = Depends(get_pool)) -> JSONResponse:
    try:
        async with pool.connection(timeout=5) as conn:
            cur = await conn.execute("SELECT current_setting('server_version'), postgis_lib_version()")
            row = await cur.fetchone()
            assert row is not None, "the database answered no row"  # a SELECT without FROM returns one
            pg, postgis = row
    except Exception as exc:
        return JSONResponse({"status": "error", "database": str(exc).splitlines()[0]}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "postgresql": pg, "postgis": postgis})
