"""``/live``: readings and tickets in over HTTP, and read back (latest state,
history, a ticket with its 10-30-24 stage). MQTT comes in through the hub."""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from cim.live import records
from cim.live.hub import LiveHub
from cim.live.sla import sla_of
from cim.server.deps import get_pool
from layers.live import LIVE_SCHEMA, Ticket

router = APIRouter(prefix="/live", tags=["live"])
HISTORY_LIMIT = 100_000


def get_hub(request: Request) -> LiveHub:
    return request.app.state.hub


def _time(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return records.parse_time(value, name)
    except records.RecordError as exc:
        raise HTTPException(400, detail=str(exc)) from None


@router.get("/status", summary="The hub: its MQTT broker and connection, registry size, counters")
async def status(hub: LiveHub = Depends(get_hub)) -> dict:
    return hub.status()


@router.post("/sensors/readings", summary="Readings in: a JSON array of {sensor_id, ts, value, status}")
async def post_readings(body=Body(...), hub: LiveHub = Depends(get_hub)) -> dict:
    """Each reading is judged on its own: the answer counts what was stored
    (new), what was already there (the same sensor_id and ts), and names each
    refused reading with its reason."""
    checked = hub.check_readings(body)
    new = await asyncio.wrap_future(hub.submit(checked.accepted))
    return {"accepted": len(checked.accepted), "stored": new, "duplicates": len(checked.accepted) - new,
            "rejected": [r.to_json() for r in checked.rejected]}


@router.post("/tickets", summary="Create or update one ticket (idempotent on id)")
async def post_ticket(body=Body(...), hub: LiveHub = Depends(get_hub)) -> dict:
    try:
        ticket = records.ticket(body)
    except records.RecordError as exc:
        hub.counters.rejected += 1
        raise HTTPException(400, detail=f"ticket {body.get('id') if isinstance(body, dict) else None!r}: {exc}")
    created, stored = await run_in_threadpool(hub.store_ticket, ticket)
    return {"id": ticket.id, "created": created,
            "sla": sla_of(stored, dt.datetime.now(dt.timezone.utc), hub.sla).to_json()}


@router.get("/sensors/{sensor_id}", summary="A sensor and its latest reading (value, ts, status)")
async def sensor(sensor_id: str, pool: AsyncConnectionPool = Depends(get_pool)) -> dict:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"""
            SELECT s.id AS sensor_id, s.category, s.category_name, s.street, s.community, s.grid,
                   ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, st.value, st.ts, st.status
            FROM {LIVE_SCHEMA}.sensors s LEFT JOIN {LIVE_SCHEMA}.sensor_state st ON st.sensor_id = s.id
            WHERE s.id = %s""", (sensor_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, detail=f"no sensor {sensor_id!r}")
    return row


@router.get("/sensors/{sensor_id}/readings", summary="Stored readings of a sensor between since and until")
async def sensor_readings(sensor_id: str, since: str | None = Query(None, description="ISO-8601, inclusive"),
                          until: str | None = Query(None, description="ISO-8601, exclusive"),
                          pool: AsyncConnectionPool = Depends(get_pool)) -> dict:
    start, end = _time(since, "since"), _time(until, "until")
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(f"""
            SELECT ts, value, status FROM {LIVE_SCHEMA}.readings
            WHERE sensor_id = %s AND (%s::timestamptz IS NULL OR ts >= %s) AND (%s::timestamptz IS NULL OR ts < %s)
            ORDER BY ts LIMIT {HISTORY_LIMIT + 1}""", (sensor_id, start, start, end, end))
        rows = await cur.fetchall()
    return {"sensor_id": sensor_id, "count": min(len(rows), HISTORY_LIMIT), "truncated": len(rows) > HISTORY_LIMIT,
            "readings": [{"ts": ts.isoformat(), "value": value, "status": st} for ts, value, st in rows[:HISTORY_LIMIT]]}


@router.get("/tickets/{ticket_id}", summary="A ticket and its 10-30-24 stage (sla: stage, overdue, due_at)")
async def ticket(ticket_id: str, pool: AsyncConnectionPool = Depends(get_pool), hub: LiveHub = Depends(get_hub)) -> dict:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"""
            SELECT id, channel, category, address, department, status, created_at, acknowledged_at, contacted_at,
                   resolved_at, street, community, grid, ST_X(geom) AS lon, ST_Y(geom) AS lat, updated_at
            FROM {LIVE_SCHEMA}.tickets WHERE id = %s""", (ticket_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, detail=f"no ticket {ticket_id!r}")
    t = Ticket(row["id"], row["channel"], row["category"], row["lon"], row["lat"], row["created_at"],
               row["acknowledged_at"], row["contacted_at"], row["resolved_at"])
    return {**row, "sla": sla_of(t, dt.datetime.now(dt.timezone.utc), hub.sla).to_json()}
