"""OGC API - Features (Part 1 Core, GeoJSON, HTML, OpenAPI 3.0; Part 2 CRS
by reference) and OGC API - Tiles over every layer, so that QGIS, ArcGIS,
GDAL (``OAPIF:http://HOST/``) and MapLibre add the server as a service.

``/`` landing page, ``/conformance``, ``/collections``, ``/collections/{id}``,
``/collections/{id}/items`` (+ ``/{fid}``), ``/collections/{id}/tiles``,
``/tileMatrixSets``; JSON by default, HTML where a browser asks (or ``f=html``).
The ``/layers`` routes stay as they were (the viewer and earlier users call them).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from psycopg_pool import AsyncConnectionPool

from cim.bbox import parse_bbox
from cim.config import Settings
from cim.crs import CRS84_URI, OUTPUT_CRS, bbox_to_crs84, output_crs
from cim.errors import InputError, NotFoundError
from cim.server import html
from cim.server.deps import get_catalogue, get_grid_layer, get_layer, get_pool, get_settings_dep
from cim.server.vector_tiles import MVT_MEDIA_TYPE, TILEJSON_MAX_ZOOM, caller_mask, tilejson, vector_tile
from layers.catalogue import LayerInfo
from layers.features import MAX_LIMIT, ItemsRequest, item_query, items_query, parse_datetime, temporal_column
from layers.mvt import MAX_ZOOM

router = APIRouter(tags=["OGC API"])

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
OGC_FEATURES_LIMIT = 10  # the standard's default page size

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]

WEB_MERCATOR_QUAD = "WebMercatorQuad"
_WMQ_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
_EPSG_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
_REL = "http://www.opengis.net/def/rel/ogc/1.0"
_ORIGIN = 20037508.3427892  # half the equator in Web Mercator metres
#: query parameters with a meaning of their own; any other is a property filter
_ITEM_PARAMS = {"bbox", "bbox-crs", "datetime", "limit", "offset", "crs", "f"}
_FORMAT = Query(None, description="json (GeoJSON for features) or html; default: what the Accept header prefers")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _link(href: str, rel: str, type_: str, title: str, **extra: Any) -> dict:
    return {"href": href, "rel": rel, "type": type_, "title": title, **extra}


def _self_links(request: Request, path: str, json_type: str = JSON) -> list[dict]:
    """``self`` and ``alternate`` links of a resource that has JSON and HTML forms."""
    url = f"{_base(request)}{path}"
    as_html = html.wants_html(request, request.query_params.get("f"))
    sep = "&" if "?" in url else "?"
    return [
        _link(f"{url}{sep}f={'html' if as_html else 'json'}", "self", HTML if as_html else json_type, "this document"),
        _link(
            f"{url}{sep}f={'json' if as_html else 'html'}",
            "alternate",
            json_type if as_html else HTML,
            "as JSON" if as_html else "as HTML",
        ),
    ]


def _answer(request: Request, f: str | None, body: dict, title: str, html_body: str) -> Response:
    if html.wants_html(request, f):
        json_href = str(request.url.include_query_params(f="json"))
        return HTMLResponse(html.page(title, html_body, json_href=json_href))
    return JSONResponse(body)


# --- landing page, conformance --------------------------------------------------------------------


@router.get("/", summary="Landing page (OGC API)", response_model=None)
async def landing(request: Request, f: str | None = _FORMAT) -> Response:
    base = _base(request)
    links = [
        *_self_links(request, "/"),
        _link(f"{base}/openapi.json", "service-desc", OPENAPI, "the API definition (OpenAPI 3.0)"),
        _link(f"{base}/docs", "service-doc", HTML, "the API documentation"),
        _link(f"{base}/conformance", "conformance", JSON, "OGC API conformance classes implemented"),
        _link(f"{base}/collections", "data", JSON, "the layers (collections)"),
        _link(f"{base}/tileMatrixSets", f"{_REL}/tiling-schemes", JSON, "tiling schemes"),
        _link(f"{base}/viewer", "alternate", HTML, "三维城市浏览 (the 3D viewer)"),
    ]
    title = "城市信息模型 数据服务 · CIM twin data services"
    body = {
        "title": title,
        "description": "Layers of the CIM twin as OGC API - Features and Tiles; 3D Tiles under /tilesets.",
        "links": links,
    }
    html_body = (
        "<p>本服务以 OGC API 提供图层：QGIS、ArcGIS、GDAL 可直接添加本地址。<br>The layers as OGC API - Features "
        "and Tiles: add this address in QGIS, ArcGIS or GDAL.</p>"
        f'<p><a href="{html.esc(base)}/viewer"><b>打开三维城市 · Open the 3D viewer</b></a></p>' + html.link_list(links)
    )
    return _answer(request, f, body, title, html_body)


@router.get("/conformance", summary="The OGC API conformance classes implemented", response_model=None)
async def conformance(request: Request, f: str | None = _FORMAT) -> Response:
    body = {"conformsTo": CONFORMANCE}
    return _answer(
        request,
        f,
        body,
        "符合性 · Conformance",
        "<ul>" + "".join(f"<li>{html.esc(c)}</li>" for c in CONFORMANCE) + "</ul>",
    )


# --- collections -------------------------------------------------------------------------------------


def _collection(request: Request, layer: LayerInfo) -> dict:
    base, name = _base(request), layer.name
    temporal = temporal_column(layer)
    return {
        "id": name,
        "title": layer.title,
        "description": f"{layer.title}: {layer.feature_count:,} {layer.geometry_type} features"
        + (f"; time: {temporal}" if temporal else ""),
        "itemType": "feature",
        "extent": {"spatial": {"bbox": [list(layer.bbox)], "crs": CRS84_URI}},
        "crs": [c.uri for c in OUTPUT_CRS],
        "storageCrs": CRS84_URI,
        "links": [
            _link(f"{base}/collections/{name}", "self", JSON, layer.title),
            _link(f"{base}/collections/{name}?f=html", "alternate", HTML, f"{layer.title} (HTML)"),
            _link(f"{base}/collections/{name}/items", "items", GEOJSON, f"{layer.title}: features"),
            _link(f"{base}/collections/{name}/items?f=html", "items", HTML, f"{layer.title}: features (HTML)"),
            _link(
                f"{base}/collections/{name}/tiles",
                f"{_REL}/tilesets-vector",
                JSON,
                f"{layer.title}: vector tiles",
            ),
            _link(f"{base}/layers/{name}/tilejson.json", "describedby", JSON, f"{layer.title}: TileJSON"),
        ],
    }


@router.get("/collections", summary="The layers, as OGC API collections", response_model=None)
async def collections(
    request: Request, f: str | None = _FORMAT, catalogue: dict[str, LayerInfo] = Depends(get_catalogue)
) -> Response:
    cols = [_collection(request, layer) for layer in catalogue.values()]
    body = {"links": _self_links(request, "/collections"), "crs": [c.uri for c in OUTPUT_CRS], "collections": cols}
    links = "".join(
        f'<li><a href="/collections/{html.esc(c["id"])}?f=html">{html.esc(c["title"])}</a> '
        f'<span class="muted">{html.esc(c["id"])} · {html.esc(c["description"])}</span></li>'
        for c in cols
    )
    return _answer(request, f, body, "数据集 · Collections", f"<ul>{links}</ul>")


@router.get("/collections/{name}", summary="One layer, as an OGC API collection", response_model=None)
async def collection(request: Request, f: str | None = _FORMAT, layer: LayerInfo = Depends(get_layer)) -> Response:
    body = _collection(request, layer)
    html_body = (
        f"<p>{html.esc(body['description'])}</p><p>范围 extent: {html.esc(list(layer.bbox))}</p>"
        f"<h2>属性 · Properties</h2>"
        + html.table([{"name": c, "type": t} for c, t in layer.served_columns.items()])
        + "<h2>链接 · Links</h2>"
        + html.link_list(body["links"])
    )
    return _answer(request, f, body, f"{layer.title} ({layer.name})", html_body)


# --- features ----------------------------------------------------------------------------------------


def _page_link(request: Request, rel: str, offset: int, limit: int, as_html: bool) -> dict:
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit", "f")}
    params.update(offset=str(offset), limit=str(limit), f="html" if as_html else "json")
    url = (
        str(request.url.replace(query=""))
        + "?"
        + "&".join(f"{k}={v}" for k, v in ((k, _quote(v)) for k, v in params.items()))
    )
    return _link(url, rel, HTML if as_html else GEOJSON, {"next": "next page", "prev": "previous page"}.get(rel, rel))


def _quote(value: str) -> str:
    return quote(value, safe=",:/.")


@router.get(
    "/collections/{name}/items",
    summary="Features of a layer (GeoJSON): bbox, bbox-crs, datetime, crs, limit, offset, property filters",
    response_model=None,
    responses={200: {"content": {GEOJSON: {}, HTML: {}}}},
)
async def items(
    request: Request,
    layer: LayerInfo = Depends(get_layer),
    grids: LayerInfo | None = Depends(get_grid_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    bbox: str | None = Query(None, description="west,south,east,north in bbox-crs (default CRS84: lon/lat)"),
    bbox_crs: str | None = Query(None, alias="bbox-crs", description="the CRS of bbox (a URI from /collections/{id})"),
    datetime: str | None = Query(None, description="an RFC 3339 instant or interval (a/b, ../b, a/..)"),
    crs: str | None = Query(None, description="the CRS of the answer (a URI from /collections/{id}); default CRS84"),
    limit: int = Query(
        OGC_FEATURES_LIMIT, ge=1, le=MAX_LIMIT, description=f"features per page (at most {MAX_LIMIT:,})"
    ),
    offset: int = Query(0, ge=0, le=10_000_000, description="features to skip (the next link gives it)"),
    f: str | None = _FORMAT,
) -> Response:
    out_crs = output_crs(crs, "crs")
    if bbox_crs is not None and bbox is None:
        raise InputError("bbox-crs", "is given without a bbox")
    box = parse_bbox(bbox, lonlat=bbox_crs is None)
    if box is not None and bbox_crs is not None:  # as lon/lat, and checked as such
        lonlat = bbox_to_crs84(box, output_crs(bbox_crs, "bbox-crs"))
        box = parse_bbox(",".join(map(str, lonlat)), f"bbox (in {bbox_crs})")
    filters = {k: v for k, v in request.query_params.items() if k not in _ITEM_PARAMS}
    request_ = ItemsRequest(
        bbox=box, limit=limit, offset=offset, filters=filters, datetime=parse_datetime(datetime), crs=out_crs
    )
    as_html = html.wants_html(request, f)
    links = [
        _page_link(request, "self", offset, limit, as_html),
        _page_link(request, "alternate", offset, limit, not as_html),
        _link(f"{_base(request)}/collections/{layer.name}", "collection", JSON, layer.title),
    ]
    if offset > 0:
        links.append(_page_link(request, "prev", max(0, offset - limit), limit, as_html))
    query, params = items_query(
        layer,
        request_,
        links=links,
        next_link=_page_link(request, "next", offset + limit, limit, as_html),
        mask=caller_mask(request, layer, grids),
    )
    async with pool.connection() as conn:  # a filter value the column's type cannot hold: DataError, a 400
        row = await (await conn.execute(query, params)).fetchone()
    assert row is not None  # json_build_object over an aggregate: always one row
    headers = {"Content-Crs": f"<{out_crs.uri}>"}
    if not as_html:
        return Response(content=row[0], media_type=GEOJSON, headers=headers)
    collection_ = json.loads(row[0])
    rows = [{"id": feat["id"], **feat["properties"]} for feat in collection_["features"]]
    nav = " ".join(
        f'<a href="{html.esc(link["href"])}">{html.esc(link["title"])}</a>'
        for link in collection_["links"]
        if link["rel"] in ("prev", "next")
    )
    body = (
        f"<p>{collection_['numberReturned']:,} / {collection_['numberMatched']:,} 个要素 features "
        f"(offset {offset:,}) {nav}</p>" + html.table(rows)
    )
    json_href = str(request.url.include_query_params(f="json"))
    return HTMLResponse(html.page(f"{layer.title}: 要素 · features", body, json_href=json_href), headers=headers)


@router.get(
    "/collections/{name}/items/{fid}",
    summary="One feature (GeoJSON)",
    response_model=None,
    responses={200: {"content": {GEOJSON: {}, HTML: {}}}},
)
async def item(
    request: Request,
    fid: int,
    layer: LayerInfo = Depends(get_layer),
    grids: LayerInfo | None = Depends(get_grid_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    crs: str | None = Query(None, description="the CRS of the answer; default CRS84"),
    f: str | None = _FORMAT,
) -> Response:
    out_crs = output_crs(crs, "crs")
    query, params = item_query(layer, fid, out_crs, mask=caller_mask(request, layer, grids))
    async with pool.connection() as conn:
        row = await (await conn.execute(query, params)).fetchone()
    if row is None:
        raise NotFoundError(f"layer {layer.name!r} has no feature {fid}")
    feature = json.loads(row[0])
    base = _base(request)
    feature["links"] = [
        *_self_links(request, f"/collections/{layer.name}/items/{fid}", GEOJSON),
        _link(f"{base}/collections/{layer.name}", "collection", JSON, layer.title),
    ]
    headers = {"Content-Crs": f"<{out_crs.uri}>"}
    if html.wants_html(request, f):
        body = html.table([{"name": k, "value": v} for k, v in feature["properties"].items()])
        json_href = str(request.url.include_query_params(f="json"))
        page = html.page(f"{layer.title} #{fid}", body, json_href=json_href)
        return HTMLResponse(page, headers=headers)
    return Response(json.dumps(feature, ensure_ascii=False), media_type=GEOJSON, headers=headers)


# --- tiles ---------------------------------------------------------------------------------------------


def _tile_matrix_set() -> dict:
    """WebMercatorQuad as OGC's Two Dimensional Tile Matrix Set 2.0 defines it."""
    return {
        "id": WEB_MERCATOR_QUAD,
        "title": "Google Maps Compatible for the World",
        "uri": _WMQ_URI,
        "crs": _EPSG_3857,
        "orderedAxes": ["E", "N"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": [
            {
                "id": str(z),
                "scaleDenominator": 559082264.0287178 / 2**z,
                "cellSize": 156543.03392804097 / 2**z,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-_ORIGIN, _ORIGIN],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 2**z,
                "matrixHeight": 2**z,
            }
            for z in range(MAX_ZOOM + 1)
        ],
    }


