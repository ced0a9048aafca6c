"""``/rasters``: imported orthophotos (DOM) and terrain models (DEM), by name
and epoch: the catalogue, imagery tiles (XYZ and WMTS; PNG, JPEG, WebP),
and terrain for both clients: Terrain-RGB (deck.gl's TerrainLayer) and
quantized-mesh (CesiumJS: ``terrain/layer.json`` + ``terrain/{z}/{x}/{y}.terrain``).

Tiles are cut from the COGs by rio-tiler (tiles.raster, tiles.terrain) in a
worker thread; a tile's ETag is its raster file's name (a new import is a new
file), so browsers revalidate for free.
"""

from __future__ import annotations

import datetime as dt
import gzip
from typing import Annotated
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import AsyncConnectionPool

from cim.config import Settings
from cim.errors import InputError, NotFoundError
from cim.server.deps import get_pool, get_settings_dep
from layers.rasters import RasterInfo, list_rasters_async
from tiles.raster import IMAGE_FORMATS, RasterSource, bounds_wgs84, imagery_tile, terrain_rgb_tile
from tiles.terrain import dem_maxzoom, layer_json, quantized_mesh_tile

router = APIRouter(prefix="/rasters", tags=["rasters"])

_MEDIA = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_CACHE = "public, max-age=300"
MAX_ZOOM = 24
Z = Annotated[int, Path(ge=0, le=MAX_ZOOM)]
XY = Annotated[int, Path(ge=0, lt=2**MAX_ZOOM)]


async def _catalogue(pool: AsyncConnectionPool) -> list[RasterInfo]:
    # every tile request reads its raster's row: over the server's pool, not a connection of its own (opening
    # one took about 13 ms of a 35-90 ms tile)
    async with pool.connection() as conn:
        return await list_rasters_async(conn)


def _urls(info: RasterInfo, epoch: bool) -> dict:
    q = f"?epoch={info.epoch.isoformat()}" if epoch else ""
    base = f"/rasters/{info.name}"
    out = {
        "xyz": f"{base}/tiles/{{z}}/{{x}}/{{y}}.png{q}",
        "xyz_jpg": f"{base}/tiles/{{z}}/{{x}}/{{y}}.jpg{q}",
        "xyz_webp": f"{base}/tiles/{{z}}/{{x}}/{{y}}.webp{q}",
        "wmts": f"{base}/WMTSCapabilities.xml{q}",
    }
    if info.kind == "dem":
        out |= {"terrain_rgb": f"{base}/terrain-rgb/{{z}}/{{x}}/{{y}}.png{q}", "quantized_mesh": f"{base}/terrain/{q}"}
    return out


def _json(info: RasterInfo, epochs: list[RasterInfo], latest: bool) -> dict:
    return {
        "name": info.name,
        "title": info.title,
        "kind": info.kind,
        "epoch": info.epoch.isoformat(),
        "epochs": [e.epoch.isoformat() for e in epochs],
        "bbox": list(info.bbox),
        "resolution": info.resolution_m,
        "width": info.width,
        "height": info.height,
        "bands": info.bands,
        "vertical_datum": "ellipsoidal" if info.kind == "dem" else None,
        "source_vertical_datum": info.vertical_datum,
        "stats": info.stats,
        "imported_at": info.imported_at.isoformat() if info.imported_at else None,
        "tiles": _urls(info, epoch=not latest),
    }


@router.get("", summary="The rasters: the newest epoch of each name, with its tile URL templates")
async def rasters(pool: AsyncConnectionPool = Depends(get_pool)) -> list[dict]:
    found = await _catalogue(pool)
    by_name: dict[str, list[RasterInfo]] = {}
    for info in found:
        by_name.setdefault(info.name, []).append(info)
    return [_json(epochs[0], epochs, latest=True) for epochs in by_name.values()]


