"""The live hub's storage in PostGIS: the ``live`` schema and how records are stored.

- ``live.sensor_registry``, ``live.camera_registry``: the registries (id,
  category or view, location, street/community/grid), filled from the layers
  ``sensors`` and ``cameras``.
- ``live.readings``: the time series, partitioned by day on ``ts`` (a
  partition per UTC day, made when the first reading of that day arrives;
  retention drops whole partitions, so a billion rows cost no DELETE), primary
  key (sensor_id, ts) so a reading sent twice is stored once.
- ``live.sensor_state``: each sensor's latest reading (what a map paints).
- ``live.ticket_records``: citizen tickets (民意速办), one row per id, updated
  in place; first filled from the layer ``tickets``.
- ``cim.audit`` (made by :mod:`cim.auth.store`): the hub appends its own rows,
  the ``mqtt.refused`` summaries (:func:`append_audit`).

No table here has the name of a layer (QGIS lists ``live.sensors`` and
``layers.sensors`` as two "sensors"): the registries were ``live.sensors``,
``live.cameras`` and ``live.tickets`` once, and are renamed where they still
are. Every table and column has a comment in Chinese.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import psycopg

from layers.schema import LAYER_SCHEMA, META_SCHEMA, set_comments

LIVE_SCHEMA = "live"

#: the live table each registry layer fills (they were named as the layers until the names collided in QGIS)
REGISTRIES = {"sensors": "sensor_registry", "cameras": "camera_registry", "tickets": "ticket_records"}

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {LIVE_SCHEMA};
-- the registries' earlier names (those of their layers), with their keys and indexes
ALTER TABLE IF EXISTS {LIVE_SCHEMA}.sensors RENAME TO sensor_registry;
ALTER INDEX IF EXISTS {LIVE_SCHEMA}.sensors_pkey RENAME TO sensor_registry_pkey;
ALTER INDEX IF EXISTS {LIVE_SCHEMA}.sensors_geom RENAME TO sensor_registry_geom;
ALTER TABLE IF EXISTS {LIVE_SCHEMA}.cameras RENAME TO camera_registry;
ALTER INDEX IF EXISTS {LIVE_SCHEMA}.cameras_pkey RENAME TO camera_registry_pkey;
ALTER TABLE IF EXISTS {LIVE_SCHEMA}.tickets RENAME TO ticket_records;
ALTER INDEX IF EXISTS {LIVE_SCHEMA}.tickets_pkey RENAME TO ticket_records_pkey;
ALTER INDEX IF EXISTS {LIVE_SCHEMA}.tickets_geom RENAME TO ticket_records_geom;
CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.sensor_registry (
    id            text PRIMARY KEY,
    category      text NOT NULL,
    category_name text,
    vendor        text,
    install_date  date,
    street        text,
    community     text,
    grid          text,
    geom          geometry(Point, 4326) NOT NULL
);
CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.camera_registry (
    id          text PRIMARY KEY,
    name        text,
    heading     double precision,
    fov         double precision,
    range_m     double precision,
    stream_url  text,
    status      text,
    street      text,
    community   text,
    grid        text,
    geom        geometry(Point, 4326) NOT NULL
);
CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.readings (
    sensor_id   text NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    status      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sensor_id, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.sensor_state (
    sensor_id   text PRIMARY KEY,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    status      text NOT NULL
);
CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.ticket_records (
    id              text PRIMARY KEY,
    channel         text NOT NULL,
    category        text NOT NULL,
    address         text,
    department      text,
    status          text,
    created_at      timestamptz NOT NULL,
    acknowledged_at timestamptz,
    contacted_at    timestamptz,
    resolved_at     timestamptz,
    street          text,
    community       text,
    grid            text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    geom            geometry(Point, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_records_geom ON {LIVE_SCHEMA}.ticket_records USING gist (geom);
CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.rules (
    id          serial PRIMARY KEY,
    category    text NOT NULL,          -- a sensor category, or * for every sensor
    kind        text NOT NULL CHECK (kind IN ('status', 'below', 'above', 'offline')),
    threshold   double precision,       -- below / above
    minutes     integer,                -- offline: no reading for this long
    severity    text NOT NULL DEFAULT 'warning',
    message     text NOT NULL           -- shown to people (Chinese)
);
CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.alarms (
    id          bigserial PRIMARY KEY,
    sensor_id   text NOT NULL,
    rule_id     integer NOT NULL REFERENCES {LIVE_SCHEMA}.rules (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    severity    text NOT NULL,
    message     text NOT NULL,
    value       double precision,
    raised_at   timestamptz NOT NULL,
    cleared_at  timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_open ON {LIVE_SCHEMA}.alarms (sensor_id, rule_id) WHERE cleared_at IS NULL;
CREATE INDEX IF NOT EXISTS alarms_raised ON {LIVE_SCHEMA}.alarms USING brin (raised_at);
-- whether a rule fires on a sensor's latest state (offline: measured against the transaction's time)
CREATE OR REPLACE FUNCTION {LIVE_SCHEMA}.rule_fires(kind text, threshold double precision, minutes integer,
                                                    status text, value double precision, ts timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE kind WHEN 'status' THEN status = 'alarm'
                     WHEN 'below' THEN value < threshold
                     WHEN 'above' THEN value > threshold
                     WHEN 'offline' THEN ts < now() - make_interval(mins => minutes)
                     ELSE false END
$$;
CREATE INDEX IF NOT EXISTS sensor_registry_geom ON {LIVE_SCHEMA}.sensor_registry USING gist (geom);
"""


