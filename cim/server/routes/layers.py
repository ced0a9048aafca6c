"""``/layers``: the catalogue, vector tiles and GeoJSON items."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg_pool import AsyncConnectionPool

from cim.bbox import parse_bbox
from cim.config import Settings
from cim.server.deps import get_catalogue, get_grid_layer, get_layer, get_pool, get_settings_dep
from cim.server.vector_tiles import MVT_MEDIA_TYPE, caller_mask, tilejson, vector_tile
from layers.catalogue import LayerInfo
from layers.features import DEFAULT_LIMIT, MAX_LIMIT, ItemsRequest, items_query

router = APIRouter(prefix="/layers", tags=["layers"])

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
    grids: LayerInfo | None = Depends(get_grid_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    return await vector_tile([layer], z, x, y, request, pool, settings.mvt_feature_limit, grids=grids)


@router.get("/{name}/tilejson.json", summary="TileJSON 3.0 of the layer's vector tiles (MapLibre, QGIS: one URL)")
async def layer_tilejson(request: Request, layer: LayerInfo = Depends(get_layer)) -> dict:
    base = str(request.base_url).rstrip("/")
    return tilejson(
        [layer], f"{base}/layers/{layer.name}/tiles/{{z}}/{{x}}/{{y}}.mvt", name=layer.name, description=layer.title
    )


@router.get("/{name}/items", summary="GeoJSON features (bbox, paging, property filters: ?use=住宅)")
async def items(
    request: Request,
    layer: LayerInfo = Depends(get_layer),
    grids: LayerInfo | None = Depends(get_grid_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat (EPSG:4326)"),
    limit: int = Query(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT),
    offset: int = Query(0, ge=0),
) -> Response:
    filters = {k: v for k, v in request.query_params.items() if k not in _ITEM_PARAMS}
    mask = caller_mask(request, layer, grids)
    request_ = ItemsRequest(bbox=parse_bbox(bbox), limit=limit, offset=offset, filters=filters)
    query, params = items_query(layer, request_, mask=mask)
    async with pool.connection() as conn:  # a filter value the column's type cannot hold: DataError, a 400
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    assert row is not None  # json_build_object over an aggregate: always one row
    return Response(content=row[0], media_type="application/geo+json")
