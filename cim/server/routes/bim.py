"""``/bim``: BIM models (an element layer with its tileset): storeys, classes, element search."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from psycopg_pool import AsyncConnectionPool

from cim.config import Settings
from cim.errors import NotFoundError
from cim.server.deps import get_catalogue, get_layer, get_pool, get_settings_dep
from layers.catalogue import LayerInfo
from layers.elements import NO_STOREY, classes_query, is_element_layer, search_query, storeys_query
from tiles.output import current_tilesets, storey_tilesets

router = APIRouter(prefix="/bim", tags=["bim"])


def _storey_urls(settings: Settings, name: str) -> dict[str, str]:
    """Storey name -> URL of its own tileset."""
    extras = current_tilesets(settings.tilesets_dir).get(name, {})
    return {st["name"]: f"/tilesets/{name}/{st['url']}" for st in storey_tilesets(extras)}


def _element_layer(layer: LayerInfo = Depends(get_layer)) -> LayerInfo:
    if not is_element_layer(layer):
        raise NotFoundError(f"layer {layer.name!r} is not a BIM element layer")
    return layer


@router.get("", summary="The BIM models: element layers that have a tileset")
async def models(
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue), settings: Settings = Depends(get_settings_dep)
) -> list[dict]:
    return [
        {
            "name": layer.name,
            "title": layer.title,
            "elements": layer.feature_count,
            "bbox": list(layer.bbox),
            "tileset": f"/tilesets/{layer.name}/tileset.json",
        }
        for layer in catalogue.values()
        if is_element_layer(layer) and (settings.tilesets_dir / layer.name / "tileset.json").is_file()
    ]


@router.get("/{name}", summary="A model's storeys (with their own tilesets) and IFC classes")
async def model(
    layer: LayerInfo = Depends(_element_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    settings: Settings = Depends(get_settings_dep),
) -> dict:
    urls = _storey_urls(settings, layer.name)
    async with pool.connection() as conn:
        storeys = await (await conn.execute(storeys_query(layer))).fetchall()
        classes = await (await conn.execute(classes_query(layer))).fetchall()
    return {
        "name": layer.name,
        "title": layer.title,
        "elements": layer.feature_count,
        "bbox": list(layer.bbox),
        "storeys": [
            {"name": s or NO_STOREY, "elements": n, "z_min": lo, "z_max": hi, "tileset": urls.get(s or NO_STOREY)}
            for s, n, lo, hi in storeys
        ],
        "classes": [{"ifc_class": c, "elements": n} for c, n in classes],
    }


@router.get("/{name}/search", summary="Elements by GlobalId, or whose name or class contains the text")
async def search(
    q: str = Query(..., min_length=1, max_length=200),
    limit: int = Query(20, ge=1, le=50),
    layer: LayerInfo = Depends(_element_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
) -> list[dict]:
    query, params = search_query(layer, q, limit)
    async with pool.connection() as conn:
        rows = await (await conn.execute(query, params)).fetchall()
    return [
        {
            "fid": r[0],
            "global_id": r[1],
            "name": r[2],
            "ifc_class": r[3],
            "storey": r[4],
            "bbox": [r[5], r[6], r[7], r[8]],
            "z_min": r[9],
            "z_max": r[10],
        }
        for r in rows
    ]