_PLACE = {"street": "所在街道", "community": "所在社区", "grid": "所在网格", "geom": "位置 (WGS 84 经纬度, EPSG:4326)"}
_STATUS = "状态: normal 正常, alarm 报警, fault 故障, offline 离线"

#: each live table's comment and its columns' (what QGIS and psql's \d+ show)
LIVE_COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "sensor_registry": (
        "传感器登记表 (由图层 sensors 同步)",
        {
            "id": "传感器编号",
            "category": "类别代码 (如 hydrant_pressure 消防栓水压, water_level 水位)",
            "category_name": "类别",
            "vendor": "厂商",
            "install_date": "安装日期",
            **_PLACE,
        },
    ),
    "camera_registry": (
        "摄像头登记表 (由图层 cameras 同步)",
        {
            "id": "摄像头编号",
            "name": "名称",
            "heading": "朝向 (度, 正北为 0, 顺时针)",
            "fov": "视场角 (度)",
            "range_m": "可视距离 (米)",
            "stream_url": "视频流地址 (HLS)",
            "status": "状态",
            **_PLACE,
        },
    ),
    "readings": (
        "传感器读数 (按 UTC 日分区, 超过保留天数的分区整块删除)",
        {
            "sensor_id": "传感器编号",
            "ts": "测量时间",
            "value": "读数 (单位随类别: 水压 MPa, 水位 米, ...)",
            "status": _STATUS,
            "received_at": "入库时间",
        },
    ),
    "sensor_state": (
        "传感器最新状态 (每个传感器的最新读数)",
        {"sensor_id": "传感器编号", "ts": "测量时间", "value": "读数", "status": _STATUS},
    ),
    "ticket_records": (
        "民意速办工单 (每个工单一行, 随办理更新)",
        {
            "id": "工单编号",
            "channel": "来源渠道",
            "category": "类别",
            "address": "地址",
            "department": "责任部门",
            "status": "状态",
            "created_at": "创建时间",
            "acknowledged_at": "受理时间 (时限 10 分钟)",
            "contacted_at": "联系市民时间 (时限 30 分钟)",
            "resolved_at": "办结时间 (时限 24 小时)",
            "updated_at": "最后更新时间",
            **_PLACE,
        },
    ),
    "rules": (
        "报警规则 (可在此编辑)",
        {
            "id": "规则编号",
            "category": "适用的传感器类别代码 (* 为全部)",
            "kind": "规则类型: status 设备报警, below 低于阈值, above 高于阈值, offline 离线",
            "threshold": "阈值 (与读数同单位)",
            "minutes": "离线判定时长 (分钟)",
            "severity": "级别: critical 严重, warning 警告",
            "message": "报警信息",
        },
    ),
    "alarms": (
        "报警记录 (未解除的 cleared_at 为空)",
        {
            "id": "报警编号",
            "sensor_id": "传感器编号",
            "rule_id": "规则编号",
            "kind": "规则类型",
            "severity": "级别",
            "message": "报警信息",
            "value": "触发时的读数",
            "raised_at": "报警时间",
            "cleared_at": "解除时间",
        },
    ),
}

