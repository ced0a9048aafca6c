"""Element layers (BIM): a layer whose rows are model elements, with
``global_id``, ``ifc_class``, ``storey``, ``z_min`` and ``z_max`` columns.
Summaries by storey and class, and search by name or GlobalId."""

from __future__ import annotations

from psycopg import sql

from layers.catalogue import LayerInfo

ELEMENT_COLUMNS = {"global_id", "ifc_class", "storey", "z_min", "z_max"}
NO_STOREY = "(无楼层)"  # what elements outside any storey are listed under
SEARCH_LIMIT = 50


def is_element_layer(layer: LayerInfo) -> bool:
    return set(layer.columns) >= ELEMENT_COLUMNS


def _table(layer: LayerInfo) -> sql.Identifier:
    return sql.Identifier(layer.table_schema, layer.table_name)


def storeys_query(layer: LayerInfo) -> sql.Composed:
    """Rows (storey, elements, z_min, z_max), lowest storey first."""
    return sql.SQL(
        "SELECT storey, count(*), min(z_min), max(z_max) FROM {} GROUP BY storey ORDER BY min(z_min), storey"
    ).format(_table(layer))


def classes_query(layer: LayerInfo) -> sql.Composed:
    """Rows (ifc_class, elements), the commonest first."""
    return sql.SQL("SELECT ifc_class, count(*) FROM {} GROUP BY ifc_class ORDER BY count(*) DESC, ifc_class").format(
        _table(layer)
    )


def search_query(layer: LayerInfo, text: str, limit: int = SEARCH_LIMIT) -> tuple[sql.Composed, dict]:
    """Elements whose GlobalId is ``text`` or whose name contains it (any case):
    rows (fid, global_id, name, ifc_class, storey, west, south, east, north, z_min, z_max)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = sql.SQL("""
        SELECT fid, global_id, name, ifc_class, storey, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom),
               z_min, z_max
        FROM {} WHERE global_id = %(exact)s OR name ILIKE %(like)s OR ifc_class ILIKE %(like)s
        ORDER BY (global_id = %(exact)s) DESC, name NULLS LAST, fid LIMIT %(limit)s""").format(_table(layer))
    return query, {"exact": text, "like": f"%{escaped}%", "limit": min(max(limit, 1), SEARCH_LIMIT)}
