"""The project's database schema: where layers, the catalogue and staging live.

- ``layers.<name>``: one table per layer (``fid`` primary key, ``geom`` in
  EPSG:4326 with a GiST index); opens in QGIS as it is.
- ``cim.layers``: the layer catalogue.
- ``cim_staging``: unlogged tables that live for one import's transaction.
"""

from __future__ import annotations

import re

import psycopg

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
    skipped_count   integer NOT NULL DEFAULT 0
);
"""


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
