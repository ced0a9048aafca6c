"""``/live``: readings and tickets in over HTTP, and read back (latest state,
history, a ticket with its 10-30-24 stage). MQTT comes in through the hub."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from cim.bbox import parse_bbox
from cim.errors import InputError, NotFoundError
from cim.live import records
from cim.live.hub import LiveHub
from cim.live.sla import sla_of
from cim.live.state import sensor_snapshot
from cim.live.store import LIVE_SCHEMA, STATUSES, Ticket, loadable_time
from cim.live.stream import PUSH_EVERY_S, Subscriber
from cim.server.access import audit
from cim.server.deps import get_grid_layer, get_pool
from cim.server.limits import ContentTooLarge
from cim.server.vector_tiles import caller_roles
from layers.catalogue import LayerInfo
from layers.sensitive import grid_table, may_see, snapped_sql

router = APIRouter(prefix="/live", tags=["live"])
HISTORY_LIMIT = 100_000
#: the tickets the snapshot shows have times it can show: one stored before the intake checked dates (or
#: imported so: 9999-12-31, 'infinity', 1970) is left out rather than failing the snapshot for every viewer
_SANE_TICKET_TIMES = " AND ".join(
    f"{column} BETWEEN '2000-01-01 00:00+00' AND now() + interval '1 day'"
    for column in (
        "created_at",
        "coalesce(acknowledged_at, created_at)",
        "coalesce(contacted_at, created_at)",
        "coalesce(resolved_at, created_at)",
    )
)


def _json_body(schema: dict) -> dict:
    """The OpenAPI request body of a route that reads its JSON itself (in a thread, checked)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_READING_SCHEMA = {
    "type": "object",
    "required": ["sensor_id", "ts", "value"],
    "properties": {
        "sensor_id": {"type": "string", "maxLength": records.ID_MAX},
        "ts": {"type": "string", "format": "date-time", "description": "ISO-8601 with its offset"},
        "value": {"type": "number"},
        "status": {"type": "string", "enum": list(STATUSES), "default": "normal"},
    },
}
_TICKET_SCHEMA = {
    "type": "object",
    "required": ["id", "channel", "category", "lon", "lat", "created_at"],
    "properties": {
        **{name: {"type": "string", "maxLength": limit} for name, limit in records.TICKET_TEXT.items()},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        **{
            name: {"type": "string", "format": "date-time"}
            for name in ("created_at", "acknowledged_at", "contacted_at", "resolved_at")
        },
    },
}


def get_hub(request: Request) -> LiveHub:
    return request.app.state.hub


def _time(value: str | None, name: str) -> dt.datetime | None:
    return None if value is None else records.parse_time(value, name)


@router.get("/status", summary="The hub: its MQTT broker and connection, registry size, counters, viewers")
async def status(request: Request, hub: LiveHub = Depends(get_hub)) -> dict:
    return {**hub.status(), "viewers": len(request.app.state.broadcaster.subscribers)}


@router.post(
    "/sensors/readings",
    summary="Readings in: a JSON array of {sensor_id, ts, value, status}",
    openapi_extra=_json_body({"type": "array", "items": _READING_SCHEMA}),
    responses={400: {"description": "the body is not JSON"}, 413: {"description": "more than CIM_LIVE_BATCH_MAX"}},
)
async def post_readings(request: Request, hub: LiveHub = Depends(get_hub)) -> dict:
    """Each reading is judged on its own: the answer counts what was stored
    (new), what was already there (the same sensor_id and ts), and names each
    refused reading (its index) with its reason. The body is parsed and
    checked in a thread, off the event loop; a batch of more than
    ``CIM_LIVE_BATCH_MAX`` readings is refused whole (413)."""
    raw = await request.body()
    try:
        checked, stored = await run_in_threadpool(hub.take_readings, raw)
    except records.BatchTooLarge as exc:
        raise ContentTooLarge(str(exc)) from None
    new = await asyncio.wrap_future(stored)
    await audit(
        request,
        request.state.identity,
        "readings.post",
        f"{len(checked.accepted)} readings",
        detail={"stored": new, "refused": len(checked.rejected)},
    )
    return {
        "accepted": len(checked.accepted),
        "stored": new,
        "duplicates": len(checked.accepted) - new,
        "rejected": [r.to_json() for r in checked.rejected],
    }


