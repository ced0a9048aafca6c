"""Fast, all-or-nothing loading of a feature table into a PostGIS layer.

One transaction does it all: an unlogged staging table filled by COPY
(CSV written by pyarrow, geometry as hex EWKB), each feature placed in its
street/community/grid by a spatial join, the new table built from both with
its indexes and its comments (the title, what each known column holds), then
the swap: drop the old table, rename the new one (it gets the old one's
grants, or for a new layer those the ``layers`` schema gives new tables),
update the catalogue, commit. Until the commit, readers see the previous
version; if anything fails, the rollback leaves the previous version as it was.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely
from psycopg import sql

from layers.catalogue import LayerInfo, find_layer, get_layer, upsert_layer
from layers.gridjoin import GRID_COLUMNS, GridPlacement, grid_placement
from layers.labels import column_comment
from layers.schema import LAYER_SCHEMA, STAGING_SCHEMA, ensure_schema, set_comments

COPY_CHUNK_ROWS = 50_000
RESERVED = ("fid", "geom")

#: called with (stage, done, total) while loading; total 0 means unknown
Progress = Callable[[str, int, int], None]


@dataclass
class FeatureTable:
    """Features ready to load: attributes (one row per feature) and their
    geometries, already in EPSG:4326, valid, of one type."""

    attributes: pa.Table
    geometry: np.ndarray
    geometry_type: str  # Point, MultiPoint, MultiLineString or MultiPolygon
    #: PostgreSQL types that replace the ones read off the attributes (e.g. {"properties": "jsonb"})
    column_types: dict[str, str] = field(default_factory=dict)

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


def normalise_attributes(
    table: pa.Table, *, extra_reserved: tuple[str, ...] = ()
) -> tuple[pa.Table, dict[str, str], list[str]]:
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
        while len(new.encode()) > 59:  # PostgreSQL keeps 63 bytes of a name; room for a suffix
            new = new[:-1]
        candidate, k = new, 0
        while candidate.lower() in reserved or candidate in types:
            k += 1
            candidate = f"{new}_src" if k == 1 else f"{new}_{k}"
        new = candidate
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


#: timestamps travel as integer microseconds since the epoch: PostgreSQL
#: parses text timestamps with time zones slowly (tickets: 1.45 s of COPY for
#: 150,000 rows of four timestamps), integers fast, and the value is exact
_EPOCH = {"timestamptz": "timestamptz 'epoch'", "timestamp": "timestamp 'epoch'"}


def _stage_type(pgtype: str) -> str:
    if pgtype == "jsonb":
        return "text"  # JSON travels as text and is parsed once, in the new table
    return "bigint" if pgtype in _EPOCH else pgtype


def _on_the_wire(column: pa.ChunkedArray, pgtype: str) -> pa.ChunkedArray:
    if pgtype not in _EPOCH:
        return column
    micros = pc.cast(column, pa.timestamp("us", tz=column.type.tz))  # arrow keeps tz-aware values in UTC
    return pc.cast(micros, pa.int64())


def _from_stage(column: str, pgtype: str) -> sql.Composable:
    ident = sql.Identifier(column)
    if pgtype in _EPOCH:
        return sql.SQL("({} + s.{} * interval '1 microsecond') AS {}").format(sql.SQL(_EPOCH[pgtype]), ident, ident)
    if pgtype == "jsonb":
        return sql.SQL("s.{}::jsonb AS {}").format(ident, ident)
    return sql.SQL("s.{}").format(ident)


def ewkb_hex(geometry: np.ndarray, srid: int = 4326) -> list[str]:
    """Hex EWKB (what PostGIS reads from text) of 2D geometries.

    By hand because GEOS's own hex writer (``shapely.to_wkb(hex=True,
    include_srid=True)``) is three times slower than binary WKB plus
    Python's ``bytes.hex``. EWKB differs from little-endian WKB only in the
    top-level type word: its high byte gets the SRID flag (0x20) and the SRID
    follows it."""
    srid_hex = srid.to_bytes(4, "little").hex()
    return [h[:8] + "20" + srid_hex + h[10:] for h in (w.hex() for w in shapely.to_wkb(geometry, byte_order=1))]


def _copy_rows(
    cur: psycopg.Cursor,
    stage: sql.Identifier,
    attrs: pa.Table,
    types: dict[str, str],
    geometry: np.ndarray,
    progress: Progress | None,
) -> None:
    columns = sql.SQL(", ").join(
        [sql.Identifier("fid"), *map(sql.Identifier, attrs.column_names), sql.Identifier("geom")]
    )
    n = len(geometry)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(stage, columns)) as copy:
        for start in range(0, n, COPY_CHUNK_ROWS):
            stop = min(start + COPY_CHUNK_ROWS, n)
            wkb = ewkb_hex(geometry[start:stop])
            chunk = pa.table(
                {
                    "fid": pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
                    **{
                        c: _on_the_wire(attrs.column(c).slice(start, stop - start), types[c])
                        for c in attrs.column_names
                    },
                    "geom": pa.array(wkb, type=pa.string()),
                }
            )
            buf = io.BytesIO()
            pacsv.write_csv(chunk, buf, options)
            copy.write(buf.getbuffer())
            if progress:
                progress("load", stop, n)


def load_layer(
    conn: psycopg.Connection,
    name: str,
    features: FeatureTable,
    *,
    title: str | None = None,
    source: str,
    source_crs: str | None = None,
    repaired: int = 0,
    skipped: int = 0,
    grid_layer: str | None = None,
    progress: Progress | None = None,
    before_commit: Callable[[psycopg.Connection, LayerInfo], None] | None = None,
    within_transaction: bool = False,
) -> LoadResult:
    """Load ``features`` as layer ``name`` (replacing any previous version
    atomically) and register it in the catalogue. With ``grid_layer``, every
    feature is placed in its street, community and grid.

    ``before_commit(conn, layer)`` runs inside the transaction, after the swap:
    it sees the new table, and if it raises, nothing of this load remains
    (how an importer keeps a tileset and its layer in step).

    ``within_transaction``: ``conn`` is inside a transaction the caller commits
    (a second layer loaded by a ``before_commit`` of the first, so both land
    or neither); otherwise the load is its own transaction."""
    t0 = time.perf_counter()
    if not conn.autocommit and not within_transaction:
        raise ValueError("load_layer needs an autocommit connection: the load is its own transaction")
    ensure_schema(conn)
    placement: GridPlacement | None = grid_placement(conn, grid_layer) if grid_layer and grid_layer != name else None
    extra = GRID_COLUMNS if placement else ()
    attrs, types, notes = normalise_attributes(features.attributes, extra_reserved=extra)
    types.update({c: t for c, t in features.column_types.items() if c in types})
    if grid_layer and grid_layer != name and placement is None:
        notes.append(
            f"grid layer {grid_layer!r} is not imported yet: street/community/grid not set "
            f"(import it, then re-import {name!r})"
        )
    points = features.geometry_type in ("Point", "MultiPoint")
    tag = f"{name}_{os.getpid()}"
    stage = sql.Identifier(STAGING_SCHEMA, f"stage_{tag}")
    matches = sql.Identifier(STAGING_SCHEMA, f"grid_{tag}")
    fresh_name = f"new_{tag}"
    fresh = sql.Identifier(STAGING_SCHEMA, fresh_name)
    attr_defs = sql.SQL("").join(
        sql.SQL("{} {}, ").format(sql.Identifier(c), sql.SQL(_stage_type(t))) for c, t in types.items()
    )
    placed = None

    with conn.transaction():
        # one import of a layer at a time; the others wait here, then replace it in turn
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cim.layer.{name}",))
        previous = find_layer(conn, name)
        title = title or (previous.title if previous else name)
        with conn.cursor() as cur:
            # UNLOGGED: no WAL for data that lives one transaction; created in
            # it, so a rollback removes it too
            cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} (fid bigint, {} geom geometry)").format(stage, attr_defs))
            _copy_rows(cur, stage, attrs, types, features.geometry, progress)
            if progress:
                progress("place", 0, 1)
            if placement:
                # no ANALYZE of the stage: the plan (grids outer, index inner) is the same without
                cur.execute(placement.index_sql(stage, point_geometry=points))
                cur.execute(
                    sql.SQL("CREATE UNLOGGED TABLE {} AS {}").format(
                        matches, placement.matches_sql(stage, point_geometry=points)
                    )
                )
                placed = cur.rowcount
            if progress:
                progress("index", 0, 1)
            _build_table(cur, name, fresh, stage, matches if placement else None, types, extra, features.geometry_type)
            columns = ("fid", *types, *extra, "geom")
            known = {c: text for c in columns if (text := column_comment(c)) is not None}
            set_comments(conn, STAGING_SCHEMA, fresh_name, title, known)
            cur.execute(sql.SQL("DROP TABLE {}").format(stage))
            if placement:
                cur.execute(sql.SQL("DROP TABLE {}").format(matches))
            _swap(cur, name, fresh_name)
        west, south, east, north = (float(v) for v in shapely.total_bounds(features.geometry))
        info = LayerInfo(
            name=name,
            title=title,
            table_schema=LAYER_SCHEMA,
            table_name=name,
            geometry_type=features.geometry_type,
            srid=4326,
            feature_count=len(features),
            bbox=(west, south, east, north),
            columns={**types, **{c: "text" for c in extra}},
            source=source,
            source_crs=source_crs,
            version=(previous.version + 1) if previous else 1,
            repaired_count=repaired,
            skipped_count=skipped,
        )
        upsert_layer(conn, info)
        info = get_layer(conn, name)  # with the allow-list a re-import keeps
        unserved = [c for c in info.columns if c not in info.served_columns]
        if unserved:
            notes.append(
                f"not served (off the layer's allow-list): {', '.join(unserved)}; "
                f"`cim layers columns {name} --serve +{unserved[0]}` serves one"
            )
        if before_commit is not None:
            before_commit(conn, info)
    if placed is not None and placed < len(features):
        notes.append(f"{len(features) - placed} features lie outside every grid of {grid_layer!r}")
    return LoadResult(layer=info, placed_in_grid=placed, notes=notes, seconds=time.perf_counter() - t0)


#: the columns that identify a feature, which the search (layers.search) matches exactly and by prefix
ID_COLUMNS = ("id", "parcel_id", "street_code", "community_code", "grid_code", "global_id")


def _build_table(
    cur: psycopg.Cursor,
    name: str,
    fresh: sql.Identifier,
    stage: sql.Identifier,
    matches: sql.Identifier | None,
    types: dict[str, str],
    extra: tuple[str, ...],
    geometry_type: str,
) -> None:
    """The new layer table ``fresh`` (in the staging schema) from the staging
    rows and their grid matches, with its primary key, GiST index and
    statistics. CREATE TABLE AS, then the keys: cheaper than filling a table
    whose indexes already exist. Key and index are named ``<name>__pkey`` and
    ``<name>__geom``: layer names cannot hold ``__``, so these never collide
    with another layer's table."""
    values = [
        sql.SQL("s.fid"),
        *(_from_stage(c, t) for c, t in types.items()),
        *(sql.SQL("m.{}::text").format(sql.Identifier(c)) for c in extra),
        sql.SQL("s.geom::geometry({}, 4326) AS geom").format(sql.SQL(geometry_type)),
    ]
    join = sql.SQL(" LEFT JOIN {} m ON m.fid = s.fid").format(matches) if matches else sql.SQL("")
    cur.execute(
        sql.SQL("CREATE TABLE {} AS SELECT {} FROM {} s{}").format(fresh, sql.SQL(", ").join(values), stage, join)
    )
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (fid), ALTER COLUMN geom SET NOT NULL").format(
            fresh, sql.Identifier(f"{name}__pkey")
        )
    )
    cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(sql.Identifier(f"{name}__geom"), fresh))
    for column in (c for c in ID_COLUMNS if types.get(c) == "text"):
        # the search's exact and prefix matches (= and LIKE 'x%': the database's collation is C) become index
        # scans: under a millisecond instead of 55-85 ms for a scan of 500,000 components; built in < 1 s
        cur.execute(
            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{name}__{column}"[:63]), fresh, sql.Identifier(column)
            )
        )
    cur.execute(sql.SQL("ANALYZE {}").format(fresh))


