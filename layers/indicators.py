"""Indicators per area for the big screen (一屏统览): one topic's figures for
every district, street, community or grid, with the area's outline.

Topics and where their figures come from (counts only: no ticket's place,
no person's data ever leaves here):

- ``events`` (事件): the live tickets (``live.ticket_records``): open,
  overdue (the 10-30-24 rule, as ``/live/counts``), closed; by channel and
  by stage (acknowledge, contact, resolve, closed).
- ``sensing`` (感知): the layer ``sensors`` with the live state
  (``live.sensor_state``, else the layer's own ``status``) and the open
  alarms (``live.alarms``): sensors, online, online rate, in alarm, offline;
  by category.
- ``video`` (视频): the layer ``cameras``: cameras, online (``status``).
- ``components`` (部件): every component layer (``components.layers``), by 大类.
- ``land`` (土地): the latest land check (``land.parcels``) of the parcels
  layer checked last: parcels and their verdicts.
- ``buildings`` (建筑): the layer ``buildings``: count, floor area (footprint
  on a local metric CRS × floors), the tallest.

Objects are counted by the columns that name their area (``street``,
``community``, ``grid``: what 进格入块 wrote at import, or the live hub for a
live ticket): one GROUP BY per topic, no spatial join. A community is keyed by
its street and its name (names may repeat across streets), a grid by its code.
The areas themselves come from the area layers (``futian_boundary``,
``streets``, ``communities`` and the grid layer), so an area without objects
is listed with 0s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from cim.components.catalogue import MAJORS
from cim.errors import InputError, NotFoundError
from layers.catalogue import LayerInfo
from layers.components.schema import SCHEMA as COMPONENTS_SCHEMA
from layers.land.checks import local_srid
from layers.land.rules import Thresholds
from layers.land.schema import SCHEMA as LAND_SCHEMA

LIVE_SCHEMA = "live"  # the live hub's tables (cim.live.store: not importable from here)
LEVELS = ("district", "street", "community", "grid")
#: the parent level whose name or code ``within`` gives, per level
PARENT_LEVEL = {"community": "street", "grid": "community"}
DISTRICT_LAYER = "futian_boundary"
STREETS_LAYER = "streets"
COMMUNITIES_LAYER = "communities"
SENSORS_LAYER = "sensors"
CAMERAS_LAYER = "cameras"
TICKETS_LAYER = "tickets"
BUILDINGS_LAYER = "buildings"
MAX_WITHIN = 100
#: simplification tolerance of the outlines, in degrees (1e-5 degree is about 1.1 m north-south, 1.0 m east-west)
TOLERANCE_DEG = {"district": 5e-5, "street": 3e-5, "community": 2e-5, "grid": 1e-5}
DECIMALS = 6  # about 0.1 m
_SEP = "\x1f"  # between a community's street and its name, in a community's key


@dataclass(frozen=True)
class Label:
    zh: str
    en: str
    unit_zh: str
    unit_en: str

    def to_json(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en, "unit_zh": self.unit_zh, "unit_en": self.unit_en}


@dataclass(frozen=True)
class Topic:
    name: str
    measure: str  # the figure the map colours by
    figures: tuple[str, ...]
    breakdowns: tuple[str, ...] = ()
    #: figures whose total is the largest of the areas' (the others are summed; rates recomputed)
    maxima: frozenset[str] = frozenset()


TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic("events", "overdue_tickets", ("open_tickets", "overdue_tickets", "closed"), ("by_channel", "by_stage")),
        Topic("sensing", "alarms", ("sensors", "online", "online_rate", "alarms", "offline"), ("by_category",)),
        Topic("video", "cameras", ("cameras", "online")),
        Topic("components", "components", ("components",), ("by_major",)),
        Topic("land", "violation", ("parcels", "compliant", "warning", "violation")),
        Topic("buildings", "buildings", ("buildings", "floor_area_m2", "tallest_m"), maxima=frozenset({"tallest_m"})),
    )
}

LABELS: dict[str, Label] = {
    "open_tickets": Label("未办结工单", "Open tickets", "件", "tickets"),
    "overdue_tickets": Label("超时工单", "Overdue tickets", "件", "tickets"),
    "closed": Label("已办结工单", "Closed tickets", "件", "tickets"),
    "by_channel": Label("按来源渠道", "By channel", "件", "tickets"),
    "by_stage": Label("按办理环节", "By stage", "件", "tickets"),
    "sensors": Label("传感器", "Sensors", "个", "sensors"),
    "online": Label("在线", "Online", "个", "devices"),
    "online_rate": Label("在线率", "Online rate", "%", "%"),
    "alarms": Label("告警中", "In alarm", "个", "sensors"),
    "offline": Label("离线", "Offline", "个", "sensors"),
    "by_category": Label("按类别", "By category", "个", "sensors"),
    "cameras": Label("视频监控", "Cameras", "路", "cameras"),
    "components": Label("城市部件", "City components", "个", "components"),
    "by_major": Label("按大类", "By major class", "个", "components"),
    "parcels": Label("宗地", "Parcels", "宗", "parcels"),
    "compliant": Label("合规", "Compliant", "宗", "parcels"),
    "warning": Label("预警", "Warning", "宗", "parcels"),
    "violation": Label("违规", "Violation", "宗", "parcels"),
    "buildings": Label("建筑", "Buildings", "栋", "buildings"),
    "floor_area_m2": Label("建筑面积", "Floor area", "m²", "m²"),
    "tallest_m": Label("最高建筑", "Tallest building", "m", "m"),
}


@dataclass(frozen=True)
class Deadlines:
    """The 10-30-24 limits (the live hub's ``SlaRule``): a ticket is overdue
    when the step it waits for is past its limit from its creation."""

    acknowledge: dt.timedelta = dt.timedelta(minutes=10)
    contact: dt.timedelta = dt.timedelta(minutes=30)
    resolve: dt.timedelta = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Ask:
    """One request: checked by :meth:`checked` (4xx errors with messages)."""

    topic: str
    level: str
    within: str | None = None

    def checked(self) -> Ask:
        if self.topic not in TOPICS:
            raise InputError("topic", f"{self.topic[:40]!r} is not a topic", hint=", ".join(TOPICS))
        if self.level not in LEVELS:
            raise InputError("level", f"{self.level[:40]!r} is not a level", hint=", ".join(LEVELS))
        within = self.within.strip() if self.within is not None else None
        if within is not None and len(within) > MAX_WITHIN:
            raise InputError("within", f"at most {MAX_WITHIN} characters")
        if within and self.level not in PARENT_LEVEL:
            raise InputError(
                "within", f"level {self.level} has no parent to choose", hint="within is for community or grid"
            )
        return Ask(self.topic, self.level, within or None)


@dataclass(frozen=True)
class Area:
    key: str  # what the objects' area columns give (see :func:`object_key`)
    name: str
    code: str | None
    parent: str | None
    geometry: str | None  # GeoJSON text, as PostGIS wrote it (spliced into the answer, never parsed)
    bbox: tuple[float, float, float, float] | None
    centroid: tuple[float, float] | None
    parent_code: str | None = None  # the parent's code (within: one parent, not two of the same name)


@dataclass
class Tally:
    """Figures per area key, breakdowns per area key, and the sources that are not there."""

    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    breakdowns: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


#: the keys of the breakdowns that are codes, by name (the others are names already: channels, categories)
BREAKDOWN_NAMES: dict[str, dict[str, dict[str, str]]] = {
    "by_major": {m.code: {"zh": m.name_zh, "en": m.name_en} for m in MAJORS},
    "by_stage": {
        "acknowledge": {"zh": "待签收", "en": "To acknowledge"},
        "contact": {"zh": "待联系", "en": "To contact"},
        "resolve": {"zh": "办理中", "en": "Being resolved"},
        "closed": {"zh": "已办结", "en": "Closed"},
    },
}


@dataclass(frozen=True)
class Answer:
    ask: Ask
    areas: list[Area]
    tally: Tally

    def _head(self) -> dict[str, Any]:
        topic = TOPICS[self.ask.topic]
        return {
            "topic": topic.name,
            "level": self.ask.level,
            "within": self.ask.within,
            "measure": topic.measure,
            "labels": {name: LABELS[name].to_json() for name in (*topic.figures, *topic.breakdowns)},
            # the names of a breakdown's keys where they are codes (a 大类's, a stage's): {key: {zh, en}}
            "names": {name: BREAKDOWN_NAMES[name] for name in topic.breakdowns if name in BREAKDOWN_NAMES},
            "totals": self.totals(),
            "missing": sorted(self.tally.missing),
        }

    def _feature(self, area: Area) -> dict[str, Any]:
        """A Feature without its geometry."""
        figures = _finish(TOPICS[self.ask.topic], self.tally.figures.get(area.key, {}))
        return {
            "type": "Feature",
            "id": area.code or area.name,
            "properties": {
                "area": area.name,
                "code": area.code,
                "parent": area.parent,
                "level": self.ask.level,
                "bbox": list(area.bbox) if area.bbox else None,
                "centroid": list(area.centroid) if area.centroid else None,
                **figures,
            },
        }

    def to_json(self) -> dict[str, Any]:
        """``{topic, level, within, measure, labels, totals, missing, areas}`` (areas: a FeatureCollection)."""
        features = [
            {**self._feature(a), "geometry": json.loads(a.geometry) if a.geometry else None} for a in self.areas
        ]
        return {**self._head(), "areas": {"type": "FeatureCollection", "features": features}}

    def to_text(self) -> str:
        """:meth:`to_json` as JSON text (UTF-8 as it is), the outlines spliced in as PostGIS wrote
        them: a grid level's megabyte of coordinates is neither parsed nor encoded again."""
        features = []
        for area in self.areas:
            text = json.dumps(self._feature(area), ensure_ascii=False, separators=(",", ":"))
            features.append(f'{text[:-1]},"geometry":{area.geometry or "null"}}}')
        head = json.dumps(self._head(), ensure_ascii=False, separators=(",", ":"))
        return f'{head[:-1]},"areas":{{"type":"FeatureCollection","features":[{",".join(features)}]}}}}'

    def totals(self) -> dict[str, Any]:
        topic = TOPICS[self.ask.topic]
        sums: dict[str, float] = defaultdict(float)
        for area in self.areas:
            for name, value in self.tally.figures.get(area.key, {}).items():
                sums[name] = max(sums[name], value) if name in topic.maxima else sums[name] + value
        out: dict[str, Any] = _finish(topic, sums)
        for name in topic.breakdowns:
            merged: dict[str, int] = defaultdict(int)
            for area in self.areas:
                for item, n in self.tally.breakdowns.get(name, {}).get(area.key, {}).items():
                    merged[item] += n
            out[name] = dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))
        return out