@router.post(
    "/tickets",
    summary="Create or update one ticket (idempotent on id)",
    openapi_extra=_json_body(_TICKET_SCHEMA),
    responses={400: {"description": "the ticket is refused (the reason is in detail)"}},
)
async def post_ticket(request: Request, hub: LiveHub = Depends(get_hub)) -> dict:
    raw = await request.body()
    ticket = await run_in_threadpool(hub.check_ticket, raw)
    created, stored = await run_in_threadpool(hub.store_ticket, ticket)
    await audit(request, request.state.identity, "ticket.create" if created else "ticket.update", ticket.id)
    return {"id": ticket.id, "created": created, "sla": sla_of(stored, dt.datetime.now(dt.UTC), hub.sla).to_json()}


@router.get("/sensors/{sensor_id}", summary="A sensor and its latest reading (value, ts, status)")
async def sensor(sensor_id: str, pool: AsyncConnectionPool = Depends(get_pool)) -> dict:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""
            SELECT s.id AS sensor_id, s.category, s.category_name, s.street, s.community, s.grid,
                   ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, st.value, st.ts, st.status
            FROM {LIVE_SCHEMA}.sensor_registry s LEFT JOIN {LIVE_SCHEMA}.sensor_state st ON st.sensor_id = s.id
            WHERE s.id = %s""",
            (sensor_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no sensor {sensor_id!r}")
    return row


@router.get("/sensors/{sensor_id}/readings", summary="Stored readings of a sensor between since and until")
async def sensor_readings(
    sensor_id: str,
    since: str | None = Query(None, description="ISO-8601, inclusive"),
    until: str | None = Query(None, description="ISO-8601, exclusive"),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> dict:
    start, end = _time(since, "since"), _time(until, "until")
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            f"""
            SELECT ts, value, status FROM {LIVE_SCHEMA}.readings
            WHERE sensor_id = %s AND (%s::timestamptz IS NULL OR ts >= %s) AND (%s::timestamptz IS NULL OR ts < %s)
            ORDER BY ts LIMIT {HISTORY_LIMIT + 1}""",
            (sensor_id, start, start, end, end),
        )
        rows = await cur.fetchall()
    return {
        "sensor_id": sensor_id,
        "count": min(len(rows), HISTORY_LIMIT),
        "truncated": len(rows) > HISTORY_LIMIT,
        "readings": [{"ts": ts.isoformat(), "value": value, "status": st} for ts, value, st in rows[:HISTORY_LIMIT]],
    }


@router.get("/tickets/{ticket_id}", summary="A ticket and its 10-30-24 stage (sla: stage, overdue, due_at)")
async def ticket(
    ticket_id: str, pool: AsyncConnectionPool = Depends(get_pool), hub: LiveHub = Depends(get_hub)
) -> dict:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""
            SELECT id, channel, category, address, department, status,
                   {loadable_time("created_at")} AS created_at, {loadable_time("acknowledged_at")} AS acknowledged_at,
                   {loadable_time("contacted_at")} AS contacted_at, {loadable_time("resolved_at")} AS resolved_at,
                   street, community, grid, ST_X(geom) AS lon, ST_Y(geom) AS lat, updated_at
            FROM {LIVE_SCHEMA}.ticket_records WHERE id = %s""",
            (ticket_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no ticket {ticket_id!r}")
    t = Ticket(
        row["id"],
        row["channel"],
        row["category"],
        row["lon"],
        row["lat"],
        row["created_at"],
        row["acknowledged_at"],
        row["contacted_at"],
        row["resolved_at"],
    )
    return {**row, "sla": sla_of(t, dt.datetime.now(dt.UTC), hub.sla).to_json()}


_LEVELS = ("street", "community", "grid")  # each a column of live.sensor_registry and live.ticket_records


@router.get(
    "/snapshot/sensors",
    summary="Every sensor's latest state, binary and columnar (the first paint)",
    response_class=Response,
)
async def sensor_snapshot_route(
    request: Request,
    bbox: str | None = Query(None, description="west,south,east,north"),
    hub: LiveHub = Depends(get_hub),
) -> Response:
    """Layout in ``cim.live.state.sensor_snapshot``: a JSON header (column
    offsets, categories, status codes, the registry version), then ids, 16-bit
    positions, float32 values and byte codes. Gzip when the client takes it."""
    body = await run_in_threadpool(sensor_snapshot, hub.state, parse_bbox(bbox))
    headers = {"Cache-Control": "no-store", "X-Registry-Version": str(hub.state.registry.version)}
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = await run_in_threadpool(gzip.compress, body, 5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/octet-stream", headers=headers)


async def _columns(pool: AsyncConnectionPool, query: str, params: tuple = ()) -> dict[str, int | list]:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
        assert cur.description is not None  # the query is a SELECT: it has columns
        names = [d.name for d in cur.description]
    return {"count": len(rows), **{name: [r[i] for r in rows] for i, name in enumerate(names)}}


@router.get("/snapshot/cameras", summary="Cameras as columns: id, lon, lat, heading, fov, range_m, status, stream_url")
async def camera_snapshot(bbox: str | None = Query(None), pool: AsyncConnectionPool = Depends(get_pool)) -> dict:
    box = parse_bbox(bbox) or (-180, -90, 180, 90)
    return await _columns(
        pool,
        f"""
        SELECT id, name, round(ST_X(geom)::numeric, 7)::float8 AS lon, round(ST_Y(geom)::numeric, 7)::float8 AS lat,
               heading, fov, range_m, status, stream_url
        FROM {LIVE_SCHEMA}.camera_registry WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) ORDER BY id""",
        box,
    )


@router.get("/snapshot/tickets", summary="Open tickets and those closed in the last 24 hours, as columns with SLA")
async def ticket_snapshot(
    request: Request,
    bbox: str | None = Query(None),
    pool: AsyncConnectionPool = Depends(get_pool),
    hub: LiveHub = Depends(get_hub),
    grids: LayerInfo | None = Depends(get_grid_layer),
) -> dict:
    """A ticket's exact position is for operators and admins: others get it
    snapped to its grid cell's centroid (layers.sensitive), and the box
    selects the snapped positions. The snapshot carries no address."""
    box = parse_bbox(bbox) or (-180, -90, 180, 90)
    point: sql.Composable
    join: sql.Composable
    if may_see(caller_roles(request)):
        point, join = sql.SQL("r.geom"), sql.SQL("")
    else:
        point, join = snapped_sql(grid_table(grids), "r")
    query = sql.SQL(
        f"""
        SELECT id, channel, category, ST_X(p), ST_Y(p), created_at, acknowledged_at, contacted_at, resolved_at
        FROM (SELECT r.*, {{point}} AS p FROM {LIVE_SCHEMA}.ticket_records r {{join}}) r
        WHERE p && ST_MakeEnvelope(%s, %s, %s, %s, 4326)
          AND (resolved_at IS NULL OR resolved_at > now() - interval '24 hours')
          AND {_SANE_TICKET_TIMES} AND ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90
        ORDER BY created_at"""
    ).format(point=point, join=join)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(query, box)
        rows = await cur.fetchall()
    now = dt.datetime.now(dt.UTC)
    out: dict[str, list] = {k: [] for k in ("id", "channel", "category", "lon", "lat", "stage", "due_at", "overdue")}
    for tid, channel, category, lon, lat, *times in rows:
        sla = sla_of(Ticket(tid, channel, category, lon, lat, *times), now, hub.sla)
        for key, value in zip(
            out, (tid, channel, category, round(lon, 7), round(lat, 7), sla.stage, sla.due_at.timestamp(), sla.overdue)
        ):
            out[key].append(value)
    return {"count": len(rows), **out}


@router.get("/alarms", summary="Open alarms (or all since a time), newest first")
async def alarms(
    since: str | None = Query(None, description="ISO-8601: also the cleared ones raised since"),
    limit: int = Query(1000, ge=1, le=100_000),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> dict:
    start = _time(since, "since")
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""
            SELECT a.id, a.sensor_id, s.category, a.kind, a.severity, a.message, a.value, a.raised_at, a.cleared_at,
                   ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.street, s.community, s.grid
            FROM {LIVE_SCHEMA}.alarms a JOIN {LIVE_SCHEMA}.sensor_registry s ON s.id = a.sensor_id
            WHERE (%s::timestamptz IS NULL AND a.cleared_at IS NULL) OR a.raised_at >= %s
            ORDER BY a.raised_at DESC LIMIT %s""",
            (start, start, limit),
        )
        rows = await cur.fetchall()
    return {"count": len(rows), "alarms": rows}


@router.get("/counts", summary="Per street, community or grid: sensors, open alarms, offline, open and overdue tickets")
async def counts(
    level: str = Query("street", description="street, community or grid"),
    pool: AsyncConnectionPool = Depends(get_pool),
    hub: LiveHub = Depends(get_hub),
) -> dict:
    if level not in _LEVELS:
        raise InputError("level", f"{level!r} is not street, community or grid")
    overdue_sql = """CASE WHEN resolved_at IS NOT NULL THEN false
                          WHEN contacted_at IS NOT NULL THEN now() > created_at + %(resolve)s
                          WHEN acknowledged_at IS NOT NULL THEN now() > created_at + %(contact)s
                          ELSE now() > created_at + %(ack)s END"""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            f"""
            WITH s AS (
                SELECT s.{level} AS area, count(*) AS sensors,
                       count(*) FILTER (WHERE st.status = 'offline' OR EXISTS (
                           SELECT 1 FROM {LIVE_SCHEMA}.alarms a WHERE a.sensor_id = s.id AND a.cleared_at IS NULL
                           AND a.kind = 'offline')) AS offline,
                       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {LIVE_SCHEMA}.alarms a WHERE a.sensor_id = s.id
                                                      AND a.cleared_at IS NULL AND a.kind <> 'offline')) AS alarms
                FROM {LIVE_SCHEMA}.sensor_registry s LEFT JOIN {LIVE_SCHEMA}.sensor_state st ON st.sensor_id = s.id
                GROUP BY 1),
            t AS (
                SELECT {level} AS area, count(*) FILTER (WHERE resolved_at IS NULL) AS open_tickets,
                       count(*) FILTER (WHERE {overdue_sql}) AS overdue_tickets
                FROM {LIVE_SCHEMA}.ticket_records GROUP BY 1)
            SELECT coalesce(s.area, t.area), coalesce(sensors, 0), coalesce(alarms, 0), coalesce(offline, 0),
                   coalesce(open_tickets, 0), coalesce(overdue_tickets, 0)
            FROM s FULL JOIN t ON t.area = s.area ORDER BY 1""",
            {"ack": hub.sla.acknowledge, "contact": hub.sla.contact, "resolve": hub.sla.resolve},
        )
        rows = await cur.fetchall()
    keys = ("area", "sensors", "alarms", "offline", "open_tickets", "overdue_tickets")
    return {"level": level, "areas": [dict(zip(keys, r)) for r in rows]}


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    """Live deltas (see cim.live.stream); send {"subscribe": {...}} at any time to change layers or box."""
    await ws.accept()
    broadcaster = ws.app.state.broadcaster
    sub = Subscriber(ws)
    broadcaster.subscribers.add(sub)
    await ws.send_text(
        json.dumps({"type": "hello", "version": ws.app.state.hub.state.registry.version, "every_s": PUSH_EVERY_S})
    )
    try:
        while True:
            message = await ws.receive_text()
            try:  # parsed as readings are: no RecursionError, and no int too big for the float bbox test
                sub.update(records.parse_json(message, "the message"))
                await ws.send_text(json.dumps({"type": "subscribed", "layers": sorted(sub.layers), "bbox": sub.bbox}))
            except (ValueError, TypeError) as exc:
                await ws.send_text(json.dumps({"type": "error", "message": str(exc)}))
    except WebSocketDisconnect:
        pass
    finally:
        broadcaster.subscribers.discard(sub)
