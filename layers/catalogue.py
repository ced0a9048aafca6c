"""The layer catalogue (``cim.layers``): what layers exist and what they hold.

The HTTP server takes table and column names only from here, never from a
request, so a layer name in a URL can only ever select a catalogue row.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import psycopg
from psycopg.rows import dict_row

from cim.errors import InputError, NotFoundError
from layers.schema import META_SCHEMA

COLUMNS = (
    "name, title, table_schema, table_name, geometry_type, srid, feature_count, bbox, columns, "
    "source, source_crs, imported_at, version, repaired_count, skipped_count, served, sensitive"
)
#: what an import writes (the column policy, ``served`` and ``sensitive``, is the admin's: kept on re-import)
_IMPORTED = COLUMNS.removesuffix(", served, sensitive")


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
    #: the allow-list: the columns the layer serves (None: all of them); set by
    #: ``cim layers columns``, recorded at the first import, kept on re-import
    served: tuple[str, ...] | None = None
    #: columns marked sensitive by an admin, beyond those sensitive by name (layers.sensitive)
    sensitive: tuple[str, ...] = ()

    @cached_property
    def served_columns(self) -> dict[str, str]:
        """The columns (name -> type) the layer serves to anyone, in table order."""
        if self.served is None:
            return self.columns
        allowed = set(self.served)
        return {c: t for c, t in self.columns.items() if c in allowed}

    @cached_property
    def revision(self) -> str:
        """Changes with every import and every change of the column policy (tiles' ETags):
        versions restart with a new database, so the import time is part of it."""
        imported = int(self.imported_at.timestamp()) if self.imported_at else 0
        policy = zlib.crc32(json.dumps([self.served, self.sensitive], ensure_ascii=False).encode())
        return f"{self.name}-v{self.version}-{imported}-{policy:08x}"

    def to_json(self) -> dict[str, Any]:
        """What clients see (``/layers``, and every route built on it): the
        served columns only, the source's file name only, never a path on the server."""
        d = asdict(self)
        d["bbox"] = list(self.bbox)
        d["imported_at"] = self.imported_at.isoformat() if self.imported_at else None
        d["source"] = file_name(self.source)
        d["columns"] = self.served_columns
        d["sensitive"] = [c for c in self.sensitive if c in d["columns"]]
        del d["table_schema"], d["table_name"], d["served"]
        return d


def file_name(path: str) -> str:
    """The last part of a path (``/srv/in/buildings.gpkg`` -> ``buildings.gpkg``,
    ``C:\\in\\a.shp`` -> ``a.shp``, a production folder -> its name)."""
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1] if path else path


def row_to_info(row: dict[str, Any]) -> LayerInfo:
    row = dict(row)
    row["bbox"] = tuple(row["bbox"])
    row["served"] = None if row.get("served") is None else tuple(row["served"])
    row["sensitive"] = tuple(row.get("sensitive") or ())
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
    """Register or replace a layer's row (inside the caller's transaction).
    A new layer serves every column it has (``info.served``, if given, instead);
    a replaced one keeps its allow-list and its marked columns."""
    served = list(info.columns) if info.served is None else list(info.served)
    conn.execute(
        f"""INSERT INTO {META_SCHEMA}.layers ({_IMPORTED}, served, sensitive)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s, %s, %s, %s)
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
            json.dumps(served, ensure_ascii=False),
            json.dumps(list(info.sensitive), ensure_ascii=False),
        ),
    )


def set_column_policy(
    conn: psycopg.Connection, name: str, served: list[str] | None, sensitive: list[str] | None
) -> LayerInfo:
    """Set layer ``name``'s allow-list (``served``; None: leave it) and its
    marked sensitive columns (None: leave them). Names must be the layer's columns."""
    layer = get_layer(conn, name)
    for given, what in ((served, "--serve"), (sensitive, "--sensitive")):
        unknown = [c for c in given or () if c not in layer.columns]
        if unknown:
            raise InputError(
                what,
                f"layer {name!r} has no column {', '.join(map(repr, unknown))}",
                hint=f"its columns: {', '.join(layer.columns)}",
            )
    conn.execute(
        f"""UPDATE {META_SCHEMA}.layers SET served = coalesce(%s::jsonb, served),
                   sensitive = coalesce(%s::jsonb, sensitive) WHERE name = %s""",
        (
            None if served is None else json.dumps(served, ensure_ascii=False),
            None if sensitive is None else json.dumps(sensitive, ensure_ascii=False),
            name,
        ),
    )
    return get_layer(conn, name)


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