@router.get("/tileMatrixSets", summary="The tiling schemes (WebMercatorQuad)")
async def tile_matrix_sets(request: Request) -> dict:
    base = _base(request)
    return {
        "tileMatrixSets": [
            {
                "id": WEB_MERCATOR_QUAD,
                "title": "Google Maps Compatible for the World",
                "uri": _WMQ_URI,
                "links": [_link(f"{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}", "self", JSON, WEB_MERCATOR_QUAD)],
            }
        ]
    }


def _offered(tms: str) -> None:
    """The one tile matrix set offered, or 404."""
    if tms != WEB_MERCATOR_QUAD:
        raise NotFoundError(f"no tile matrix set {tms!r}", hint=f"the one offered is {WEB_MERCATOR_QUAD}")


@router.get("/tileMatrixSets/{tms}", summary="A tiling scheme's definition")
async def tile_matrix_set(tms: str) -> dict:
    _offered(tms)
    return _tile_matrix_set()


def _tileset(request: Request, layer: LayerInfo) -> dict:
    base, name = _base(request), layer.name
    west, south, east, north = layer.bbox
    return {
        "title": f"{layer.title}: vector tiles",
        "dataType": "vector",
        "crs": _EPSG_3857,
        "tileMatrixSetURI": _WMQ_URI,
        "boundingBox": {"lowerLeft": [west, south], "upperRight": [east, north], "crs": CRS84_URI},
        "layers": [
            {
                "id": name,
                "title": layer.title,
                "dataType": "vector",
                "minTileMatrix": "0",
                "maxTileMatrix": str(TILEJSON_MAX_ZOOM),
                "propertiesSchema": {"type": "object", "properties": {c: {"title": c} for c in layer.served_columns}},
            }
        ],
        "links": [
            _link(f"{base}/collections/{name}/tiles/{WEB_MERCATOR_QUAD}", "self", JSON, "this tileset"),
            _link(f"{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}", f"{_REL}/tiling-scheme", JSON, WEB_MERCATOR_QUAD),
            _link(
                f"{base}/collections/{name}/tiles/{WEB_MERCATOR_QUAD}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                "item",
                MVT_MEDIA_TYPE,
                "a tile",
                templated=True,
            ),
            _link(f"{base}/collections/{name}", f"{_REL}/geodata", JSON, layer.title),
        ],
    }


