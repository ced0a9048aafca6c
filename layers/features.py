"""GeoJSON features of a layer: bounding box, time, paging, property
filters, and the CRS they are given in.

Property names are checked against the catalogue's columns (a name that is
not a column is refused); values are bound as parameters and cast to the
column's type in SQL. The FeatureCollection is built by PostgreSQL
(``json_agg``): one round trip and no Python per feature.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from psycopg import sql

from cim.bbox import BBox
from cim.crs import OUTPUT_CRS, OutputCrs
from cim.errors import InputError
from layers.catalogue import LayerInfo
from layers.sensitive import FULL, Mask, source_sql, visible_columns

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100

#: PostgreSQL types a layer's time can be in, and the column names preferred as "the" time of a feature
_TEMPORAL_TYPES = ("timestamp with time zone", "timestamptz", "timestamp without time zone", "timestamp", "date")
_TIME_NAMES = ("datetime", "ts", "time", "created_at", "date", "observed_at", "approval_date")

#: an interval's open end (``..``): None
Interval = tuple[dt.datetime | None, dt.datetime | None]


@dataclass(frozen=True)
class ItemsRequest:
    bbox: BBox | None = None  # lon/lat (already in CRS84)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    filters: dict[str, str] = field(default_factory=dict)
    datetime: Interval | None = None  # inclusive at both ends
    crs: OutputCrs = OUTPUT_CRS[0]


def temporal_column(layer: LayerInfo) -> str | None:
    """The column a ``datetime`` filter applies to: a date or timestamp column,
    one with a usual name first; None when the layer has no time."""
    temporal = [c for c, t in layer.served_columns.items() if t in _TEMPORAL_TYPES]
    return next((c for name in _TIME_NAMES for c in temporal if c == name), temporal[0] if temporal else None)


def parse_datetime(text: str | None) -> Interval | None:
    """RFC 3339 instant or interval (``a/b``, ``../b``, ``a/..``), as OGC API -
    Features takes it; a date alone is that whole day."""
    if text is None or not text.strip():
        return None

    def instant(value: str, end: bool) -> dt.datetime | None:
        value = value.strip()
        if value in ("..", ""):
            return None
        try:
            if len(value) == 10:  # a date: the whole day
                day = dt.date.fromisoformat(value)
                t = dt.datetime.combine(day, dt.time.max if end else dt.time.min)
                return t.replace(tzinfo=dt.UTC)
            t = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InputError("datetime", f"{value!r} is not an RFC 3339 date or time") from None
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)

    parts = text.split("/")
    if len(parts) == 1:  # an instant: that moment (or that whole day)
        return (instant(parts[0], False), instant(parts[0], True))
    if len(parts) != 2:
        raise InputError("datetime", f"{text!r} is not an instant or an interval start/end")
    start, end = instant(parts[0], False), instant(parts[1], True)
    if start and end and start > end:
        raise InputError("datetime", f"{text!r} ends before it starts")
    return (start, end)


def _where(layer: LayerInfo, request: ItemsRequest, mask: Mask = FULL) -> tuple[sql.Composable, dict]:
    columns = visible_columns(layer, mask)  # a hidden column is not a property: not filtered on either
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
    if request.datetime is not None:
        column = temporal_column(layer)
        if column is None or column not in columns:
            raise InputError("datetime", f"layer {layer.name!r} has no date or time to filter on")
        start, end = request.datetime
        if start is not None:
            clauses.append(sql.SQL("t.{} >= %(t0)s").format(sql.Identifier(column)))
            params["t0"] = start if layer.columns[column] != "date" else start.date()
        if end is not None:
            clauses.append(sql.SQL("t.{} <= %(t1)s").format(sql.Identifier(column)))
            params["t1"] = end if layer.columns[column] != "date" else end.date()
    for i, (column, value) in enumerate(sorted(request.filters.items())):
        if column not in columns:
            raise InputError(
                column,
                f"is not a property of layer {layer.name!r}",
                hint=f"its properties: {', '.join(columns)}",
            )
        clauses.append(
            sql.SQL("t.{} = %({})s::{}").format(
                sql.Identifier(column), sql.SQL(f"p{i}"), sql.SQL(layer.columns[column])
            )
        )
        params[f"p{i}"] = value
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
    return where, params


def _geometry(crs: OutputCrs) -> sql.Composable:
    """The GeoJSON geometry of ``f.geom`` in ``crs``, in that CRS's axis order."""
    geom: sql.Composable = (
        sql.SQL("f.geom") if crs.srid == 4326 else sql.SQL("ST_Transform(f.geom, {})").format(sql.Literal(crs.srid))
    )
    if crs.northing_first:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    return sql.SQL("ST_AsGeoJSON({}, {})::json").format(geom, sql.Literal(crs.decimals))


def _feature(crs: OutputCrs) -> sql.Composable:
    return sql.SQL(
        "json_build_object('type', 'Feature', 'id', f.fid, 'geometry', {}, "
        "'properties', to_jsonb(f.*) - 'geom' - 'fid')"
    ).format(_geometry(crs))


def items_query(
    layer: LayerInfo,
    request: ItemsRequest,
    *,
    links: list[dict] | None = None,
    next_link: dict | None = None,
    mask: Mask = FULL,
) -> tuple[sql.Composed, dict]:
    """One row, one column: the FeatureCollection as JSON text, with
    ``numberMatched``, ``numberReturned``, ``timeStamp`` and ``links``
    (``next_link`` among them only when features remain after this page).
    ``mask`` (layers.sensitive): the columns left out and the points snapped,
    before the filters apply."""
    where, params = _where(layer, request, mask)
    table = source_sql(layer, mask)
    query = sql.SQL("""
        WITH page AS (SELECT t.* FROM {table} t {where} ORDER BY t.fid LIMIT %(limit)s OFFSET %(offset)s),
             matched AS (SELECT count(*) AS n FROM {table} t {where})
        SELECT json_build_object(
            'type', 'FeatureCollection',
            'numberMatched', m.n,
            'numberReturned', (SELECT count(*) FROM page),
            'timeStamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            'links', %(links)s::jsonb || CASE WHEN m.n > %(offset)s::bigint + %(limit)s::bigint THEN %(next)s::jsonb
                                              ELSE '[]'::jsonb END,
            'features', (SELECT coalesce(json_agg({feature} ORDER BY f.fid), '[]'::json) FROM page f)
        )::text
        FROM matched m
    """).format(table=table, where=where, feature=_feature(request.crs))
    params.update(
        limit=max(0, min(request.limit, MAX_LIMIT)),
        offset=max(0, request.offset),
        links=json.dumps(links or [], ensure_ascii=False),
        next=json.dumps([next_link] if next_link else [], ensure_ascii=False),
    )
    return query, params


def item_query(
    layer: LayerInfo, fid: int, crs: OutputCrs = OUTPUT_CRS[0], *, mask: Mask = FULL
) -> tuple[sql.Composed, dict]:
    """One row, one column: the Feature ``fid`` as JSON text (no row: there is none)."""
    query = sql.SQL("SELECT {feature}::text FROM {table} f WHERE f.fid = %(fid)s").format(
        feature=_feature(crs), table=source_sql(layer, mask)
    )
    return query, {"fid": fid}