async def _raster(
    name: Annotated[str, Path(max_length=48)],
    epoch: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (default: the newest)")] = None,
    pool: AsyncConnectionPool = Depends(get_pool),
) -> tuple[RasterInfo, list[RasterInfo]]:
    epochs = [r for r in await _catalogue(pool) if r.name == name]
    if not epochs:
        raise NotFoundError(f"no raster named {name!r}", hint="GET /rasters lists them")
    if epoch is None:
        return epochs[0], epochs
    try:
        day = dt.date.fromisoformat(epoch)
    except ValueError:
        raise InputError("epoch", f"{epoch!r} is not a date YYYY-MM-DD") from None
    chosen = next((r for r in epochs if r.epoch == day), None)
    if chosen is None:
        raise NotFoundError(
            f"raster {name!r} has no epoch {epoch}",
            hint=f"its epochs: {', '.join(e.epoch.isoformat() for e in epochs)}",
        )
    return chosen, epochs


Raster = Annotated[tuple[RasterInfo, list[RasterInfo]], Depends(_raster)]


@router.get("/{name}", summary="One raster (its newest epoch, or ?epoch=)")
async def raster(found: Raster, epoch: str | None = None) -> dict:
    info, epochs = found
    return _json(info, epochs, latest=epoch is None)


def _source(settings: Settings, info: RasterInfo) -> RasterSource:
    return RasterSource(settings.rasters_dir / info.name / info.file, info.kind, info.nodata)


def _tile_response(request: Request, data: bytes | None, media: str, etag: str, **headers: str) -> Response:
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": _CACHE})
    if data is None:
        return Response(status_code=204, headers={"Cache-Control": _CACHE})
    return Response(data, media_type=media, headers={"ETag": etag, "Cache-Control": _CACHE, **headers})


@router.get("/{name}/tiles/{z}/{x}/{y}.{fmt}", summary="An imagery tile (XYZ, Web Mercator; png, jpg, webp)")
async def tile(
    request: Request, found: Raster, z: Z, x: XY, y: XY, fmt: str, settings: Settings = Depends(get_settings_dep)
) -> Response:
    info, _ = found
    if fmt not in IMAGE_FORMATS:
        raise InputError("format", f"{fmt!r} is not a tile format", hint=", ".join(IMAGE_FORMATS))
    if x >= 2**z or y >= 2**z:
        raise NotFoundError(f"no tile {z}/{x}/{y}")
    etag = f'"{info.file}-{fmt}"'
    data = await run_in_threadpool(imagery_tile, _source(settings, info), z, x, y, fmt)
    return _tile_response(request, data, _MEDIA[fmt], etag)


def _dem(info: RasterInfo) -> None:
    if info.kind != "dem":
        raise NotFoundError(f"raster {info.name!r} is a {info.kind}: terrain comes from a DEM")


@router.get("/{name}/terrain-rgb/{z}/{x}/{y}.png", summary="A Terrain-RGB tile of a DEM (deck.gl TerrainLayer)")
async def terrain_rgb(
    request: Request, found: Raster, z: Z, x: XY, y: XY, settings: Settings = Depends(get_settings_dep)
) -> Response:
    info, _ = found
    _dem(info)
    if x >= 2**z or y >= 2**z:
        raise NotFoundError(f"no tile {z}/{x}/{y}")
    data = await run_in_threadpool(terrain_rgb_tile, _source(settings, info), z, x, y)
    return _tile_response(request, data, "image/png", f'"{info.file}-rgb"')


@router.get("/{name}/terrain/layer.json", summary="The quantized-mesh terrain's layer.json (CesiumJS)")
async def terrain_layer(
    found: Raster, epoch: str | None = None, settings: Settings = Depends(get_settings_dep)
) -> dict:
    info, _ = found
    _dem(info)
    path = settings.rasters_dir / info.name / info.file
    maxzoom = await run_in_threadpool(dem_maxzoom, path)
    bounds = await run_in_threadpool(bounds_wgs84, path)  # what the tiles decide availability from
    # the file in every tile URL: a new import changes them (CesiumJS puts {version} in only where asked)
    template = "{z}/{x}/{y}.terrain?v={version}" + (f"&epoch={info.epoch.isoformat()}" if epoch else "")
    doc = layer_json(bounds, 0, maxzoom, info.title, tiles_template=template)
    doc["version"] = info.file.removesuffix(".tif")
    return doc


