"""``/components``: city components (城市部件): the component layers with their
tilesets, the class catalogue, counts by class and area, and one file per
object (一物一档): a component with the sensors and tickets linked to it or near it."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import AsyncConnectionPool

from cim.components.catalogue import ComponentClass, major_of
from cim.config import Settings
from cim.db import connect
from cim.errors import NotFoundError
from cim.server.deps import get_catalogue, get_layer, get_pool, get_settings_dep
from layers.catalogue import LayerInfo
from layers.components.classes import catalogue as class_catalogue
from layers.components.queries import (
    LEVELS,
    SENSORS_LAYER,
    TICKETS_LAYER,
    component_query,
    counts_query,
    layers_query,
    live_tables_query,
    sensors_query,
    tickets_query,
)
from layers.sensitive import hidden_columns, may_see

router = APIRouter(prefix="/components", tags=["components"])


async def _component_layers(pool: AsyncConnectionPool) -> dict[str, tuple]:
    async with pool.connection() as conn:
        try:
            rows = await (await conn.execute(layers_query())).fetchall()
        except psycopg.errors.UndefinedTable:  # no component was ever imported
            return {}
    return {r[0]: r for r in rows}


def _readable(request: Request, name: str) -> bool:
    who = getattr(request.state, "identity", None)
    return who is None or who.may_read_layer(name)


@router.get("", summary="The component layers, with their tilesets (one per 大类)")
async def component_layers(
    request: Request,
    pool: AsyncConnectionPool = Depends(get_pool),
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
) -> dict:
    out = []
    for name, (_, _, classes, groups) in (await _component_layers(pool)).items():
        layer = catalogue.get(name)
        if layer is None or not _readable(request, name):
            continue
        out.append(
            {
                "name": name,
                "title": layer.title,
                "count": layer.feature_count,
                "bbox": list(layer.bbox),
                "tileset": f"/tilesets/{name}/tileset.json",
                "majors": [
                    {"code": g["group"], "count": g["instances"], "tileset": f"/tilesets/{name}/{g['path']}"}
                    for g in groups
                ],
                "classes": classes,
            }
        )
    return {"layers": out}


def _class_json(cls: ComponentClass) -> dict:
    return {
        "code": cls.code,
        "major": cls.major,
        "name": {"zh": cls.name_zh, "en": cls.name_en},
        "colour": list(cls.colour),
        "size": list(cls.size),
        "builtin": cls.builtin,
        "department": cls.department,
    }


async def _read_classes(settings: Settings) -> dict[str, ComponentClass]:
    """The built-in classes and the user classes, by code."""

    def read() -> dict[str, ComponentClass]:
        with connect(settings) as conn:
            return class_catalogue(conn)

    return await run_in_threadpool(read)


@router.get("/classes", summary="The component classes: built-in (GB/T 30428.2) and user classes")
async def classes(settings: Settings = Depends(get_settings_dep)) -> dict:
    found = await _read_classes(settings)
    majors = sorted({major_of(code) for code in found}, key=lambda m: m.code)
    return {
        "majors": [{"code": m.code, "name": {"zh": m.name_zh, "en": m.name_en}} for m in majors],
        "classes": [_class_json(c) for c in sorted(found.values(), key=lambda c: c.code)],
    }


async def _component_layer(
    layer: LayerInfo = Depends(get_layer), pool: AsyncConnectionPool = Depends(get_pool)
) -> LayerInfo:
    if layer.name not in await _component_layers(pool):
        raise NotFoundError(f"layer {layer.name!r} is not a component layer", hint="GET /components lists them")
    return layer


@router.get("/{name}/counts", summary="Components by class, per street, community or grid")
async def counts(
    layer: LayerInfo = Depends(_component_layer),
    level: Annotated[str, Query(pattern=f"^({'|'.join(LEVELS)})$")] = "class",
    pool: AsyncConnectionPool = Depends(get_pool),
) -> dict:
    async with pool.connection() as conn:
        rows = await (await conn.execute(counts_query(layer, level))).fetchall()
    if level == "class":
        return {
            "level": level,
            "total": sum(r[2] for r in rows),
            "counts": [{"code": code, "count": count} for _, code, count in rows],
        }
    areas: dict[str | None, dict[str, int]] = defaultdict(dict)
    for area, code, count in rows:
        areas[area][code] = count
    return {
        "level": level,
        "areas": [
            {"area": area, "total": sum(by_class.values()), "classes": by_class} for area, by_class in areas.items()
        ],
    }


@router.get("/{name}/{component_id}", summary="One component's file (一物一档): its class, sensors and tickets")
async def component_file(
    request: Request,
    component_id: Annotated[str, Path(min_length=1, max_length=64)],
    layer: LayerInfo = Depends(_component_layer),
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
    pool: AsyncConnectionPool = Depends(get_pool),
    settings: Settings = Depends(get_settings_dep),
) -> dict:
    who = getattr(request.state, "identity", None)
    roles = who.roles if who is not None else frozenset()
    by_fid = "id" not in layer.columns
    if by_fid and not component_id.isdigit():
        raise NotFoundError(f"no component {component_id!r} in {layer.name!r}")
    params: dict = {"key": component_id, "fid": int(component_id) if by_fid else None}
    radius = settings.components_radius_m
    async with pool.connection() as conn:
        row = await (await conn.execute(component_query(layer, by_fid), params)).fetchone()
        if row is None:
            raise NotFoundError(
                f"no component {component_id!r} in {layer.name!r}", hint=f"GET /layers/{layer.name}/items lists them"
            )
        attributes, lon, lat, key = row
        params = {"id": key, "lon": lon, "lat": lat}
        live = bool((await (await conn.execute(live_tables_query())).fetchone() or [False])[0])
        sensors, tickets = [], []
        sensor_layer, ticket_layer = catalogue.get(SENSORS_LAYER), catalogue.get(TICKETS_LAYER)
        if sensor_layer is not None and _readable(request, SENSORS_LAYER):
            sensors = [
                r[0] for r in await (await conn.execute(sensors_query(sensor_layer, radius, live), params)).fetchall()
            ]
        if ticket_layer is not None and _readable(request, TICKETS_LAYER):
            query = tickets_query(ticket_layer, radius, live, nearby=may_see(roles))
            tickets = [r[0] for r in await (await conn.execute(query, params)).fetchall()]
    hidden = hidden_columns(layer, roles)
    attributes = {k: v for k, v in attributes.items() if k not in hidden}
    cls = (await _read_classes(settings)).get(str(attributes.get("class_code")))
    return {
        "name": layer.name,
        "id": key,
        "class": _class_json(cls) if cls is not None else None,
        **{k: attributes.get(k) for k in ("status", "department", "street", "community", "grid", "heading")},
        "lon": lon,
        "lat": lat,
        "attributes": attributes,
        "radius_m": radius,
        "sensors": sensors,
        "tickets": tickets,
    }