#: what a reading's status may be
STATUSES = ("normal", "alarm", "fault", "offline")


@dataclass(frozen=True)
class Reading:
    sensor_id: str
    ts: dt.datetime  # aware
    value: float
    status: str  # one of STATUSES


@dataclass(frozen=True)
class Ticket:
    id: str
    channel: str
    category: str
    lon: float
    lat: float
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None = None
    contacted_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    address: str | None = None
    department: str | None = None
    status: str | None = None


#: the rules a new installation starts with (category, kind, threshold, minutes, severity, message);
#: they are rows of live.rules, to be edited there
DEFAULT_RULES = (
    ("*", "status", None, None, "critical", "设备报警"),
    ("hydrant_pressure", "below", 0.15, None, "critical", "消防栓水压低于 0.15 MPa"),
    ("water_level", "above", 3.0, None, "critical", "水位超过警戒线 3.0 米"),
    ("*", "offline", None, 15, "warning", "超过 15 分钟没有数据"),
)


@dataclass(frozen=True)
class AlarmEvent:
    id: int
    sensor_id: str
    kind: str
    severity: str
    message: str
    value: float | None
    raised_at: dt.datetime
    cleared_at: dt.datetime | None  # set: the alarm ended

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "sensor_id": self.sensor_id,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "value": self.value,
            "raised_at": self.raised_at.isoformat(),
            "cleared_at": self.cleared_at.isoformat() if self.cleared_at else None,
        }


def ensure_live_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cim.live.schema'))")
        conn.execute(_DDL)
        for table, (title, columns) in LIVE_COMMENTS.items():
            set_comments(conn, LIVE_SCHEMA, table, title, columns)
        row = conn.execute(f"SELECT count(*) FROM {LIVE_SCHEMA}.rules").fetchone()
        assert row is not None  # count(*) returns one row
        if row[0] == 0:
            conn.cursor().executemany(
                f"INSERT INTO {LIVE_SCHEMA}.rules (category, kind, threshold, minutes, severity, "
                "message) VALUES (%s, %s, %s, %s, %s, %s)",
                DEFAULT_RULES,
            )


_ALARM_COLUMNS = "id, sensor_id, kind, severity, message, value, raised_at, cleared_at"


def evaluate_rules(conn: psycopg.Connection, sensors: list[str] | None) -> list[AlarmEvent]:
    """Raise the alarms that fire on these sensors' latest state and clear
    those that no longer do (``None``: every sensor, for offline rules as time
    passes). Returns the alarms raised and cleared."""
    if sensors is not None:  # the batch's sensors, joined as a relation: a filter "= ANY(5,000 ids)" on
        # every open alarm took minutes once the planner underestimated them (all sensors back from offline)
        scope = f"""WITH scope AS MATERIALIZED (SELECT st.* FROM unnest(%(ids)s::text[]) AS b(sensor_id)
                                             JOIN {LIVE_SCHEMA}.sensor_state st ON st.sensor_id = b.sensor_id)"""
        clear_from, kinds = "scope", "TRUE"
    else:  # every sensor: only those silent for at least the shortest offline rule's minutes can fire, found
        # first by one scan (joining all 270,000 to the rules and testing each took a second)
        scope = f"""WITH scope AS MATERIALIZED (
            SELECT * FROM {LIVE_SCHEMA}.sensor_state WHERE ts < (
                SELECT coalesce(now() - make_interval(mins => min(minutes)), '-infinity')
                FROM {LIVE_SCHEMA}.rules WHERE kind = 'offline'))"""
        clear_from, kinds = f"{LIVE_SCHEMA}.sensor_state", "r.kind = 'offline'"
    with conn.transaction():
        raised = conn.execute(
            f"""{scope}
            INSERT INTO {LIVE_SCHEMA}.alarms (sensor_id, rule_id, kind, severity, message, value, raised_at)
            SELECT st.sensor_id, r.id, r.kind, r.severity, r.message, st.value,
                   CASE WHEN r.kind = 'offline' THEN now() ELSE st.ts END
            FROM scope st
            JOIN {LIVE_SCHEMA}.sensor_registry s ON s.id = st.sensor_id
            JOIN {LIVE_SCHEMA}.rules r ON r.category IN (s.category, '*')
            WHERE {kinds} AND {LIVE_SCHEMA}.rule_fires(r.kind, r.threshold, r.minutes, st.status, st.value, st.ts)
            ON CONFLICT (sensor_id, rule_id) WHERE cleared_at IS NULL DO NOTHING
            RETURNING {_ALARM_COLUMNS}""",
            {"ids": sensors},
        ).fetchall()
        cleared = conn.execute(
            f"""{scope if clear_from == "scope" else ""}
            UPDATE {LIVE_SCHEMA}.alarms a SET cleared_at = greatest(st.ts, a.raised_at)
            FROM {clear_from} st, {LIVE_SCHEMA}.rules r
            WHERE a.cleared_at IS NULL AND a.sensor_id = st.sensor_id AND a.rule_id = r.id AND {kinds}
              AND NOT {LIVE_SCHEMA}.rule_fires(r.kind, r.threshold, r.minutes, st.status, st.value, st.ts)
            RETURNING {", ".join("a." + c for c in _ALARM_COLUMNS.split(", "))}""",
            {"ids": sensors},
        ).fetchall()
    return [AlarmEvent(*row) for row in raised + cleared]


def open_alarm_sensors(conn: psycopg.Connection, sensors: list[str] | None = None) -> set[str]:
    """The sensors (of ``sensors``, or all) with at least one open alarm."""
    scope = "" if sensors is None else "AND sensor_id = ANY(%s)"
    return {
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT sensor_id FROM {LIVE_SCHEMA}.alarms WHERE cleared_at IS NULL {scope}",
            () if sensors is None else (sensors,),
        )
    }


def _has_layer(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{LAYER_SCHEMA}.{name}",)).fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    return row[0]


#: what each live registry takes from its layer (by the layer's name): column -> the layer's expression
#: for it (besides ``id``)
_REGISTRY_COLUMNS: dict[str, dict[str, str]] = {
    "sensors": {
        "category": "coalesce(category, '')",
        "category_name": "category_name",
        "vendor": "vendor",
        "install_date": "install_date",
        "street": "street",
        "community": "community",
        "grid": "grid",
        "geom": "geom",
    },
    "cameras": {
        c: c
        for c in ("name", "heading", "fov", "range_m", "stream_url", "status", "street", "community", "grid", "geom")
    },
    "tickets": {
        "channel": "coalesce(channel, '')",
        "category": "coalesce(category, '')",
        "address": "address",
        "department": "department",
        "status": "status",
        "created_at": "created_at",
        "acknowledged_at": "acknowledged_at",
        "contacted_at": "contacted_at",
        "resolved_at": "resolved_at",
        "street": "street",
        "community": "community",
        "grid": "grid",
        "geom": "geom",
    },
}


def _sync_sql(layer: str) -> str:
    """INSERT ... SELECT from the layer. Sensors and cameras are updated where
    they differ (unchanged rows are not rewritten); a ticket already there is
    kept (one updated live is newer than the layer's copy)."""
    columns = _REGISTRY_COLUMNS[layer]
    table = REGISTRIES[layer]
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {LIVE_SCHEMA}.{table} (id, {names}) SELECT id, {', '.join(columns.values())} "
        f"FROM {LAYER_SCHEMA}.{layer} WHERE id IS NOT NULL"
    )
    if layer == "tickets":
        return sql + " AND created_at IS NOT NULL ON CONFLICT (id) DO NOTHING"
    return (
        sql
        + " ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns)
        + f" WHERE ({', '.join(f'{table}.{c}' for c in columns)}) IS DISTINCT FROM "
        + f"({', '.join(f'excluded.{c}' for c in columns)})"
    )


def sync_registries(conn: psycopg.Connection) -> dict[str, int]:
    """Sensors, cameras and tickets from the layers of those names (imported
    with ``cim import layer`` or by ``cim demo``) into the live tables; rows
    already there are updated, readings are kept. Returns the counts, by layer name."""
    counts = {}
    with conn.transaction():
        for layer, table in REGISTRIES.items():
            if _has_layer(conn, layer):
                conn.execute(_sync_sql(layer))
            row = conn.execute(f"SELECT count(*) FROM {LIVE_SCHEMA}.{table}").fetchone()
            assert row is not None  # count(*) returns one row
            counts[layer] = row[0]
    return counts