#: the grants a layer's new table gets: those of the table it replaces, and those
#: the layers schema gives the tables its owner makes there (ALTER DEFAULT
#: PRIVILEGES ... IN SCHEMA layers), which a table made in the staging schema
#: and moved in does not get by itself. Per grantee (NULL: PUBLIC), the
#: privileges and whether they may be granted on.
_GRANTS = """
SELECT r.rolname, string_agg(DISTINCT a.privilege_type, ', '), a.is_grantable
FROM (
    SELECT (aclexplode(c.relacl)).* FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relname = %(name)s AND c.relacl IS NOT NULL
    UNION ALL
    SELECT (aclexplode(d.defaclacl)).* FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
    WHERE n.nspname = %(schema)s AND d.defaclobjtype = 'r'
      AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
GROUP BY r.rolname, a.is_grantable
"""
_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}


def _swap(cur: psycopg.Cursor, name: str, fresh_name: str) -> None:
    """Replace ``layers.<name>`` by the staging table ``fresh_name`` (inside the
    caller's transaction), the grants of the one carried over to the other."""
    grants = cur.execute(_GRANTS, {"schema": LAYER_SCHEMA, "name": name}).fetchall()
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(LAYER_SCHEMA, name)))
    cur.execute(
        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
            sql.Identifier(STAGING_SCHEMA, fresh_name), sql.Identifier(LAYER_SCHEMA)
        )
    )
    cur.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(LAYER_SCHEMA, fresh_name), sql.Identifier(name))
    )
    for grantee, privileges, grantable in grants:
        known = [p for p in privileges.split(", ") if p in _PRIVILEGES]  # keywords, composed as SQL
        if not known:
            continue
        cur.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(", ".join(known)),
                sql.Identifier(LAYER_SCHEMA, name),
                sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )
