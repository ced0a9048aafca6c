"""Mapbox vector tiles from a layer with ST_AsMVT.

Geometries are simplified to the tile's pixel size before they are
transformed (cheaper, and nothing visible is lost), clipped with a buffer,
and capped at ``limit`` features per tile so the densest point layers stay
servable at low zoom.
"""

from __future__ import annotations

from psycopg import sql

from layers.catalogue import LayerInfo
from layers.sensitive import FULL, Mask, source_sql, visible_columns

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 24
_EARTH_CIRCUMFERENCE = 40075016.685578488
_MVT_NATIVE = {"bigint", "double precision", "boolean", "text", "integer", "numeric"}


def tile_in_range(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z


def _pixel_degrees(z: int) -> float:
    """One tile pixel at zoom z, in degrees of longitude at the equator (an
    upper bound of the pixel's size in degrees of latitude, too)."""
    return (_EARTH_CIRCUMFERENCE / 2**z / EXTENT) / 111_319.49


def tile_query(layer: LayerInfo, z: int, x: int, y: int, *, limit: int, mask: Mask = FULL) -> tuple[sql.Composed, dict]:
    """The statement that returns one row: the MVT bytes (empty when no
    feature touches the tile). Identifiers come from the catalogue only.
    ``mask`` (layers.sensitive): the columns left out and the points snapped
    (the tile holds the snapped points that fall in it)."""
    props = []
    for column, pgtype in visible_columns(layer, mask).items():
        ident = sql.Identifier(column)
        props.append(
            sql.SQL("t.{}").format(ident) if pgtype in _MVT_NATIVE else sql.SQL("t.{}::text AS {}").format(ident, ident)
        )
    points = layer.geometry_type in ("Point", "MultiPoint")
    geom = sql.SQL("t.geom") if points else sql.SQL("ST_Simplify(t.geom, %(tol)s, true)")
    query = sql.SQL("""
        WITH env AS (
            SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e3857,
                   ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS e4326
        ), f AS (
            SELECT * FROM (
                SELECT t.fid, {props}
                       ST_AsMVTGeom(ST_Transform({geom}, 3857), env.e3857, %(extent)s, %(buffer)s, true) AS geom
                FROM {table} t, env
                WHERE t.geom && env.e4326
            ) clipped
            WHERE clipped.geom IS NOT NULL  -- before the cap: it counts drawn features only
            LIMIT %(limit)s
        )
        SELECT ST_AsMVT(f.*, %(name)s, %(extent)s, 'geom', 'fid') FROM f
    """).format(
        props=sql.SQL("").join(sql.SQL("{}, ").format(p) for p in props),
        geom=geom,
        table=source_sql(layer, mask),
    )
    params = dict(
        z=z,
        x=x,
        y=y,
        margin=BUFFER / EXTENT,
        extent=EXTENT,
        buffer=BUFFER,
        limit=limit,
        name=layer.name,
        tol=_pixel_degrees(z),
    )
    return query, params
