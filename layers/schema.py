"""The project's database schema: where layers, the catalogue and staging live.

- ``layers.<name>``: one table per layer (``fid`` primary key, ``geom`` in
  EPSG:4326 with a GiST index); opens in QGIS as it is.
- ``cim.layers``: the layer catalogue.
- ``cim.tileset_versions``: the tileset version each layer's last import
  committed (written in the layer's transaction: see :mod:`tiles.output`).
- ``cim_staging``: unlogged tables that live for one import's transaction.

Tables and columns carry comments in Chinese (the layer's title, what a
column holds and its unit): QGIS shows them as the layer's and the fields'
descriptions, ``psql``'s ``\\d+`` as the description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import psycopg
from psycopg import sql

from cim.errors import InputError

LAYER_SCHEMA = "layers"
META_SCHEMA = "cim"
STAGING_SCHEMA = "cim_staging"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_RESERVED_PART = "__"  # kept for the project's own names (a layer's key and index: <name>__pkey)

_DDL = f"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS {LAYER_SCHEMA};
CREATE SCHEMA IF NOT EXISTS {META_SCHEMA};
CREATE SCHEMA IF NOT EXISTS {STAGING_SCHEMA};
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.layers (
    name            text PRIMARY KEY,
    title           text NOT NULL,
    table_schema    text NOT NULL,
    table_name      text NOT NULL,
    geometry_type   text NOT NULL,
    srid            integer NOT NULL,
    feature_count   bigint NOT NULL,
    bbox            double precision[] NOT NULL,
    columns         jsonb NOT NULL,
    source          text NOT NULL,
    source_crs      text,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    repaired_count  integer NOT NULL DEFAULT 0,
    skipped_count   integer NOT NULL DEFAULT 0,
    served          jsonb,
    sensitive       jsonb NOT NULL DEFAULT '[]'
);
-- catalogues made before the column policy existed
ALTER TABLE {META_SCHEMA}.layers ADD COLUMN IF NOT EXISTS served jsonb;
ALTER TABLE {META_SCHEMA}.layers ADD COLUMN IF NOT EXISTS sensitive jsonb NOT NULL DEFAULT '[]';
CREATE TABLE IF NOT EXISTS {META_SCHEMA}.tileset_versions (
    name            text PRIMARY KEY REFERENCES {META_SCHEMA}.layers (name) ON DELETE CASCADE,
    folder          text NOT NULL,
    layer_version   integer NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
"""


#: the catalogue's comments: the table's, then its columns'
CATALOGUE_COMMENTS = (
    "图层目录: 每个图层一行 (名称、标题、几何类型、要素数、范围、来源、版本)",
    {
        "name": "图层名 (即表名 layers.<name>)",
        "title": "标题",
        "table_schema": "表所在的模式",
        "table_name": "表名",
        "geometry_type": "几何类型",
        "srid": "坐标系 (EPSG 代码)",
        "feature_count": "要素数",
        "bbox": "范围 (西, 南, 东, 北; WGS 84 经纬度)",
        "columns": "属性列及其类型 (JSON)",
        "source": "来源文件",
        "source_crs": "来源坐标系",
        "imported_at": "导入时间",
        "version": "版本 (每次导入加一)",
        "repaired_count": "修复的几何数",
        "skipped_count": "跳过的要素数",
        "served": "对外提供的属性列 (白名单; 空: 全部)",
        "sensitive": "标为敏感的属性列 (仅运行值守与管理员可见)",
    },
)

#: the tileset versions' comments
TILESET_VERSION_COMMENTS = (
    "瓦片集版本: 每个图层最近一次导入提交的三维瓦片集版本 (与图层在同一事务中写入)",
    {
        "name": "瓦片集名 (即图层名)",
        "folder": "版本目录 (tilesets/.versions/ 下)",
        "layer_version": "对应的图层版本",
        "recorded_at": "记录时间",
    },
)


def validate_layer_name(name: str) -> str:
    """Layer names become table names: lower-case letters, digits, underscores."""
    if not _NAME.match(name or "") or _RESERVED_PART in name or name.endswith("_"):
        raise InputError(
            "--name",
            f"{name!r} is not a usable layer name",
            hint="use lower-case letters, digits and single _ (start with a letter, at most 48)",
        )
    return name


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create what is missing. Serialised by an advisory lock so that two
    first imports at once do not race on CREATE ... IF NOT EXISTS."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cim.schema'))")
        conn.execute(_DDL)
        set_comments(conn, META_SCHEMA, "layers", *CATALOGUE_COMMENTS)
        set_comments(conn, META_SCHEMA, "tileset_versions", *TILESET_VERSION_COMMENTS)


def set_comments(
    conn: psycopg.Connection, schema: str, table: str, title: str, columns: Mapping[str, str] | None = None
) -> None:
    """``COMMENT ON`` the table and those of ``columns`` it has, where they
    differ from the comments there (inside the caller's transaction, if any).
    A table another role owns is left as it is: on a server of
    ``CIM_DATABASE_URL``, its administrator may have made the tables."""
    columns = columns or {}
    found = conn.execute(
        """SELECT pg_has_role(c.relowner, 'USAGE'), obj_description(c.oid, 'pg_class'),
                  coalesce(jsonb_object_agg(a.attname, col_description(c.oid, a.attnum))
                           FILTER (WHERE a.attname IS NOT NULL), '{}')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname = %s AND c.relname = %s
           GROUP BY c.oid, c.relowner""",
        (schema, table),
    ).fetchone()
    if found is None or not found[0]:  # no such table, or not ours
        return
    _, comment, column_comments = found
    target = sql.Identifier(schema, table)
    if comment != title:
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(target, sql.Literal(title)))
    for column, text in columns.items():
        if column in column_comments and column_comments[column] != text:
            conn.execute(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(target, sql.Identifier(column), sql.Literal(text))
            )


def create_schema_once(conn: psycopg.Connection, schema: str, last: str, ddl: str, comments: Mapping[str, str]) -> None:
    """Run ``ddl`` (``CREATE ... IF NOT EXISTS``) and comment its tables, unless
    ``schema.last`` (the object it makes last) is there already; serialised by
    an advisory lock, so two first users at once do not race."""
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{last}",)).fetchone()
    if found and found[0]:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cim.{schema}.schema",))
        conn.execute(ddl)
        for table, title in comments.items():
            set_comments(conn, schema, table, title)
