"""``/land``: land supervision (土地批后监管): checked parcels with their
figures and findings, statistics, reports, exports, and the follow-up of
findings (land supervisors and admins)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from cim.bbox import parse_bbox
from cim.config import Settings
from cim.db import connect
from cim.errors import InputError, NotFoundError
from cim.server.access import audit
from cim.server.deps import get_pool, get_settings_dep
from layers.land.checks import last_options, run_check
from layers.land.followup import MAX_NOTE, set_state
from layers.land.queries import (
    MAX_LIMIT,
    ParcelFilter,
    latest_layer_query,
    parcel_query,
    parcels_geojson_query,
    parcels_query,
    stats_query,
    unapproved_query,
)
from layers.land.rules import KINDS, thresholds_of

router = APIRouter(prefix="/land", tags=["land"])

_FORMATS = ("json", "geojson", "csv", "xlsx")
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def parcels_layer(
    parcels: str | None = Query(None, max_length=48, description="the parcels layer (default: the last checked)"),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> str:
    async with pool.connection() as conn:
        try:
            rows = await (await conn.execute(latest_layer_query())).fetchall()
        except psycopg.errors.UndefinedTable:  # no land schema yet: nothing was checked
            rows = []
    checked = [r[0] for r in rows]
    if not checked:
        raise NotFoundError(
            "no parcels have been checked yet", hint="`cim land check --parcels parcels --buildings buildings`"
        )
    if parcels is None:
        return checked[0]
    if parcels not in checked:
        raise NotFoundError(f"parcels layer {parcels!r} has not been checked", hint=f"checked: {', '.join(checked)}")
    return parcels


async def _one_text(pool: AsyncConnectionPool, query: tuple[str, dict]) -> str | None:
    async with pool.connection() as conn:
        row = await (await conn.execute(*query)).fetchone()
    return row[0] if row else None


async def _rows(pool: AsyncConnectionPool, query: tuple[str, dict]) -> list[tuple]:
    async with pool.connection() as conn:
        return await (await conn.execute(*query)).fetchall()


async def _parcel(pool: AsyncConnectionPool, layer: str, parcel_id: str) -> dict:
    text = await _one_text(pool, parcel_query(layer, parcel_id))
    if text is None:
        raise NotFoundError(f"no checked parcel {parcel_id!r} in {layer!r}", hint="GET /land/parcels lists them")
    return json.loads(text)


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content=content,
        media_type=media_type,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


@router.get(
    "/parcels", summary="Checked parcels: figures, verdicts, findings (filters, box, paging; JSON, GeoJSON, CSV, XLSX)"
)
async def list_parcels(
    layer: str = Depends(parcels_layer),
    verdict: str | None = Query(None, max_length=20, description="合规, 预警 or 违规"),
    finding: str | None = Query(None, max_length=40, description="an open finding kind: " + ", ".join(KINDS)),
    street: str | None = Query(None, max_length=100),
    community: str | None = Query(None, max_length=100),
    grid: str | None = Query(None, max_length=100),
    bbox: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=0, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=10_000_000),
    format: str = Query("json", description="json, geojson, csv or xlsx"),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> Response:
    if format not in _FORMATS:
        raise InputError("format", f"{format!r} is not a format", hint=", ".join(_FORMATS))
    box = parse_bbox(bbox)
    f = ParcelFilter(layer, verdict, finding, street, community, grid, box, limit, offset)
    if format == "geojson":
        text = await _one_text(pool, parcels_geojson_query(f))
        return Response(content=text, media_type="application/geo+json")
    text = await _one_text(pool, parcels_query(f))
    if format == "json":
        return Response(content=text, media_type="application/json")
    from layers.land.export import parcels_csv, parcels_xlsx

    parcels = json.loads(text or "{}").get("parcels", [])
    stamp = dt.datetime.now().strftime("%Y%m%d")
    if format == "csv":
        return _download(
            await run_in_threadpool(parcels_csv, parcels), "text/csv; charset=utf-8", f"宗地核查_{stamp}.csv"
        )
    return _download(await run_in_threadpool(parcels_xlsx, parcels), _XLSX, f"宗地核查_{stamp}.xlsx")


@router.get(
    "/parcels/{parcel_id}", summary="One parcel: figures against the limits, findings with evidence and history"
)
async def get_parcel(
    parcel_id: str, layer: str = Depends(parcels_layer), pool: AsyncConnectionPool = Depends(get_pool)
) -> dict:
    return await _parcel(pool, layer, parcel_id[:100])


@router.get(
    "/parcels/{parcel_id}/report.pdf",
    summary="A printable one-page report of a parcel (Chinese)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def parcel_report(
    parcel_id: str, request: Request, layer: str = Depends(parcels_layer), pool: AsyncConnectionPool = Depends(get_pool)
) -> Response:
    from layers.land.report import parcel_report_pdf

    parcel = await _parcel(pool, layer, parcel_id[:100])
    who = getattr(request.state, "identity", None)
    pdf = await run_in_threadpool(
        parcel_report_pdf, parcel, generated_at=dt.datetime.now().astimezone(), generated_by=who.name if who else ""
    )
    return Response(
        content=pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(parcel['parcel_id'])}.pdf"},
    )


@router.get("/unapproved", summary="Open findings of buildings on no approved parcel (未批先建)")
async def unapproved(
    layer: str = Depends(parcels_layer),
    limit: int = Query(1000, ge=1, le=MAX_LIMIT),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> dict:
    rows = await _rows(pool, unapproved_query(layer, limit))
    return {"parcels_layer": layer, "count": len(rows), "findings": [json.loads(r[0]) for r in rows]}


@router.get("/stats", summary="Parcels by verdict and open findings by kind, per street, community or grid")
async def stats(
    level: str = Query("street", description="street, community or grid"),
    layer: str = Depends(parcels_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> dict:
    rows = await _rows(pool, stats_query(layer, level))
    areas = [
        {"name": name, "parcels": n, "合规": ok, "预警": warn, "违规": bad, "findings": findings}
        for name, n, ok, warn, bad, findings in rows
    ]
    return {"parcels_layer": layer, "level": level, "areas": areas}


class StateChange(BaseModel):
    state: str = Field(..., max_length=20, description="待核查, 核查属实, 已整改 or 误报")
    note: str = Field("", max_length=MAX_NOTE)


@router.post("/findings/{finding_id}", summary="Change a finding's follow-up state (land supervisors, admins)")
async def change_state(
    finding_id: int,
    request: Request,
    change: Annotated[StateChange, Body()],
    settings: Settings = Depends(get_settings_dep),
) -> dict:
    if not 0 < finding_id < 2**63:
        raise NotFoundError(f"no finding {finding_id}")
    who = request.state.identity

    def write() -> dict:
        with connect(settings) as conn:
            return set_state(conn, finding_id, change.state, who.name, change.note)

    result = await run_in_threadpool(write)
    await audit(request, who, "land.finding.state", str(finding_id), detail={"state": result["state"]})
    return result


@router.post("/parcels/{parcel_id}/check", summary="Re-check one parcel against the buildings of its last check")
async def recheck(
    parcel_id: str,
    request: Request,
    layer: str = Depends(parcels_layer),
    settings: Settings = Depends(get_settings_dep),
) -> dict:
    who = request.state.identity

    def check() -> dict:
        with connect(settings) as conn:
            options = last_options(
                conn, layer, parcel_id=parcel_id[:100], actor=who.name, thresholds=thresholds_of(settings)
            )
            result = run_check(conn, options)
        return {"parcel_id": parcel_id, "seconds": round(result.seconds, 3), "findings": result.findings}

    result = await run_in_threadpool(check)
    await audit(request, who, "land.check", f"{layer}/{parcel_id}")
    return result
