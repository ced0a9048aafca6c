"""Vector tiles as HTTP responses (one layer, or several concatenated:
Mapbox vector tiles of distinct layers join byte for byte), with ETags
from the layers' versions; and the TileJSON that describes them."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request, Response
from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from cim.errors import NotFoundError
from layers.catalogue import LayerInfo
from layers.mvt import MAX_ZOOM, tile_in_range, tile_query
from layers.sensitive import Mask, mask_for

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
#: the zoom levels TileJSON announces: clients draw deeper levels from level 16's tiles (overzoom)
TILEJSON_MAX_ZOOM = 16
_FIELD_TYPES = {
    "bigint": "Number",
    "integer": "Number",
    "double precision": "Number",
    "numeric": "Number",
    "boolean": "Boolean",
}


def caller_roles(conn: HTTPConnection) -> frozenset[str]:
    """The role names of the caller (none for a visitor not signed in), as the access dependency found them."""
    identity = getattr(conn.state, "identity", None)
    return frozenset(str(role) for role in identity.roles) if identity is not None else frozenset()


def caller_mask(conn: HTTPConnection, layer: LayerInfo, grids: LayerInfo | None) -> Mask:
    """What the caller does not see of ``layer`` (layers.sensitive); ``grids``: the grid layer, if imported."""
    return _mask(layer, caller_roles(conn), grids)


#: masks of the catalogue's layers, kept by the LayerInfo objects they were computed from (frozen;
#: the catalogue makes new ones when it reads the database again, every second at most): a tile pays
#: a dictionary lookup, not the column checks of layers.sensitive on every request. Each entry holds
#: its objects, so that their ids are not reused while it is kept. (A layer's revision, the ETag's
#: part, is a cached property of the LayerInfo itself.)
_MASKS: dict[tuple, tuple[LayerInfo, LayerInfo | None, Mask]] = {}
_MASKS_SIZE = 1024


def _mask(layer: LayerInfo, roles: frozenset[str], grids: LayerInfo | None) -> Mask:
    """``mask_for(layer, roles, grids)``, once per catalogue entry, grid layer and roles."""
    key = (id(layer), id(grids), roles)
    hit = _MASKS.get(key)
    if hit is not None and hit[0] is layer and hit[1] is grids:
        return hit[2]
    mask = mask_for(layer, roles, grids)
    if len(_MASKS) >= _MASKS_SIZE:
        _MASKS.clear()
    _MASKS[key] = (layer, grids, mask)
    return mask


async def vector_tile(
    layers: Sequence[LayerInfo],
    z: int,
    x: int,
    y: int,
    request: Request,
    pool: AsyncConnectionPool,
    limit: int,
    *,
    grids: LayerInfo | None = None,
) -> Response:
    """The tile of ``layers`` at z/x/y: 204 when empty, 304 when the client's ETag is current.

    Sensitive columns and exact locations are masked for callers without the
    right (layers.sensitive): such a tile has its own ETag (``-masked``), and
    the full one of a layer with sensitive data is ``private`` (no shared cache
    keeps it); every tile varies with the caller's credentials."""
    if not tile_in_range(z, x, y):
        raise NotFoundError(f"tile {z}/{x}/{y} does not exist (zoom 0 to {MAX_ZOOM}, x and y below 2^zoom)")
    masks = [caller_mask(request, layer, grids) for layer in layers]
    masked = any(mask.restricted for mask in masks)
    sensitive = masked or any(_mask(layer, frozenset(), grids).restricted for layer in layers)
    versions = "+".join(layer.revision for layer in layers)
    etag = f'"{versions}-{z}-{x}-{y}{"-masked" if masked else ""}"'
    headers = {
        "Cache-Control": "private, max-age=3600" if sensitive and not masked else "public, max-age=3600",
        "ETag": etag,
        "Vary": "Authorization, Cookie",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    parts = []
    async with pool.connection() as conn:
        for layer, mask in zip(layers, masks):
            query, params = tile_query(layer, z, x, y, limit=limit, mask=mask)
            row = await (await conn.execute(query, params)).fetchone()
            if row and row[0]:
                parts.append(bytes(row[0]))
    data = b"".join(parts)
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(content=data, media_type=MVT_MEDIA_TYPE, headers=headers)


def tilejson(layers: Sequence[LayerInfo], tiles_url: str, *, name: str, description: str = "") -> dict:
    """TileJSON 3.0.0 for ``layers`` served at ``tiles_url`` (a {z}/{x}/{y} template)."""
    west = min(layer.bbox[0] for layer in layers)
    south = min(layer.bbox[1] for layer in layers)
    east = max(layer.bbox[2] for layer in layers)
    north = max(layer.bbox[3] for layer in layers)
    return {
        "tilejson": "3.0.0",
        "name": name,
        "description": description,
        "scheme": "xyz",
        "tiles": [tiles_url],
        "minzoom": 0,
        "maxzoom": TILEJSON_MAX_ZOOM,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, 12],
        "vector_layers": [
            {
                "id": layer.name,
                "description": layer.title,
                "minzoom": 0,
                "maxzoom": TILEJSON_MAX_ZOOM,
                "fields": {column: _FIELD_TYPES.get(t, "String") for column, t in layer.served_columns.items()},
            }
            for layer in layers
        ],
    }
