"""Fast, all-or-nothing loading of a feature table into a PostGIS layer.

One transaction does it all: a temporary staging table filled by COPY
(CSV written by pyarrow, geometry as hex EWKB), the new table built from it
(with each feature placed in its street/community/grid by a spatial join),
its indexes, then the swap: drop the old table, rename the new one, update
the catalogue, commit. Until the commit, readers see the previous version;
if anything fails, the rollback leaves the previous version as it was.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely
from psycopg import sql

from layers.catalogue import LayerInfo, find_layer, upsert_layer
from layers.gridjoin import GRID_COLUMNS, GridPlacement, grid_placement
from layers.schema import LAYER_SCHEMA, ensure_schema

COPY_CHUNK_ROWS = 50_000
RESERVED = ("fid", "geom")

#: called with (stage, done, total) while loading
Progress = Callable[[str, int, int], None]


@dataclass
class FeatureTable:
    """Features ready to load: attributes (one row per feature) and their
    geometries, already in EPSG:4326, valid, of one type."""

    attributes: pa.Table
    geometry: np.ndarray
    geometry_type: str  # Point, MultiPoint, MultiLineString or MultiPolygon

    def __post_init__(self) -> None:
        if self.attributes.num_columns and self.attributes.num_rows != len(self.geometry):
            raise ValueError("attributes and geometry differ in length")

    def __len__(self) -> int:
        return len(self.geometry)


@dataclass
class LoadResult:
    layer: LayerInfo
    placed_in_grid: int | None = None  # None: no grid placement was done
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _pg_type(dtype: pa.DataType) -> str | None:
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype):
        return "bigint"
    if pa.types.is_floating(dtype):
        return "double precision"
    if pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "text"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_timestamp(dtype):
        return "timestamptz" if dtype.tz else "timestamp"
    if pa.types.is_time(dtype):
        return "time"
    return None


def normalise_attributes(table: pa.Table, *, extra_reserved: tuple[str, ...] = ()) -> tuple[pa.Table, dict[str, str], list[str]]:
    """Column names made safe for PostgreSQL (unique, at most 63 bytes, not
    clashing with ``fid``/``geom``/grid columns) and types mapped to
    PostgreSQL; unsupported types become text. Returns the table, the
    column -> type map and notes for the summary."""
    notes: list[str] = []
    reserved = {*RESERVED, *extra_reserved}
    names: list[str] = []
    arrays: list[pa.Array] = []
    types: dict[str, str] = {}
    for name, column in zip(table.column_names, table.columns):
        new = name.strip() or "field"
        while new.lower() in reserved or new in types:
            new = f"{new}_src"
        while len(new.encode()) > 63:
            new = new[:-1]
        if new != name:
            notes.append(f"column {name!r} renamed to {new!r}")
        pg = _pg_type(column.type)
        if pg is None:
            try:
                column = pc.cast(column, pa.string())
            except pa.ArrowNotImplementedError:
                notes.append(f"column {name!r} of type {column.type} dropped (no PostgreSQL equivalent)")
                continue
            pg = "text"
        names.append(new)
        arrays.append(column)
        types[new] = pg
    return pa.table(arrays, names=names), types, notes


def _copy_rows(cur: psycopg.Cursor, stage: sql.Identifier, attrs: pa.Table, geometry: np.ndarray,
               progress: Progress | None) -> None:
    columns = sql.SQL(", ").join([sql.Identifier("fid"), *map(sql.Identifier, attrs.column_names), sql.Identifier("geom")])
    n = len(geometry)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(stage, columns)) as copy:
        for start in range(0, n, COPY_CHUNK_ROWS):
            stop = min(start + COPY_CHUNK_ROWS, n)
            wkb = shapely.to_wkb(shapely.set_srid(geometry[start:stop], 4326), hex=True, include_srid=True)
            chunk = pa.table({
                "fid": pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
                **{c: attrs.column(c).slice(start, stop - start) for c in attrs.column_names},
                "geom": pa.array(wkb, type=pa.string()),
            })
            buf = io.BytesIO()
            pacsv.write_csv(chunk, buf, options)
            copy.write(buf.getbuffer())
            if progress:
                progress("load", stop, n)


def load_layer(conn: psycopg.Connection, name: str, features: FeatureTable, *, title: str | None = None,
               source: str, source_crs: str | None = None, repaired: int = 0, skipped: int = 0,
               grid_layer: str | None = None, progress: Progress | None = None) -> LoadResult:
    """Load ``features`` as layer ``name`` (replacing any previous version
    atomically) and register it in the catalogue. With ``grid_layer``, every
    feature is placed in its street, community and grid."""
    t0 = time.perf_counter()
    ensure_schema(conn)
    placement: GridPlacement | None = grid_placement(conn, grid_layer) if grid_layer and grid_layer != name else None
    extra = GRID_COLUMNS if placement else ()
    attrs, types, notes = normalise_attributes(features.attributes, extra_reserved=extra)
    if grid_layer and grid_layer != name and placement is None:
        notes.append(f"grid layer {grid_layer!r} is not imported yet: street/community/grid not set "
                     f"(import it, then re-import {name!r})")

    new_table = f"{name}__new"
    stage = sql.Identifier(f"stage_{name}")
    target = sql.Identifier(LAYER_SCHEMA, name)
    fresh = sql.Identifier(LAYER_SCHEMA, new_table)
    geom_type = features.geometry_type
    attr_defs = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in types.items()]
    attr_cols = [sql.Identifier(c) for c in types]

    with conn.transaction():
        previous = find_layer(conn, name)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE TEMP TABLE {} (fid bigint, {} geom geometry) ON COMMIT DROP").format(
                stage, sql.SQL("").join(sql.SQL("{}, ").format(d) for d in attr_defs)))
            _copy_rows(cur, stage, attrs, features.geometry, progress)
            if progress:
                progress("index", 0, 1)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(fresh))
            grid_defs = [sql.SQL("{} text").format(sql.Identifier(c)) for c in extra]
            cur.execute(sql.SQL("CREATE TABLE {} (fid bigint PRIMARY KEY, {} geom geometry({}, 4326) NOT NULL)").format(
                fresh, sql.SQL("").join(sql.SQL("{}, ").format(d) for d in [*attr_defs, *grid_defs]), sql.SQL(geom_type)))
            select_cols = sql.SQL(", ").join([sql.SQL("s.fid"), *(sql.SQL("s.{}").format(c) for c in attr_cols)])
            insert_cols = sql.SQL(", ").join([sql.Identifier("fid"), *attr_cols, *map(sql.Identifier, extra), sql.Identifier("geom")])
            if placement:
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {}, {}, s.geom FROM {} s {}").format(
                    fresh, insert_cols, select_cols, placement.select_sql(), stage,
                    placement.join_sql(point_geometry=geom_type in ("Point", "MultiPoint"))))
            else:
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {}, s.geom FROM {} s").format(
                    fresh, insert_cols, select_cols, stage))
            cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                sql.Identifier(f"{new_table}_geom_idx"), fresh))
            cur.execute(sql.SQL("ANALYZE {}").format(fresh))
            placed = None
            if placement:
                placed = cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
                    fresh, sql.Identifier(GRID_COLUMNS[-1]))).fetchone()[0]
            # the swap
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(fresh, sql.Identifier(name)))
            cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(LAYER_SCHEMA, f"{new_table}_geom_idx"), sql.Identifier(f"{name}_geom_idx")))
            cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(LAYER_SCHEMA, f"{new_table}_pkey"), sql.Identifier(f"{name}_pkey")))
        bounds = shapely.total_bounds(features.geometry)
        all_columns = {**types, **{c: "text" for c in extra}}
        info = LayerInfo(
            name=name, title=title or (previous.title if previous else name), table_schema=LAYER_SCHEMA,
            table_name=name, geometry_type=geom_type, srid=4326, feature_count=len(features),
            bbox=tuple(float(v) for v in bounds), columns=all_columns, source=source, source_crs=source_crs,
            version=(previous.version + 1) if previous else 1, repaired_count=repaired, skipped_count=skipped,
        )
        upsert_layer(conn, info)
    if placed is not None and placed < len(features):
        notes.append(f"{len(features) - placed} features lie outside every grid of {grid_layer!r}")
    return LoadResult(layer=info, placed_in_grid=placed, notes=notes, seconds=time.perf_counter() - t0)
