"""GeoJSON features of a layer: bounding box, paging and property filters.

Property names are checked against the catalogue's columns (a name that is
not a column is refused); values are bound as parameters and cast to the
column's type in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from cim.bbox import BBox
from cim.errors import InputError
from layers.catalogue import LayerInfo

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class ItemsRequest:
    bbox: BBox | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    filters: dict[str, str] = field(default_factory=dict)


def _where(layer: LayerInfo, request: ItemsRequest) -> tuple[sql.Composable, dict]:
    clauses: list[sql.Composable] = []
    params: dict = {}
    if request.bbox:
        clauses.append(
            sql.SQL(
                "t.geom && ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, 4326) "
                "AND ST_Intersects(t.geom, ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, 4326))"
            )
        )
        params.update({f"b{i}": v for i, v in enumerate(request.bbox)})
    for i, (column, value) in enumerate(sorted(request.filters.items())):
        if column not in layer.columns:
            raise InputError(
                column, f"is not a property of layer {layer.name!r}", hint=f"its properties: {', '.join(layer.columns)}"
            )
        clauses.append(
            sql.SQL("t.{} = %({})s::{}").format(
                sql.Identifier(column), sql.SQL(f"p{i}"), sql.SQL(layer.columns[column])
            )
        )
        params[f"p{i}"] = value
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
    return where, params


def items_query(layer: LayerInfo, request: ItemsRequest) -> tuple[sql.Composed, dict]:
    """One row, one column: the FeatureCollection as JSON text, with
    ``numberMatched`` and ``numberReturned``."""
    where, params = _where(layer, request)
    table = sql.Identifier(layer.table_schema, layer.table_name)
    query = sql.SQL("""
        SELECT json_build_object(
            'type', 'FeatureCollection',
            'numberMatched', (SELECT count(*) FROM {table} t {where}),
            'numberReturned', count(f.*),
            'features', coalesce(json_agg(json_build_object(
                'type', 'Feature', 'id', f.fid,
                'geometry', ST_AsGeoJSON(f.geom, 7)::json,
                'properties', to_jsonb(f.*) - 'geom' - 'fid') ORDER BY f.fid), '[]'::json)
        )::text
        FROM (SELECT t.* FROM {table} t {where} ORDER BY t.fid LIMIT %(limit)s OFFSET %(offset)s) f
    """).format(table=table, where=where)
    params.update(limit=max(0, min(request.limit, MAX_LIMIT)), offset=max(0, request.offset))
    return query, params
