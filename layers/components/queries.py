"""Reading component layers: counts by class and area, and one component's
file (一物一档): the component, the sensors and tickets linked to it by id
(a ``component_id`` column in the layers ``sensors`` and ``tickets``) or
standing within a radius, with their live state and history where the live
hub keeps them (``live.sensor_state``, ``live.alarms``, ``live.ticket_records``)."""

from __future__ import annotations

from psycopg import sql

from layers.catalogue import LayerInfo
from layers.components.schema import SCHEMA
from layers.gridjoin import GRID_COLUMNS

#: the layers a component's file looks in (the names the live hub syncs its registries from)
SENSORS_LAYER = "sensors"
TICKETS_LAYER = "tickets"
LINK_COLUMN = "component_id"
LIVE = "live"
LEVELS = ("class", *GRID_COLUMNS)
MAX_ALARMS = 10  # per sensor, newest first
MAX_LINKED = 200  # sensors or tickets listed in one file


def layers_query() -> sql.Composed:
    """The component layers: name, tileset, classes (code -> count at import), groups."""
    return sql.SQL("SELECT name, tileset, classes, groups FROM {}.layers ORDER BY name").format(sql.Identifier(SCHEMA))


def _table(layer: LayerInfo) -> sql.Composable:
    return sql.Identifier(layer.table_schema, layer.table_name)