def _finish(topic: Topic, raw: Mapping[str, float]) -> dict[str, int | float]:
    """Every figure of the topic, 0 where absent; derived ones (online, online rate) computed."""
    out: dict[str, int | float] = {}
    for name in topic.figures:
        if name == "online" and topic.name == "sensing":
            value: float = raw.get("sensors", 0) - raw.get("offline", 0)
        elif name == "online_rate":
            sensors = raw.get("sensors", 0)
            value = round(100.0 * (sensors - raw.get("offline", 0)) / sensors, 1) if sensors else 0.0
        else:
            value = raw.get(name, 0)
        out[name] = round(value, 1) if isinstance(value, float) and not value.is_integer() else _int(value)
    return out


def _int(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


# --- the areas ------------------------------------------------------------------------------------


def _need(level: str) -> tuple[str, ...]:
    """The object columns that name an area of ``level``."""
    return {"district": ("street",), "street": ("street",), "community": ("street", "community"), "grid": ("grid",)}[
        level
    ]


def object_key(level: str, columns: Sequence[str] | Mapping[str, str], alias: str = "x") -> sql.Composable:
    """The area key of an object row (``alias``) at ``level``; NULL when the
    object has no area (or its layer has no area columns)."""
    if not all(c in columns for c in _need(level)):
        return sql.SQL("NULL::text")

    def col(name: str) -> sql.Composable:
        return sql.Identifier(alias, name)

    if level == "district":
        return sql.SQL("CASE WHEN {} IS NOT NULL THEN ''::text END").format(col("street"))
    if level == "community":
        return sql.SQL("({} || {} || {})").format(col("street"), sql.Literal(_SEP), col("community"))
    return sql.SQL("{}::text").format(col(_need(level)[0]))


@dataclass(frozen=True)
class AreaLayers:
    """The area layers of each level (None: not imported, or not readable by the caller)."""

    district: LayerInfo | None
    streets: LayerInfo | None
    communities: LayerInfo | None
    grids: LayerInfo | None

    @staticmethod
    def of(layers: Mapping[str, LayerInfo], grid_layer: str) -> AreaLayers:
        return AreaLayers(
            layers.get(DISTRICT_LAYER), layers.get(STREETS_LAYER), layers.get(COMMUNITIES_LAYER), layers.get(grid_layer)
        )


def _col(layer: LayerInfo, *names: str) -> sql.Composable:
    """The first of ``names`` the layer has, as text (NULL if none)."""
    for name in names:
        if name in layer.columns:
            return sql.SQL("a.{}::text").format(sql.Identifier(name))
    return sql.SQL("NULL::text")


def areas_query(level: str, layers: AreaLayers, within: str | None) -> tuple[sql.Composed, dict] | None:
    """Rows (key, name, code, parent, GeoJSON text of the simplified outline,
    xmin, ymin, xmax, ymax, centroid x, y) of the areas of ``level`` (within
    the parent ``%(within)s``: its name or code); None without the area layer."""
    params: dict[str, Any] = {"tol": TOLERANCE_DEG[level], "within": within}
    where: sql.Composable = sql.SQL("true")
    key: sql.Composable
    name: sql.Composable
    code: sql.Composable
    parent: sql.Composable
    parent_code: sql.Composable = sql.SQL("NULL::text")
    source: sql.Composable
    if level == "district":
        if layers.district is not None:
            layer = layers.district
            key, name, code = sql.SQL("''::text"), _district_name(layer), _col(layer, "adcode", "code")
            source = sql.SQL("(SELECT * FROM {} a ORDER BY a.fid LIMIT 1) a").format(_table(layer))
            parent = sql.SQL("NULL::text")
        elif layers.streets is not None:  # no district outline imported: the union of the streets
            source = sql.SQL("(SELECT ST_Multi(ST_Union(geom)) AS geom FROM {}) a").format(_table(layers.streets))
            key, name, code, parent = sql.SQL("''::text"), sql.SQL("'district'"), sql.SQL("NULL"), sql.SQL("NULL")
        else:
            return None
    elif level == "street":
        if layers.streets is None or "street" not in layers.streets.columns:
            return None
        layer = layers.streets
        key, name, code = _col(layer, "street"), _col(layer, "street"), _col(layer, "street_code")
        district = layers.district
        parent = (
            sql.SQL("(SELECT {} FROM {} a ORDER BY a.fid LIMIT 1)").format(_district_name(district), _table(district))
            if district is not None
            else sql.SQL("NULL::text")
        )
        source = sql.SQL("{} a").format(_table(layer))
    elif level == "community":
        layer_or_none = layers.communities
        if layer_or_none is None or not {"street", "community"} <= set(layer_or_none.columns):
            return None
        layer = layer_or_none
        key = sql.SQL("(a.street || {} || a.community)").format(sql.Literal(_SEP))
        name, code, parent = _col(layer, "community"), _col(layer, "community_code"), _col(layer, "street")
        parent_code = _col(layer, "street_code")
        source = sql.SQL("{} a").format(_table(layer))
        if within is not None:
            where = sql.SQL("(a.street::text = %(within)s OR {} = %(within)s)").format(_col(layer, "street_code"))
    else:
        layer_or_none = layers.grids
        if layer_or_none is None or "grid_code" not in layer_or_none.columns:
            return None
        layer = layer_or_none
        key, code = _col(layer, "grid_code"), _col(layer, "grid_code")
        name = sql.SQL("coalesce({}, a.grid_code::text)").format(_col(layer, "grid_name", "name"))
        parent, parent_code = _col(layer, "community"), _col(layer, "community_code")
        source = sql.SQL("{} a").format(_table(layer))
        if within is not None:
            where = sql.SQL("({} = %(within)s OR {} = %(within)s)").format(
                _col(layer, "community"), _col(layer, "community_code")
            )
    query = sql.SQL(
        """SELECT {key}, {name}, {code}, {parent},
                  ST_AsGeoJSON(ST_SimplifyPreserveTopology(a.geom, %(tol)s), {dec}),
                  ST_XMin(a.geom), ST_YMin(a.geom), ST_XMax(a.geom), ST_YMax(a.geom),
                  ST_X(ST_Centroid(a.geom)), ST_Y(ST_Centroid(a.geom)), {parent_code}
           FROM {source} WHERE a.geom IS NOT NULL AND {where} ORDER BY 3, 2"""
    ).format(
        key=key,
        name=name,
        code=code,
        parent=parent,
        parent_code=parent_code,
        dec=sql.Literal(DECIMALS),
        source=source,
        where=where,
    )
    return query, params


def _table(layer: LayerInfo) -> sql.Composable:
    return sql.Identifier(layer.table_schema, layer.table_name)


def _district_name(layer: LayerInfo) -> sql.Composable:
    """The district's name: its ``name`` column, else the layer's title (the sample's outline has no columns)."""
    return sql.SQL("coalesce({}, {})").format(_col(layer, "name", "district"), sql.Literal(layer.title or layer.name))


def _outward(value: float, up: bool) -> float:
    """``value`` rounded to the outlines' decimals, away from the inside of a bbox (so the bbox holds them)."""
    scale = 10**DECIMALS
    return (math.ceil(value * scale) if up else math.floor(value * scale)) / scale


def _area(row: Sequence[Any]) -> Area:
    key, name, code, parent, geojson, xmin, ymin, xmax, ymax, cx, cy, parent_code = row
    bbox = None
    if xmin is not None:
        bbox = (_outward(xmin, False), _outward(ymin, False), _outward(xmax, True), _outward(ymax, True))
    centroid = None if cx is None else (round(cx, DECIMALS), round(cy, DECIMALS))
    return Area(key, name or code or "", code, parent, geojson, bbox, centroid, parent_code)


# --- the figures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grouped:
    """One topic's count: ``source`` is a FROM item (aliased ``s``) whose rows
    have a column ``k`` (the area key), the columns the figures use and, if
    ``dim`` is set, that breakdown's column; ``figures`` are aggregates over
    those columns. A figure named ``by_x:value`` is the count of ``value`` in
    breakdown ``by_x`` (a breakdown of fixed values, counted in the same pass).

    One plain GROUP BY (k, dim): PostgreSQL aggregates it in parallel (grouping
    sets would not be), and the per-area figures are the sums over the dim's rows."""

    source: sql.Composable
    figures: Mapping[str, sql.Composable]
    dim: str | None = None  # a breakdown name, a column of the source
    maxima: frozenset[str] = frozenset()  # figures whose per-area value is the largest of the dim's rows

    def query(self) -> sql.Composed:
        """Rows (k, dim value or NULL, count, *figures)."""
        figures = sql.SQL(", ").join(self.figures.values()) if self.figures else sql.SQL("NULL")
        dim = sql.Identifier("s", self.dim) if self.dim else sql.SQL("NULL::text")
        group = sql.SQL("s.k, {}").format(dim) if self.dim else sql.SQL("s.k")
        return sql.SQL("SELECT s.k, {dim}, count(*), {f} FROM {src} WHERE s.k IS NOT NULL GROUP BY {group}").format(
            dim=dim, f=figures, src=self.source, group=group
        )

    def read(self, rows: Sequence[Sequence[Any]], tally: Tally) -> None:
        names = list(self.figures)
        for key, value, n, *figures in rows:
            area = tally.figures.setdefault(key, {})
            for name, v in zip(names, figures):
                v = float(v or 0)
                if ":" in name:
                    breakdown, item = name.split(":", 1)
                    counts = tally.breakdowns.setdefault(breakdown, {}).setdefault(key, {})
                    counts[item] = counts.get(item, 0) + int(v)
                elif name in self.maxima:
                    area[name] = max(area.get(name, v), v)
                else:
                    area[name] = area.get(name, 0.0) + v
            if self.dim:
                counts = tally.breakdowns.setdefault(self.dim, {}).setdefault(key, {})
                item = "" if value is None else str(value)
                counts[item] = counts.get(item, 0) + int(n)


def _count(condition: str | sql.Composable) -> sql.Composable:
    cond = sql.SQL(condition) if isinstance(condition, str) else condition
    return sql.SQL("count(*) FILTER (WHERE {})").format(cond)


def events_grouped(level: str, deadlines: Deadlines) -> Grouped:
    """Live tickets: open, overdue (the step waited for is past its limit), closed; by channel and stage."""
    key = object_key(level, ("street", "community", "grid"))
    source = sql.SQL(
        """(SELECT {key} AS k, x.channel AS by_channel, x.resolved_at IS NULL AS open,
                   x.contacted_at IS NOT NULL AS contacted, x.acknowledged_at IS NOT NULL AS acknowledged,
                   CASE WHEN x.resolved_at IS NOT NULL THEN false
                        WHEN x.contacted_at IS NOT NULL THEN now() > x.created_at + {resolve}
                        WHEN x.acknowledged_at IS NOT NULL THEN now() > x.created_at + {contact}
                        ELSE now() > x.created_at + {ack} END AS overdue
            FROM {t} x) s"""
    ).format(
        key=key,
        t=sql.Identifier(LIVE_SCHEMA, "ticket_records"),
        ack=sql.Literal(deadlines.acknowledge),
        contact=sql.Literal(deadlines.contact),
        resolve=sql.Literal(deadlines.resolve),
    )
    figures = {
        "open_tickets": _count("s.open"),
        "overdue_tickets": _count("s.overdue"),
        "closed": _count("NOT s.open"),
        # the step each ticket waits for (cim.live.sla): a breakdown of four values, counted in the same pass
        "by_stage:acknowledge": _count("s.open AND NOT s.contacted AND NOT s.acknowledged"),
        "by_stage:contact": _count("s.open AND NOT s.contacted AND s.acknowledged"),
        "by_stage:resolve": _count("s.open AND s.contacted"),
        "by_stage:closed": _count("NOT s.open"),
    }
    return Grouped(source, figures, "by_channel")


def sensing_grouped(level: str, sensors: LayerInfo, live: bool) -> Grouped:
    """Sensors of the layer, each with its live state where the hub has one (else the layer's
    ``status``) and its open alarms: offline (state offline or an open offline alarm), in alarm
    (an open alarm of another kind); by category."""
    cols = sensors.columns
    layer_status = sql.SQL("x.status::text") if "status" in cols else sql.SQL("NULL::text")
    # the category's name where the layer has one (烟感 rather than smoke_detector): the screen shows it
    if "category_name" in cols and "category" in cols:
        category = sql.SQL("coalesce(x.category_name::text, x.category::text)")
    elif "category" in cols:
        category = sql.SQL("x.category::text")
    else:
        category = sql.SQL("NULL::text")
    joined = live and "id" in cols
    if joined:
        status: sql.Composable = sql.SQL("coalesce(st.status, {})").format(layer_status)
        joins: sql.Composable = sql.SQL(
            """LEFT JOIN {state} st ON st.sensor_id = x.id::text
               LEFT JOIN (SELECT sensor_id, bool_or(kind = 'offline') AS off, bool_or(kind <> 'offline') AS alarm
                          FROM {alarms} WHERE cleared_at IS NULL GROUP BY sensor_id) a ON a.sensor_id = x.id::text"""
        ).format(state=sql.Identifier(LIVE_SCHEMA, "sensor_state"), alarms=sql.Identifier(LIVE_SCHEMA, "alarms"))
        off, alarm = sql.SQL("coalesce(a.off, false)"), sql.SQL("coalesce(a.alarm, false)")
    else:
        status, joins, off, alarm = layer_status, sql.SQL(""), sql.SQL("false"), sql.SQL("false")
    source = sql.SQL(
        """(SELECT {key} AS k, {category} AS by_category,
                   ({status} IS NOT DISTINCT FROM 'offline' OR {off}) AS offline, {alarm} AS alarm
            FROM {t} x {joins}) s"""
    ).format(
        key=object_key(level, cols),
        category=category,
        status=status,
        off=off,
        alarm=alarm,
        t=_table(sensors),
        joins=joins,
    )
    figures = {"sensors": sql.SQL("count(*)"), "alarms": _count("s.alarm"), "offline": _count("s.offline")}
    return Grouped(source, figures, "by_category")


def video_grouped(level: str, cameras: LayerInfo) -> Grouped:
    """Cameras of the layer; online: status 'online' (a layer without status: none known online)."""
    online = sql.SQL("x.status::text = 'online'") if "status" in cameras.columns else sql.SQL("false")
    source = sql.SQL("(SELECT {key} AS k, {online} AS online FROM {t} x) s").format(
        key=object_key(level, cameras.columns), online=online, t=_table(cameras)
    )
    return Grouped(source, {"cameras": sql.SQL("count(*)"), "online": _count("s.online")})


def components_grouped(level: str, layers: Sequence[LayerInfo]) -> Grouped:
    """Components of every component layer, by 大类 (the first two digits of the class code)."""
    parts = [
        sql.SQL("SELECT {key} AS k, left(x.class_code::text, 2) AS by_major FROM {t} x").format(
            key=object_key(level, layer.columns), t=_table(layer)
        )
        for layer in layers
        if "class_code" in layer.columns
    ]
    union = sql.SQL(" UNION ALL ").join(parts) if parts else sql.SQL("SELECT NULL::text AS k, NULL::text AS by_major")
    return Grouped(sql.SQL("({}) s").format(union), {"components": sql.SQL("count(*)")}, "by_major")


def land_grouped(level: str, parcels_layer: str) -> Grouped:
    """The latest check of ``parcels_layer``: parcels and their verdicts (合规, 预警, 违规)."""
    source = sql.SQL("(SELECT {key} AS k, x.verdict FROM {t} x WHERE x.parcels_layer = {layer}) s").format(
        key=object_key(level, ("street", "community", "grid")),
        t=sql.Identifier(LAND_SCHEMA, "parcels"),
        layer=sql.Literal(parcels_layer),
    )
    figures = {
        "parcels": sql.SQL("count(*)"),
        "compliant": _count("s.verdict = '合规'"),
        "warning": _count("s.verdict = '预警'"),
        "violation": _count("s.verdict = '违规'"),
    }
    return Grouped(source, figures)


def buildings_grouped(level: str, buildings: LayerInfo, floor_height_m: float = Thresholds.floor_height_m) -> Grouped:
    """Buildings: count, floor area (footprint on the local metric CRS of the layer's centre ×
    floors, as the land check counts them) and the tallest (height, else floors × floor height)."""
    cols = buildings.columns
    west, south, east, north = buildings.bbox
    srid = local_srid((west + east) / 2, (south + north) / 2)

    def col(name: str, cast: str) -> sql.Composable:
        return sql.SQL("x.{}::{}").format(sql.Identifier(name), sql.SQL(cast)) if name in cols else sql.SQL("NULL")

    fh = sql.Literal(floor_height_m)
    floors = sql.SQL("CASE WHEN {f} > 0 AND {f} < 500 THEN {f} ELSE round(coalesce({h}, 0) / {fh})::int END").format(
        f=col("floors", "numeric::int"), h=col("height", "float8"), fh=fh
    )
    height = sql.SQL("coalesce({}, {} * {})").format(col("height", "float8"), col("floors", "float8"), fh)
    source = sql.SQL(
        """(SELECT {key} AS k, ST_Area(ST_Transform(x.geom, {srid})) * {floors} AS floor_area, {height} AS height
            FROM {t} x WHERE x.geom IS NOT NULL) s"""
    ).format(key=object_key(level, cols), srid=sql.Literal(srid), floors=floors, height=height, t=_table(buildings))
    figures = {
        "buildings": sql.SQL("count(*)"),
        "floor_area_m2": sql.SQL("round(coalesce(sum(s.floor_area), 0)::numeric, 1)"),
        "tallest_m": sql.SQL("round(coalesce(max(s.height), 0)::numeric, 1)"),
    }
    return Grouped(source, figures, maxima=frozenset({"tallest_m"}))


# --- one request --------------------------------------------------------------------------------------

Connect = Callable[[], Any]  # an async context manager giving a psycopg.AsyncConnection (a pool's connection)


@dataclass(frozen=True)
class Present:
    """What the database holds besides the catalogue: the live tables, the land checks, component layers."""

    tickets: bool
    live_state: bool
    land_layer: str | None
    component_layers: tuple[str, ...]


async def _present(conn: psycopg.AsyncConnection) -> Present:
    row = await (
        await conn.execute(
            f"""SELECT to_regclass('{LIVE_SCHEMA}.ticket_records') IS NOT NULL,
                       to_regclass('{LIVE_SCHEMA}.sensor_state') IS NOT NULL
                         AND to_regclass('{LIVE_SCHEMA}.alarms') IS NOT NULL,
                       to_regclass('{LAND_SCHEMA}.runs') IS NOT NULL
                         AND to_regclass('{LAND_SCHEMA}.parcels') IS NOT NULL,
                       to_regclass('{COMPONENTS_SCHEMA}.layers') IS NOT NULL"""
        )
    ).fetchone()
    assert row is not None  # a SELECT without FROM has one row
    tickets, live_state, land, components = row
    land_layer = None
    if land:  # the parcels layer checked last (as /land's default)
        found = await (
            await conn.execute(
                f"SELECT parcels_layer FROM {LAND_SCHEMA}.runs GROUP BY parcels_layer ORDER BY max(id) DESC LIMIT 1"
            )
        ).fetchone()
        land_layer = found[0] if found else None
    names: tuple[str, ...] = ()
    if components:
        names = tuple(
            r[0] for r in await (await conn.execute(f"SELECT name FROM {COMPONENTS_SCHEMA}.layers")).fetchall()
        )
    return Present(bool(tickets), bool(live_state), land_layer, names)


def grouped_of(
    ask: Ask, layers: Mapping[str, LayerInfo], present: Present, deadlines: Deadlines, hidden: frozenset[str]
) -> tuple[Grouped | None, list[str]]:
    """The count of ``ask``'s topic, and what is missing for it (None: nothing to count)."""
    level = ask.level
    if ask.topic == "events":
        if not present.tickets or TICKETS_LAYER in hidden:
            return None, [TICKETS_LAYER]
        return events_grouped(level, deadlines), []
    if ask.topic == "sensing":
        sensors = layers.get(SENSORS_LAYER)
        return (None, [SENSORS_LAYER]) if sensors is None else (sensing_grouped(level, sensors, present.live_state), [])
    if ask.topic == "video":
        cameras = layers.get(CAMERAS_LAYER)
        return (None, [CAMERAS_LAYER]) if cameras is None else (video_grouped(level, cameras), [])
    if ask.topic == "components":
        found = [layers[n] for n in sorted(present.component_layers) if n in layers]
        return (components_grouped(level, found), []) if found else (None, ["components"])
    if ask.topic == "land":
        if present.land_layer is None:
            return None, ["land_check"]
        return land_grouped(level, present.land_layer), []
    buildings = layers.get(BUILDINGS_LAYER)
    return (None, [BUILDINGS_LAYER]) if buildings is None else (buildings_grouped(level, buildings), [])


async def indicators(
    connect: Connect,
    ask: Ask,
    layers: Mapping[str, LayerInfo],
    grid_layer: str,
    deadlines: Deadlines = Deadlines(),
    hidden: frozenset[str] = frozenset(),
) -> Answer:
    """The answer to ``ask`` (checked here): the areas and the counts run on two connections at once.
    ``layers``: the catalogue as the caller may read it (a layer left out counts as missing);
    ``hidden``: the layers the caller may not read (the live tickets of ``tickets`` among them)."""
    ask = ask.checked()
    area_layers = AreaLayers.of(layers, grid_layer)
    missing: list[str] = []
    area_query = areas_query(ask.level, area_layers, ask.within)
    if area_query is None:
        missing.append(
            {
                "district": DISTRICT_LAYER,
                "street": STREETS_LAYER,
                "community": COMMUNITIES_LAYER,
                "grid": grid_layer,
            }[ask.level]
        )

    async def read_areas() -> list[Area]:
        if area_query is None:
            return []
        async with connect() as conn:
            rows = await (await conn.execute(*area_query)).fetchall()
        return [_area(r) for r in rows]

    async def count() -> Tally:
        async with connect() as conn:
            present = await _present(conn)
            grouped, lacking = grouped_of(ask, layers, present, deadlines, hidden)
            tally = Tally(missing=lacking)
            if grouped is not None:
                grouped.read(await (await conn.execute(grouped.query())).fetchall(), tally)
        if ask.topic == "events" and TICKETS_LAYER not in layers and not tally.figures:
            tally.missing.append(TICKETS_LAYER)  # neither imported nor sent live
        return tally

    areas_task: Awaitable[list[Area]] = read_areas()
    areas, tally = await asyncio.gather(areas_task, count())
    if ask.within is not None and not areas and area_query is not None:
        parent = PARENT_LEVEL[ask.level]
        raise NotFoundError(
            f"no {parent} named {ask.within!r} (with {ask.level} areas)",
            hint=f"GET /screen/indicators?level={parent} lists them",
        )
    parents = {a.parent_code for a in areas if a.parent_code is not None}
    if ask.within is not None and len(parents) > 1:
        raise InputError(
            "within",
            f"{ask.within!r} names {len(parents)} {PARENT_LEVEL[ask.level]} areas",
            hint=f"give its code: one of {', '.join(sorted(parents))}",
        )
    tally.missing = sorted(set(tally.missing) | set(missing))
    return Answer(ask, areas, tally)
