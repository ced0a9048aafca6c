"""Reading the land-supervision results: the parcel list (filters, box,
paging), one parcel with its figures, findings, history and changes, and
statistics per street, community or grid.

Each function returns ``(query, params)`` for a psycopg cursor, sync or
async; the parcel's JSON is built in PostgreSQL, in this shape:

``parcel_id``, ``parcels_layer``, ``use``, ``street``, ``community``, ``grid``,
``area_m2``, ``footprint_area`` (m2), ``floor_area`` (m2), ``far``,
``coverage`` (0-1), ``max_height`` (m), ``building_count``, ``limits``
(``approved_far``, ``coverage``, ``height_limit``), ``dates``
(``approval_date``, ``start_deadline``, ``completion_deadline``), ``status``,
``verdict`` (合规 / 预警 / 违规), ``changed``, ``checked_at``, ``centre``
[lon, lat], ``bbox``; in the detail also ``geometry`` (GeoJSON),
``buildings`` (layer, fid, id, name, height, floors, inside_m2, outside_m2,
home, geometry), ``findings`` (id, kind, title, severity, state, state_by, state_at,
note, opened_at, closed_at, evidence, history [event, state, actor, at,
note]) and ``changes`` (kind, layer, id, name, before, after, epoch_from,
epoch_to).
"""

from __future__ import annotations

from dataclasses import dataclass

from cim.errors import InputError
from layers.land.rules import KINDS, Verdict
from layers.land.schema import SCHEMA

LEVELS = {"street": "street", "community": "community", "grid": "grid"}
MAX_LIMIT = 10_000

_TITLES = "jsonb_build_object(" + ", ".join(f"'{k}', '{title}'" for k, (_, title) in KINDS.items()) + ")"

_SUMMARY = f"""jsonb_build_object(
    'parcel_id', p.parcel_id, 'parcels_layer', p.parcels_layer, 'use', p.use,
    'street', p.street, 'community', p.community, 'grid', p.grid,
    'area_m2', round(p.area_m2::numeric, 2), 'footprint_area', round(p.footprint_area::numeric, 2),
    'floor_area', round(p.floor_area::numeric, 2), 'far', round(p.far::numeric, 3),
    'coverage', round(p.coverage::numeric, 4), 'max_height', round(p.max_height::numeric, 2),
    'building_count', p.building_count,
    'limits', jsonb_build_object('approved_far', p.approved_far, 'coverage', p.coverage_limit,
                                 'height_limit', p.height_limit),
    'dates', jsonb_build_object('approval_date', p.approval_date, 'start_deadline', p.start_deadline,
                                'completion_deadline', p.completion_deadline),
    'status', p.status, 'verdict', p.verdict, 'changed', p.changed, 'checked_at', p.checked_at,
    'centre', jsonb_build_array(round(ST_X(ST_PointOnSurface(p.geom))::numeric, 7),
                                round(ST_Y(ST_PointOnSurface(p.geom))::numeric, 7)),
    'bbox', jsonb_build_array(round(ST_XMin(p.geom)::numeric, 7), round(ST_YMin(p.geom)::numeric, 7),
                              round(ST_XMax(p.geom)::numeric, 7), round(ST_YMax(p.geom)::numeric, 7)),
    'findings', coalesce((SELECT jsonb_agg(DISTINCT d.kind) FROM {SCHEMA}.findings d
                          WHERE d.parcels_layer = p.parcels_layer AND d.parcel_id = p.parcel_id
                            AND d.closed_at IS NULL AND d.state <> '误报'), '[]'::jsonb))"""


@dataclass(frozen=True)
class ParcelFilter:
    layer: str
    verdict: str | None = None
    finding: str | None = None
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    limit: int = 100
    offset: int = 0

    def checked(self) -> ParcelFilter:
        if self.verdict is not None and self.verdict not in {v.value for v in Verdict}:
            names = {v.name: v.value for v in Verdict}
            if self.verdict not in names:
                raise InputError("verdict", f"{self.verdict!r} is not a verdict", hint="合规, 预警 or 违规")
            return ParcelFilter(**{**self.__dict__, "verdict": names[self.verdict]}).checked()
        if self.finding is not None and self.finding not in KINDS:
            raise InputError("finding", f"{self.finding!r} is not a finding kind", hint=", ".join(KINDS))
        if not 0 <= self.limit <= MAX_LIMIT or self.offset < 0:
            raise InputError("limit", f"limit is 0 to {MAX_LIMIT:,} and offset not negative")
        return self


