"""``/layers``: the catalogue, vector tiles and GeoJSON items."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg_pool import AsyncConnectionPool

from cim.bbox import parse_bbox
from cim.config import Settings
from cim.errors import NotFoundError
from cim.server.deps import get_catalogue, get_layer, get_pool, get_settings_dep
from layers.catalogue import LayerInfo
from layers.features import DEFAULT_LIMIT, MAX_LIMIT, ItemsRequest, items_query
from layers.mvt import tile_in_range, tile_query

router = APIRouter(prefix="/layers", tags=["layers"])

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
_ITEM_PARAMS = {"bbox", "limit", "offset", "f"}


@router.get("", summary="The layer catalogue")
async def list_layers(catalogue: dict[str, LayerInfo] = Depends(get_catalogue)) -> list[dict]:
    return [layer.to_json() for layer in catalogue.values()]


@router.get("/{name}", summary="One layer's catalogue entry")
async def layer_info(layer: LayerInfo = Depends(get_layer)) -> dict:
    return layer.to_json()


@router.get(
    "/{name}/tiles/{z}/{x}/{y}.mvt",
    summary="A Mapbox vector tile (204 when empty)",
    response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 204: {}, 304: {}},
)
async def tile(
    z: int,
    x: int,
    y: int,
    request: Request,
    layer: LayerInfo = Depends(get_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    if not tile_in_range(z, x, y):
        raise NotFoundError(f"tile {z}/{x}/{y} does not exist")
    stamp = int(layer.imported_at.timestamp()) if layer.imported_at else 0  # versions restart with a new database
    etag = f'"{layer.name}-v{layer.version}-{stamp}-{z}-{x}-{y}"'
    headers = {"Cache-Control": "public, max-age=3600", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    query, params = tile_query(layer, z, x, y, limit=settings.mvt_feature_limit)
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    data = bytes(row[0]) if row and row[0] is not None else b""
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(content=data, media_type=MVT_MEDIA_TYPE, headers=headers)


@router.get("/{name}/items", summary="GeoJSON features (bbox, paging, property filters: ?use=住宅)")
async def items(
    request: Request,
    layer: LayerInfo = Depends(get_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat (EPSG:4326)"),
    limit: int = Query(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT),
    offset: int = Query(0, ge=0),
) -> Response:
    filters = {k: v for k, v in request.query_params.items() if k not in _ITEM_PARAMS}
    query, params = items_query(layer, ItemsRequest(bbox=parse_bbox(bbox), limit=limit, offset=offset, filters=filters))
    async with pool.connection() as conn:  # a filter value the column's type cannot hold: DataError, a 400
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    assert row is not None  # json_build_object over an aggregate: always one row
    return Response(content=row[0], media_type="application/geo+json")