@router.get("/collections/{name}/tiles", summary="A layer's vector tilesets")
async def tilesets(request: Request, layer: LayerInfo = Depends(get_layer)) -> dict:
    tileset = _tileset(request, layer)
    summary = {k: tileset[k] for k in ("title", "dataType", "crs", "tileMatrixSetURI")}
    here = _link(f"{_base(request)}/collections/{layer.name}/tiles", "self", JSON, "this list")
    return {"tilesets": [{**summary, "links": tileset["links"][:2]}], "links": [here]}


@router.get("/collections/{name}/tiles/{tms}", summary="A layer's vector tileset in a tiling scheme")
async def tileset(tms: str, request: Request, layer: LayerInfo = Depends(get_layer)) -> dict:
    _offered(tms)
    return _tileset(request, layer)


@router.get(
    "/collections/{name}/tiles/{tms}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="A vector tile (tileMatrix = zoom, tileRow = y, tileCol = x; 204 when empty)",
    response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 204: {}, 304: {}},
)
async def collection_tile(
    tms: str,
    tile_matrix: int,
    tile_row: int,
    tile_col: int,
    request: Request,
    layer: LayerInfo = Depends(get_layer),
    grids: LayerInfo | None = Depends(get_grid_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    _offered(tms)
    return await vector_tile(
        [layer], tile_matrix, tile_col, tile_row, request, pool, settings.mvt_feature_limit, grids=grids
    )


# --- several layers in one tile ------------------------------------------------------------------------------


def _chosen(catalogue: dict[str, LayerInfo], names: str | None) -> list[LayerInfo]:
    if not names:
        return list(catalogue.values())
    chosen = []
    for name in dict.fromkeys(n.strip() for n in names.split(",") if n.strip()):
        if name not in catalogue:
            raise NotFoundError(f"no layer named {name!r}", hint="GET /collections lists the layers")
        chosen.append(catalogue[name])
    if not chosen:
        raise InputError("layers", "names no layer")
    return chosen


@router.get("/tiles/tilejson.json", summary="TileJSON 3.0 of several layers in one tile (default: all)")
async def combined_tilejson(
    request: Request,
    layers: str | None = Query(None, description="comma-separated layer names; default every layer"),
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
) -> dict:
    chosen = _chosen(catalogue, layers)
    names = ",".join(layer.name for layer in chosen)
    url = f"{_base(request)}/tiles/{{z}}/{{x}}/{{y}}.mvt?layers={names}"
    return tilejson(
        chosen, url, name="cim", description="CIM twin layers: " + ", ".join(layer.title for layer in chosen)
    )


@router.get(
    "/tiles/{z}/{x}/{y}.mvt",
    summary="One vector tile holding several layers (204 when empty)",
    response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 204: {}, 304: {}},
)
async def combined_tile(
    z: int,
    x: int,
    y: int,
    request: Request,
    layers: str | None = Query(None, description="comma-separated layer names; default every layer"),
    catalogue: dict[str, LayerInfo] = Depends(get_catalogue),
    grids: LayerInfo | None = Depends(get_grid_layer),
    pool: AsyncConnectionPool = Depends(get_pool),
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    return await vector_tile(
        _chosen(catalogue, layers), z, x, y, request, pool, settings.mvt_feature_limit, grids=grids
    )