def _where(f: ParcelFilter) -> tuple[str, dict]:
    clauses = ["p.parcels_layer = %(layer)s"]
    params: dict = {"layer": f.layer}
    for name in ("verdict", "street", "community", "grid"):
        value = getattr(f, name)
        if value is not None:
            clauses.append(f"p.{name} = %({name})s")
            params[name] = value
    if f.finding is not None:
        clauses.append(
            f"""EXISTS (SELECT 1 FROM {SCHEMA}.findings d WHERE d.parcels_layer = p.parcels_layer
                AND d.parcel_id = p.parcel_id AND d.kind = %(finding)s AND d.closed_at IS NULL AND d.state <> '误报')"""
        )
        params["finding"] = f.finding
    if f.bbox is not None:
        clauses.append("p.geom && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)")
        params.update(zip(("w", "s", "e", "n"), f.bbox))
    return " AND ".join(clauses), params


def parcels_query(f: ParcelFilter) -> tuple[str, dict]:
    """One row, one column: {numberMatched, numberReturned, parcels: [summary...]}."""
    where, params = _where(f.checked())
    params.update(limit=f.limit, offset=f.offset)
    return (
        f"""WITH page AS (SELECT p.* FROM {SCHEMA}.parcels p WHERE {where}
                          ORDER BY p.parcel_id LIMIT %(limit)s OFFSET %(offset)s)
            SELECT jsonb_build_object(
              'parcels_layer', %(layer)s::text,
              'numberMatched', (SELECT count(*) FROM {SCHEMA}.parcels p WHERE {where}),
              'numberReturned', (SELECT count(*) FROM page),
              'parcels', coalesce((SELECT jsonb_agg({_SUMMARY} ORDER BY p.parcel_id) FROM page p), '[]'::jsonb)
            )::text""",
        params,
    )


def parcels_geojson_query(f: ParcelFilter) -> tuple[str, dict]:
    """One row, one column: a FeatureCollection of the parcels (their summary as properties)."""
    where, params = _where(f.checked())
    params.update(limit=f.limit, offset=f.offset)
    return (
        f"""SELECT jsonb_build_object('type', 'FeatureCollection', 'features', coalesce(jsonb_agg(
                 jsonb_build_object('type', 'Feature', 'id', x.parcel_id,
                                    'geometry', ST_AsGeoJSON(x.geom, 7)::jsonb, 'properties', x.summary)
                 ORDER BY x.parcel_id), '[]'::jsonb))::text
            FROM (SELECT p.parcel_id, p.geom, {_SUMMARY} AS summary FROM {SCHEMA}.parcels p WHERE {where}
                  ORDER BY p.parcel_id LIMIT %(limit)s OFFSET %(offset)s) x""",
        params,
    )