def counts_query(layer: LayerInfo, level: str) -> sql.Composed:
    """Rows (area or NULL, class_code, count) of ``layer``; ``level`` one of LEVELS."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {', '.join(LEVELS)}")
    area = sql.SQL("NULL::text") if level == "class" else sql.Identifier(level)
    if level != "class" and level not in layer.columns:
        area = sql.SQL("NULL::text")  # a layer imported without grid placement
    return sql.SQL("SELECT {area}, class_code, count(*) FROM {t} GROUP BY 1, 2 ORDER BY 1, 2").format(
        area=area, t=_table(layer)
    )


def component_query(layer: LayerInfo, by_fid: bool) -> sql.Composed:
    """One component by ``id`` (or ``fid``): its row as JSON (without the
    geometry), lon, lat. Parameter: ``%(key)s``."""
    key = sql.SQL("fid = %(fid)s") if by_fid else sql.SQL("id::text = %(key)s")
    return sql.SQL(
        "SELECT to_jsonb(t) - 'geom', ST_X(t.geom), ST_Y(t.geom), t.id::text FROM {} t WHERE {} LIMIT 1"
    ).format(_table(layer), key)


def _near(radius_m: float, linked: bool, nearby: bool) -> sql.Composable:
    """The WHERE of rows linked to ``%(id)s`` (if the layer links) or (if
    ``nearby``) within ``radius_m`` of ``%(lon)s, %(lat)s`` (an index box in
    degrees first, then the distance on the spheroid)."""
    point = sql.SQL("ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)")
    deg = radius_m / 100_000.0  # > radius at Futian's latitude: 1° of longitude there is ~103 km
    near = sql.SQL("(x.geom && ST_Expand({p}, {d}) AND ST_DWithin(x.geom::geography, {p}::geography, {r}))").format(
        p=point, d=sql.Literal(deg), r=sql.Literal(radius_m)
    )
    link = sql.SQL("x.{} = %(id)s").format(sql.Identifier(LINK_COLUMN))
    if linked and nearby:
        return sql.SQL("({} OR {})").format(link, near)
    return link if linked else near if nearby else sql.SQL("false")


def _link(layer: LayerInfo) -> sql.Composable:
    if LINK_COLUMN not in layer.columns:
        return sql.SQL("false")
    return sql.SQL("coalesce(x.{} = %(id)s, false)").format(sql.Identifier(LINK_COLUMN))


def _order(layer: LayerInfo) -> sql.Composable:
    """Linked rows first (where the layer links: a constant cannot be ordered by)."""
    return sql.SQL("{} DESC, ").format(_link(layer)) if LINK_COLUMN in layer.columns else sql.SQL("")


_DISTANCE = sql.SQL(
    "round(ST_Distance(x.geom::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography)::numeric, 1)"
)


def sensors_query(layer: LayerInfo, radius_m: float, live: bool) -> sql.Composed:
    """The sensors of one file, as JSON rows: id, category, category_name,
    distance_m, linked, state (live), alarms (live, newest first); linked first, then nearest."""
    name = sql.SQL("x.category_name") if "category_name" in layer.columns else sql.SQL("NULL")
    state: sql.Composable = sql.SQL("NULL::jsonb")
    alarms: sql.Composable = sql.SQL("'[]'::jsonb")
    join: sql.Composable = sql.SQL("")
    if live:
        state = sql.SQL(
            "CASE WHEN st.sensor_id IS NULL THEN NULL ELSE "
            "jsonb_build_object('value', st.value, 'status', st.status, 'ts', st.ts) END"
        )
        join = sql.SQL("LEFT JOIN {}.sensor_state st ON st.sensor_id = x.id::text").format(sql.Identifier(LIVE))
        alarms = sql.SQL(
            "coalesce((SELECT jsonb_agg(a ORDER BY a.raised_at DESC) FROM (SELECT kind, severity, message, "
            "raised_at, cleared_at FROM {}.alarms WHERE sensor_id = x.id::text ORDER BY raised_at DESC "
            "LIMIT {}) a), '[]'::jsonb)"
        ).format(sql.Identifier(LIVE), sql.Literal(MAX_ALARMS))
    return sql.SQL(
        "SELECT jsonb_build_object('id', x.id::text, 'category', x.category, 'category_name', {name}, "
        "'distance_m', {distance}, 'linked', {link}, 'state', {state}, 'alarms', {alarms}) "
        "FROM {t} x {join} WHERE {where} ORDER BY {order}{distance} LIMIT {limit}"
    ).format(
        name=name,
        distance=_DISTANCE,
        link=_link(layer),
        order=_order(layer),
        state=state,
        alarms=alarms,
        t=_table(layer),
        join=join,
        where=_near(radius_m, LINK_COLUMN in layer.columns, nearby=True),
        limit=sql.Literal(MAX_LINKED),
    )


_STAGES = ("created_at", "acknowledged_at", "contacted_at", "resolved_at")


def tickets_query(layer: LayerInfo, radius_m: float, live: bool, nearby: bool) -> sql.Composed:
    """The tickets of one file, as JSON rows: id, category, channel, status,
    department, distance_m, linked, history (the stages reached, from the live
    record where the hub has a newer one). ``nearby``: also the tickets within
    the radius that are not linked (only for roles that may see where tickets are)."""
    cols = layer.columns
    live_join: sql.Composable = sql.SQL("")
    src: dict[str, sql.Composable] = {
        c: sql.SQL("x.{}").format(sql.Identifier(c)) if c in cols else sql.SQL("NULL") for c in ("status", *_STAGES)
    }
    if live:
        live_join = sql.SQL("LEFT JOIN {}.ticket_records r ON r.id = x.id::text").format(sql.Identifier(LIVE))
        src = {c: sql.SQL("coalesce(r.{}, {})").format(sql.Identifier(c), v) for c, v in src.items()}
    history = sql.SQL(", ").join(
        sql.SQL("CASE WHEN {v} IS NULL THEN NULL ELSE jsonb_build_object('stage', {s}, 'at', {v}) END").format(
            v=src[c], s=sql.Literal(c.removesuffix("_at"))
        )
        for c in _STAGES
    )
    text = {
        c: sql.SQL("x.{}").format(sql.Identifier(c)) if c in cols else sql.SQL("NULL")
        for c in ("category", "channel", "department")
    }
    return sql.SQL(
        "SELECT jsonb_build_object('id', x.id::text, 'category', {category}, 'channel', {channel}, "
        "'status', {status}, 'department', {department}, 'distance_m', {distance}, 'linked', {link}, "
        "'history', jsonb_path_query_array(jsonb_build_array({history}), '$[*] ? (@ != null)')) "
        "FROM {t} x {join} WHERE {where} ORDER BY {order}{distance} LIMIT {limit}"
    ).format(
        category=text["category"],
        channel=text["channel"],
        department=text["department"],
        status=src["status"],
        distance=_DISTANCE,
        link=_link(layer),
        order=_order(layer),
        history=history,
        t=_table(layer),
        join=live_join,
        where=_near(radius_m, LINK_COLUMN in cols, nearby=nearby),
        limit=sql.Literal(MAX_LINKED),
    )


def live_tables_query() -> str:
    """Whether the live hub's tables are there (one boolean)."""
    return (
        f"SELECT to_regclass('{LIVE}.sensor_state') IS NOT NULL AND to_regclass('{LIVE}.alarms') IS NOT NULL "
        f"AND to_regclass('{LIVE}.ticket_records') IS NOT NULL"
    )