def registry_layers_version(conn: psycopg.Connection) -> tuple:
    """What the registries were last synced from: the catalogue versions of the three layers."""
    return tuple(
        conn.execute(
            f"SELECT name, version, imported_at FROM {META_SCHEMA}.layers "
            "WHERE name IN ('sensors', 'cameras', 'tickets') ORDER BY name"
        ).fetchall()
    )


class Partitions:
    """Daily partitions of ``live.readings``, made on demand and dropped after ``retention_days``."""

    def __init__(self, retention_days: int) -> None:
        self.retention_days = retention_days
        self.known: set[dt.date] = set()

    def ensure(self, conn: psycopg.Connection, days: set[dt.date]) -> None:
        for day in sorted(days - self.known):
            name = f"readings_{day:%Y%m%d}"
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {LIVE_SCHEMA}.{name} PARTITION OF {LIVE_SCHEMA}.readings "
                f"FOR VALUES FROM ('{day:%Y-%m-%d} 00:00+00') TO ('{day + dt.timedelta(days=1):%Y-%m-%d} 00:00+00')"
            )
            set_comments(conn, LIVE_SCHEMA, name, f"传感器读数 {day:%Y-%m-%d} (UTC) 分区", LIVE_COMMENTS["readings"][1])
            self.known.add(day)

    def oldest_kept(self, now: dt.datetime) -> dt.datetime:
        day = (now - dt.timedelta(days=self.retention_days)).date()
        return dt.datetime.combine(day, dt.time(), dt.UTC)

    def drop_expired(self, conn: psycopg.Connection, now: dt.datetime) -> list[str]:
        """Drop the partitions wholly older than the retention; returns their names."""
        limit = self.oldest_kept(now).date()
        rows = conn.execute(
            """
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
            WHERE n.nspname = %s AND p.relname = 'readings'""",
            (LIVE_SCHEMA,),
        ).fetchall()
        dropped = []
        for (name,) in rows:
            day = dt.datetime.strptime(name[-8:], "%Y%m%d").date()
            if day < limit:
                conn.execute(f"DROP TABLE {LIVE_SCHEMA}.{name}")
                self.known.discard(day)
                dropped.append(name)
        return dropped


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(readings: list[Reading]) -> str:
    """The batch as COPY text: building one string is several times cheaper than
    handing psycopg four Python lists to dump as arrays (the hub's hottest spot)."""
    return "".join(
        f"{r.sensor_id.translate(_COPY_ESCAPES)}\t{r.ts.isoformat()}\t{r.value!r}\t{r.status}\n" for r in readings
    )


def store_readings(
    conn: psycopg.Connection, readings: list[Reading], partitions: Partitions, *, keys: bool = True
) -> tuple[int, set[tuple[str, dt.datetime]] | None]:
    """Insert in one transaction (a duplicate (sensor_id, ts) is skipped) and
    move each sensor's latest state forward. Returns how many were new and,
    with ``keys``, which (sensor_id, ts) they were."""
    if not readings:
        return 0, (set() if keys else None)
    days, known = {r.ts.astimezone(dt.UTC).date() for r in readings}, set(partitions.known)
    try:
        return _store_readings(conn, readings, partitions, days, keys)
    except BaseException:
        partitions.known &= known  # the partitions made in the transaction rolled back are gone
        raise