@router.get("/{name}/terrain/{z}/{x}/{y}.terrain", summary="A quantized-mesh-1.0 tile (TMS, geographic)")
async def terrain_tile(
    request: Request,
    found: Raster,
    z: Z,
    x: XY,
    y: XY,
    v: Annotated[str | None, Query(max_length=80, description="the raster's version (layer.json's)")] = None,
    settings: Settings = Depends(get_settings_dep),
) -> Response:
    info, _ = found
    _dem(info)
    if x >= 2 ** (z + 1) or y >= 2**z:
        raise NotFoundError(f"no terrain tile {z}/{x}/{y}")
    data = await run_in_threadpool(quantized_mesh_tile, _source(settings, info), z, x, y)
    if data is None:
        raise NotFoundError(f"no terrain tile {z}/{x}/{y}: outside layer.json's available tiles")
    etag = f'"{info.file}-qm"'
    if "gzip" in request.headers.get("accept-encoding", ""):
        gz = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return _tile_response(request, gzip.compress(data, 5), "application/vnd.quantized-mesh", etag, **gz)
    return _tile_response(request, data, "application/vnd.quantized-mesh", etag, Vary="Accept-Encoding")


@router.get("/{name}/WMTSCapabilities.xml", summary="WMTS 1.0.0 capabilities (RESTful, GoogleMapsCompatible)")
async def wmts(request: Request, found: Raster) -> Response:
    info, _ = found
    base = str(request.base_url).rstrip("/")
    q = request.url.query
    template = f"{base}/rasters/{info.name}/tiles/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png" + (f"?{q}" if q else "")
    w, s, e, n = info.bbox
    matrices = "".join(
        f"<TileMatrix><ows:Identifier>{z}</ows:Identifier>"
        f"<ScaleDenominator>{559082264.0287178 / 2**z!r}</ScaleDenominator>"
        "<TopLeftCorner>-20037508.3427892 20037508.3427892</TopLeftCorner>"
        f"<TileWidth>256</TileWidth><TileHeight>256</TileHeight><MatrixWidth>{2**z}</MatrixWidth>"
        f"<MatrixHeight>{2**z}</MatrixHeight></TileMatrix>"
        for z in range(0, 23)
    )
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1"
 xmlns:xlink="http://www.w3.org/1999/xlink" version="1.0.0">
<ows:ServiceIdentification><ows:Title>cim-twin rasters</ows:Title><ows:ServiceType>OGC WMTS</ows:ServiceType>
<ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion></ows:ServiceIdentification>
<Contents><Layer><ows:Title>{escape(info.title)}</ows:Title><ows:Identifier>{escape(info.name)}</ows:Identifier>
<ows:WGS84BoundingBox><ows:LowerCorner>{w} {s}</ows:LowerCorner><ows:UpperCorner>{e} {n}</ows:UpperCorner>
</ows:WGS84BoundingBox><Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>
<Format>image/png</Format><TileMatrixSetLink><TileMatrixSet>GoogleMapsCompatible</TileMatrixSet></TileMatrixSetLink>
<ResourceURL format="image/png" resourceType="tile" template="{escape(template)}"/></Layer>
<TileMatrixSet><ows:Identifier>GoogleMapsCompatible</ows:Identifier>
<ows:SupportedCRS>urn:ogc:def:crs:EPSG::3857</ows:SupportedCRS>
<WellKnownScaleSet>urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible</WellKnownScaleSet>{matrices}</TileMatrixSet>
</Contents></Capabilities>"""
    return Response(xml, media_type="application/xml")