def parcel_query(layer: str, parcel_id: str) -> tuple[str, dict]:
    """One row, one column: the parcel's JSON in full (no row: no such parcel)."""
    history = f"""coalesce((SELECT jsonb_agg(jsonb_build_object('event', h.event, 'state', h.state,
                     'actor', h.actor, 'at', h.at, 'note', h.note) ORDER BY h.id)
                   FROM {SCHEMA}.finding_history h WHERE h.finding_id = d.id), '[]'::jsonb)"""
    return (
        f"""SELECT ({_SUMMARY} || jsonb_build_object(
              'geometry', ST_AsGeoJSON(p.geom, 7)::jsonb,
              'buildings', coalesce((SELECT jsonb_agg(jsonb_build_object('layer', b.layer, 'fid', b.fid, 'id', b.key,
                   'name', b.name, 'height', round(b.height::numeric, 2), 'floors', b.floors,
                   'inside_m2', round(b.inside_m2::numeric, 2), 'outside_m2', round(b.outside_m2::numeric, 2),
                   'home', b.home, 'geometry', ST_AsGeoJSON(b.geom, 7)::jsonb) ORDER BY b.inside_m2 DESC)
                 FROM {SCHEMA}.parcel_buildings b
                 WHERE b.parcels_layer = p.parcels_layer AND b.parcel_id = p.parcel_id), '[]'::jsonb),
              'findings', coalesce((SELECT jsonb_agg(jsonb_build_object('id', d.id, 'kind', d.kind,
                   'title', {_TITLES} ->> d.kind, 'severity', d.severity, 'state', d.state, 'state_by', d.state_by,
                   'state_at', d.state_at, 'note', d.note, 'opened_at', d.opened_at, 'closed_at', d.closed_at,
                   'evidence', d.evidence, 'history', {history}) ORDER BY d.closed_at NULLS FIRST, d.kind)
                 FROM {SCHEMA}.findings d
                 WHERE d.parcels_layer = p.parcels_layer AND d.parcel_id = p.parcel_id), '[]'::jsonb),
              'changes', coalesce((SELECT jsonb_agg(jsonb_build_object('kind', c.kind, 'layer', c.layer, 'id', c.key,
                   'name', c.name, 'before', c.before, 'after', c.after, 'epoch_from', c.epoch_from,
                   'epoch_to', c.epoch_to) ORDER BY c.kind, c.key)
                 FROM {SCHEMA}.changes c
                 WHERE c.parcels_layer = p.parcels_layer AND c.parcel_id = p.parcel_id), '[]'::jsonb)
            ))::text
            FROM {SCHEMA}.parcels p WHERE p.parcels_layer = %(layer)s AND p.parcel_id = %(pid)s""",
        {"layer": layer, "pid": parcel_id},
    )


def unapproved_query(layer: str, limit: int = 1000) -> tuple[str, dict]:
    """Rows: the open unapproved-building findings of a check (JSON objects)."""
    return (
        f"""SELECT jsonb_build_object('id', d.id, 'kind', d.kind, 'state', d.state, 'street', d.street,
                 'community', d.community, 'grid', d.grid, 'evidence', d.evidence,
                 'point', jsonb_build_array(ST_X(d.geom), ST_Y(d.geom)))::text
            FROM {SCHEMA}.findings d
            WHERE d.parcels_layer = %(layer)s AND d.kind = 'unapproved_building' AND d.closed_at IS NULL
            ORDER BY d.id LIMIT %(limit)s""",
        {"layer": layer, "limit": limit},
    )


def stats_query(layer: str, level: str) -> tuple[str, dict]:
    """Rows (name, parcels, 合规, 预警, 违规, open findings by kind as JSON) per street, community or grid."""
    column = LEVELS.get(level)
    if column is None:
        raise InputError("level", f"{level!r} is not a level", hint="street, community or grid")
    return (
        f"""SELECT coalesce(p.{column}, '(未落格)'), count(*),
                   count(*) FILTER (WHERE p.verdict = '合规'), count(*) FILTER (WHERE p.verdict = '预警'),
                   count(*) FILTER (WHERE p.verdict = '违规'),
                   coalesce((SELECT jsonb_object_agg(k.kind, k.n) FROM (
                       SELECT d.kind, count(*) AS n FROM {SCHEMA}.findings d
                       WHERE d.parcels_layer = %(layer)s AND d.closed_at IS NULL AND d.state <> '误报'
                         AND d.{column} IS NOT DISTINCT FROM p.{column} GROUP BY d.kind) k), '{{}}'::jsonb)
            FROM {SCHEMA}.parcels p WHERE p.parcels_layer = %(layer)s
            GROUP BY p.{column} ORDER BY 1""",
        {"layer": layer},
    )


def latest_layer_query() -> str:
    """The parcels layers checked, the latest first (rows: layer)."""
    return f"SELECT parcels_layer FROM {SCHEMA}.runs GROUP BY parcels_layer ORDER BY max(id) DESC"