def _store_readings(
    conn: psycopg.Connection, readings: list[Reading], partitions: Partitions, days: set[dt.date], keys: bool
) -> tuple[int, set[tuple[str, dt.datetime]] | None]:
    with conn.transaction():
        partitions.ensure(conn, days)
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS reading_batch (sensor_id text, ts timestamptz, "
            "value double precision, status text) ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy("COPY reading_batch FROM STDIN") as copy:
            copy.write(_copy_text(readings))
        cur = conn.execute(f"""
            INSERT INTO {LIVE_SCHEMA}.readings (sensor_id, ts, value, status)
            SELECT sensor_id, ts, value, status FROM reading_batch
            ON CONFLICT DO NOTHING {"RETURNING sensor_id, ts" if keys else ""}""")
        new = {(sensor_id, ts) for sensor_id, ts in cur.fetchall()} if keys else None
        count = cur.rowcount
        conn.execute(f"""
            INSERT INTO {LIVE_SCHEMA}.sensor_state AS s (sensor_id, ts, value, status)
            SELECT DISTINCT ON (sensor_id) sensor_id, ts, value, status FROM reading_batch
            ORDER BY sensor_id, ts DESC
            ON CONFLICT (sensor_id) DO UPDATE SET ts = excluded.ts, value = excluded.value, status = excluded.status
            WHERE excluded.ts > s.ts""")
    return count, new


def loadable_time(column: str) -> str:
    """SQL: ``column`` (a timestamptz) clamped to what psycopg can load into Python: a time stored
    before the intake checked dates ('infinity', 9999-12-31 shown at +08:00 in year 10000) is read
    as the nearest one it can hold, never as an error. NULL stays NULL."""
    return (
        f"CASE WHEN {column} IS NULL THEN NULL "
        f"ELSE least(greatest({column}, '0001-01-02 00:00+00'), '9999-12-30 00:00+00') END"
    )


def upsert_ticket(
    conn: psycopg.Connection, t: Ticket, placement: dict[str, str | None] | None = None
) -> tuple[bool, Ticket]:
    """Create or update one ticket (a stage time already stored is kept when
    an update leaves it out); returns whether it was new, and the ticket as stored."""
    placement = placement or {}
    row = conn.execute(
        f"""
        INSERT INTO {LIVE_SCHEMA}.ticket_records AS t (id, channel, category, address, department, status, created_at,
            acknowledged_at, contacted_at, resolved_at, street, community, grid, geom)
        VALUES (%(id)s, %(channel)s, %(category)s, %(address)s, %(department)s, %(status)s, %(created_at)s,
                %(acknowledged_at)s, %(contacted_at)s, %(resolved_at)s, %(street)s, %(community)s, %(grid)s,
                ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
        ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, category = excluded.category,
            address = coalesce(excluded.address, t.address), department = coalesce(excluded.department, t.department),
            status = coalesce(excluded.status, t.status), created_at = excluded.created_at,
            acknowledged_at = coalesce(excluded.acknowledged_at, t.acknowledged_at),
            contacted_at = coalesce(excluded.contacted_at, t.contacted_at),
            resolved_at = coalesce(excluded.resolved_at, t.resolved_at),
            street = excluded.street, community = excluded.community, grid = excluded.grid,
            geom = excluded.geom, updated_at = now()
        RETURNING (xmax = 0), {loadable_time("t.created_at")}, {loadable_time("t.acknowledged_at")},
            {loadable_time("t.contacted_at")}, {loadable_time("t.resolved_at")}, address, department, status""",
        {
            **t.__dict__,
            "street": placement.get("street"),
            "community": placement.get("community"),
            "grid": placement.get("grid"),
        },
    ).fetchone()
    assert row is not None  # an upsert without a WHERE returns its row, inserted or updated
    stored = Ticket(t.id, t.channel, t.category, t.lon, t.lat, row[1], row[2], row[3], row[4], row[5], row[6], row[7])
    return bool(row[0]), stored


# --- the audit ------------------------------------------------------------------------------------------

#: a row of ``cim.audit`` (the table of :mod:`cim.auth.store`, which this layer does not import): the
#: hub's own rows, from no HTTP address
AUDIT_INSERT = "INSERT INTO cim.audit (actor, via, action, object, ok, detail) VALUES (%s, %s, %s, %s, %s, %s)"


@dataclass(frozen=True)
class AuditRow:
    """One row the hub writes to ``cim.audit``, bounded as ``cim.auth.store.audit_params`` bounds them."""

    actor: str
    action: str
    object_: str
    detail: dict[str, Any]
    via: str = "mqtt"
    ok: bool = False

    def params(self) -> tuple[str, str, str, str, bool, str]:
        detail = {k: _pg_text(v) if isinstance(v, str) else v for k, v in self.detail.items()}
        text = json.dumps(detail, ensure_ascii=False, default=str)
        return (
            _pg_text(self.actor)[:200],
            self.via,
            self.action[:100],
            _pg_text(self.object_)[:500],
            self.ok,
            text if len(text) < 20_000 else "{}",
        )


def _pg_text(text: str) -> str:
    """``text`` as PostgreSQL's text and jsonb take it: a NUL character or a lone surrogate escaped."""
    return text.replace("\0", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def append_audit(conn: psycopg.Connection, rows: list[AuditRow]) -> None:
    """``rows`` appended to ``cim.audit`` in one transaction."""
    if not rows:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(AUDIT_INSERT, [row.params() for row in rows])
