"""The raster catalogue (schema ``rasters``): one row per raster and epoch.

A raster's file is a Cloud-Optimized GeoTIFF under the data directory
(``rasters/<name>/<file>``, named in the row); a row is written only after its
file is whole, and the file it replaces is deleted only after the row's
commit, so readers always find the file a row names. The PostGIS side knows
nothing of how the files are tiled (tiles.raster, tiles.terrain).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from layers.schema import create_schema_once

SCHEMA = "rasters"
KINDS = {"dom": "正射影像 (DOM)", "dem": "数字高程模型 (DEM)"}

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.catalogue (
    name            text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{{0,47}}$'),
    epoch           date NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('dom', 'dem')),
    title           text NOT NULL,
    file            text NOT NULL,
    crs             text NOT NULL,
    bbox            double precision[] NOT NULL,
    resolution_m    double precision NOT NULL,
    width           integer NOT NULL,
    height          integer NOT NULL,
    bands           integer NOT NULL,
    dtype           text NOT NULL,
    nodata          double precision,
    vertical_datum  text,
    stats           jsonb NOT NULL DEFAULT '{{}}',
    source          text NOT NULL,
    imported_by     text NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, epoch)
);
"""


@dataclass(frozen=True)
class RasterInfo:
    name: str
    epoch: dt.date
    kind: str
    title: str
    file: str  # relative to <data_dir>/rasters/<name>/
    crs: str  # WKT
    bbox: tuple[float, float, float, float]  # WGS 84
    resolution_m: float
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    vertical_datum: str | None  # of the source (a DEM is stored ellipsoidal)
    stats: dict[str, Any]
    source: str
    imported_by: str = ""
    imported_at: dt.datetime | None = None


def ensure_rasters_schema(conn: psycopg.Connection) -> None:
    """Create what is missing."""
    create_schema_once(conn, SCHEMA, "catalogue", _DDL, {"catalogue": "影像与地形: 每个栅格每期一行 (云优化 GeoTIFF)"})


def _info(row: dict[str, Any]) -> RasterInfo:
    return RasterInfo(**{**row, "bbox": tuple(row["bbox"])})


_EXISTS = f"SELECT to_regclass('{SCHEMA}.catalogue') IS NOT NULL"
_LIST = f"SELECT * FROM {SCHEMA}.catalogue ORDER BY name, epoch DESC"


def list_rasters(conn: psycopg.Connection) -> list[RasterInfo]:
    """Every raster and epoch, by name, newest epoch first (none before the first import)."""
    found = conn.execute(_EXISTS).fetchone()
    if not (found and found[0]):
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_LIST).fetchall()
    return [_info(r) for r in rows]


async def list_rasters_async(conn: psycopg.AsyncConnection) -> list[RasterInfo]:
    """:func:`list_rasters` on an asynchronous connection (the server's pool)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_EXISTS)
        found = await cur.fetchone()
        if not (found and next(iter(found.values()))):
            return []
        await cur.execute(_LIST)
        rows = await cur.fetchall()
    return [_info(r) for r in rows]


def record_raster(conn: psycopg.Connection, info: RasterInfo) -> str | None:
    """Insert or replace the row of ``info``'s name and epoch (in the caller's
    transaction); returns the file the replaced row named, if any."""
    previous = conn.execute(
        f"SELECT file FROM {SCHEMA}.catalogue WHERE name = %s AND epoch = %s FOR UPDATE", (info.name, info.epoch)
    ).fetchone()
    conn.execute(f"DELETE FROM {SCHEMA}.catalogue WHERE name = %s AND epoch = %s", (info.name, info.epoch))
    conn.execute(
        f"""INSERT INTO {SCHEMA}.catalogue (name, epoch, kind, title, file, crs, bbox, resolution_m, width, height,
                bands, dtype, nodata, vertical_datum, stats, source, imported_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            info.name, info.epoch, info.kind, info.title, info.file, info.crs, list(info.bbox), info.resolution_m,
            info.width, info.height, info.bands, info.dtype, info.nodata, info.vertical_datum, Jsonb(info.stats),
            info.source, info.imported_by,
        ),
    )  # fmt: skip
    return previous[0] if previous else None


def kinds_of(conn: psycopg.Connection, name: str) -> set[str]:
    """The kinds recorded under ``name`` (a name holds one kind)."""
    return {r[0] for r in conn.execute(f"SELECT DISTINCT kind FROM {SCHEMA}.catalogue WHERE name = %s", (name,))}
