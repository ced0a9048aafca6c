"""Where components keep what is theirs (schema ``components``); the points
themselves are an ordinary layer (``layers.<name>``).

- ``components.layers``: one row per component layer: its tileset and the classes it held at import.
- ``components.classes``: the user classes (codes beyond the built-in catalogue, cim.components.catalogue),
  added by ``cim components classes add`` or by a model file named after a new code.
"""

from __future__ import annotations

import psycopg

from layers.schema import create_schema_once

SCHEMA = "components"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.layers (
    name         text PRIMARY KEY,
    tileset      text NOT NULL,
    classes      jsonb NOT NULL DEFAULT '{{}}',
    groups       jsonb NOT NULL DEFAULT '[]',
    imported_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.classes (
    code        text PRIMARY KEY CHECK (code ~ '^[0-9]{{4}}$'),
    name_zh     text NOT NULL CHECK (length(name_zh) BETWEEN 1 AND 64),
    name_en     text NOT NULL CHECK (length(name_en) BETWEEN 1 AND 64),
    size        double precision[] NOT NULL,
    colour      integer[] NOT NULL,
    department  text NOT NULL DEFAULT '',
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);
"""

_COMMENTS = {
    "layers": "城市部件: 部件图层 (三维瓦片与导入时的类别)",
    "classes": "城市部件: 用户自定义的部件类别 (内置类别见 GB/T 30428.2)",
}


def ensure_components_schema(conn: psycopg.Connection) -> None:
    """Create what is missing."""
    create_schema_once(conn, SCHEMA, "classes", _DDL, _COMMENTS)
