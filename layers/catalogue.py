"""The layer catalogue (``cim.layers``): what layers exist and what they hold.

The HTTP server takes table and column names only from here, never from a
request, so a layer name in a URL can only ever select a catalogue row.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from cim.errors import NotFoundError
from layers.schema import META_SCHEMA

COLUMNS = (
    "name, title, table_schema, table_name, geometry_type, srid, feature_count, bbox, columns, "
    "source, source_crs, imported_at, version, repaired_count, skipped_count"
)


@dataclass(frozen=True)
class LayerInfo:
    name: str
    title: str
    table_schema: str
    table_name: str
    geometry_type: str
    srid: int
    feature_count: int
    bbox: tuple[float, float, float, float]
    #: attribute columns, in table order: name -> PostgreSQL type
    columns: dict[str, str] = field(default_factory=dict)
    source: str = ""
    source_crs: str | None = None
    imported_at: datetime | None = None
    version: int = 1
    repaired_count: int = 0
    skipped_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """What clients see (``/layers``, and every route built on it): the
        source's file name only, never a path on the server."""
        d = asdict(self)
        d["bbox"] = list(self.bbox)
        d["imported_at"] = self.imported_at.isoformat() if self.imported_at else None
        d["source"] = file_name(self.source)
        del d["table_schema"], d["table_name"]
        return d


def file_name(path: str) -> str:
    """The last part of a path (``/srv/in/buildings.gpkg`` -> ``buildings.gpkg``,
    ``C:\\in\\a.shp`` -> ``a.shp``, a production folder -> its name)."""
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1] if path else path


def row_to_info(row: dict[str, Any]) -> LayerInfo:
    row = dict(row)
    row["bbox"] = tuple(row["bbox"])
    return LayerInfo(**row)


def list_layers(conn: psycopg.Connection) -> list[LayerInfo]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {META_SCHEMA}.layers ORDER BY name")
        return [row_to_info(r) for r in cur.fetchall()]


def get_layer(conn: psycopg.Connection, name: str) -> LayerInfo:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {META_SCHEMA}.layers WHERE name = %s", (name,))
        row = cur.fetchone()
    if row is None:
        raise NotFoundError(f"no layer named {name!r}", hint="`GET /layers` lists the layers")
    return row_to_info(row)


def find_layer(conn: psycopg.Connection, name: str) -> LayerInfo | None:
    try:
        return get_layer(conn, name)
    except NotFoundError:
        return None


def upsert_layer(conn: psycopg.Connection, info: LayerInfo) -> None:
    """Register or replace a layer's row (inside the caller's transaction)."""
    conn.execute(
        f"""INSERT INTO {META_SCHEMA}.layers ({COLUMNS})
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET
              title = EXCLUDED.title, table_schema = EXCLUDED.table_schema, table_name = EXCLUDED.table_name,
              geometry_type = EXCLUDED.geometry_type, srid = EXCLUDED.srid,
              feature_count = EXCLUDED.feature_count, bbox = EXCLUDED.bbox, columns = EXCLUDED.columns,
              source = EXCLUDED.source, source_crs = EXCLUDED.source_crs, imported_at = now(),
              version = EXCLUDED.version, repaired_count = EXCLUDED.repaired_count,
              skipped_count = EXCLUDED.skipped_count""",
        (
            info.name,
            info.title,
            info.table_schema,
            info.table_name,
            info.geometry_type,
            info.srid,
            info.feature_count,
            list(info.bbox),
            json.dumps(info.columns, ensure_ascii=False),
            info.source,
            info.source_crs,
            info.version,
            info.repaired_count,
            info.skipped_count,
        ),
    )


def record_tileset_version(conn: psycopg.Connection, name: str, folder: str, layer_version: int) -> None:
    """Record that layer ``name`` (at ``layer_version``) goes with the tileset
    version in ``folder`` (inside the layer's transaction, so both land or neither)."""
    conn.execute(
        f"""INSERT INTO {META_SCHEMA}.tileset_versions (name, folder, layer_version) VALUES (%s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET folder = EXCLUDED.folder, layer_version = EXCLUDED.layer_version,
              recorded_at = now()""",
        (name, folder, layer_version),
    )


def _has_tileset_versions(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{META_SCHEMA}.tileset_versions",)).fetchone()
    return bool(row and row[0])


def tileset_version_names(conn: psycopg.Connection) -> list[str]:
    """The names that have a recorded tileset version (none before the first import made the table)."""
    if not _has_tileset_versions(conn):
        return []
    return [r[0] for r in conn.execute(f"SELECT name FROM {META_SCHEMA}.tileset_versions ORDER BY name")]


def recorded_tileset_version(conn: psycopg.Connection, name: str) -> str | None:
    """The folder of the tileset version recorded for ``name``, if any."""
    if not _has_tileset_versions(conn):
        return None
    row = conn.execute(f"SELECT folder FROM {META_SCHEMA}.tileset_versions WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None
