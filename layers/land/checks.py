"""The parcel checks, in PostGIS: figures per parcel, findings with their
evidence, changes between survey epochs (the rules: :mod:`layers.land.rules`).

One check runs in one transaction: the parcels are read and checked (bad
ones are reported and skipped), the buildings of every buildings layer are
measured on a local projection in a temporary table, and the results of the
parcels layer are replaced whole; findings are matched with those of the
previous check so that their follow-up states carry over
(:mod:`layers.land.followup`).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cim.errors import InputError
from layers.catalogue import LayerInfo, find_layer, get_layer
from layers.land.epochs import compare_epochs
from layers.land.followup import record_findings
from layers.land.rules import COMPLETED, KINDS, PROTECTED, Thresholds
from layers.land.schema import SCHEMA, ensure_land_schema

#: the parcel fields a check reads (canonical name -> what it holds); ``--fields use=YDXZ,...`` maps others
PARCEL_FIELDS = {
    "parcel_id": "宗地编号",
    "use": "用地性质",
    "approved_far": "容积率上限",
    "coverage": "建筑密度上限 (0-1)",
    "height_limit": "限高 (m)",
    "approval_date": "批准日期",
    "start_deadline": "约定开工日期",
    "completion_deadline": "约定竣工日期",
    "status": "状态",
}
_NUMBERS = ("approved_far", "coverage", "height_limit")
_DATES = ("approval_date", "start_deadline", "completion_deadline")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
_REPORTED = 20  # skipped parcels and bad values named in the summary (all of them are counted)


@dataclass(frozen=True)
class CheckOptions:
    parcels: str
    buildings: tuple[str, ...]
    epoch: str | None = None
    as_of: dt.date | None = None
    #: canonical field -> the parcels layer's column, where the names differ
    fields: dict[str, str] = field(default_factory=dict)
    #: finding kind (on_farmland, ...) -> the protected layer; None: the default name, if that layer exists
    protected: dict[str, str | None] = field(default_factory=dict)
    #: layers whose land needs no parcel (roads, public land, existing construction land)
    exempt: tuple[str, ...] = ()
    #: check this parcel only (the others and the unapproved buildings are left as they are)
    parcel_id: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    actor: str = "cli"


@dataclass
class CheckResult:
    run_id: int
    parcels_layer: str
    checked: int
    skipped: list[str]
    skipped_count: int
    notes: list[str]
    findings: dict[str, int]  # open findings by kind
    verdicts: dict[str, int]
    by_street: list[tuple[str, int, int, int]]  # street, parcels, 预警, 违规
    changes: dict[str, int]
    previous_epoch: str | None
    closed: int
    seconds: float


Progress = Callable[[str], None]


def local_srid(lon: float, lat: float) -> int:
    """A metric projection for figures near (lon, lat): the CGCS2000 3-degree
    Gauss-Krüger zone (EPSG:4534-4554, with false easting only) inside China,
    else the UTM zone."""
    if 73.5 <= lon <= 136.5 and 15 <= lat <= 55:
        return 4534 + round(lon / 3) - 25
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def parse_date(text: str | None) -> dt.date | None:
    """A date as parcels hold it (``2021-01-18``, ``2021/1/18``, ``20210118``, ``2021年1月18日``);
    None for an empty value; ValueError for anything else."""
    if text is None or not str(text).strip():
        return None
    value = str(text).strip()[:20]
    value = re.sub(r"[T ].*$", "", value) if re.match(r"^\d{4}-\d{2}-\d{2}[T ]", value) else value
    for pattern in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date")


def _number(text: str | None) -> float | None:
    if text is None or not str(text).strip():
        return None
    value = float(str(text).strip()[:40])
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError(f"{text!r} is not a non-negative number")
    return value


def _mapped(options: CheckOptions, layer: LayerInfo) -> dict[str, str | None]:
    """Canonical field -> column of the parcels layer (None: absent, optional)."""
    unknown = sorted(set(options.fields) - set(PARCEL_FIELDS))
    if unknown:
        shown = ", ".join(unknown)
        raise InputError("--fields", f"no parcel field {shown}", hint=f"fields: {', '.join(PARCEL_FIELDS)}")
    columns = {k: options.fields.get(k, k) for k in PARCEL_FIELDS}
    missing = [k for k, c in columns.items() if c not in layer.columns and k not in ("status", "use")]
    if missing:
        shown = ", ".join(f"{k} (looked for {columns[k]!r})" if columns[k] != k else k for k in missing)
        raise InputError(
            options.parcels,
            f"parcels layer {options.parcels!r} lacks the fields {shown}",
            hint="map its own names with --fields " + ",".join(f"{k}=COLUMN" for k in missing),
        )
    return {k: (c if c in layer.columns else None) for k, c in columns.items()}


def _layers(conn: psycopg.Connection, names: Sequence[str], what: str) -> list[LayerInfo]:
    found = []
    for name in names:
        layer = get_layer(conn, name)
        if layer.geometry_type not in ("Polygon", "MultiPolygon"):
            raise InputError(what, f"layer {name!r} holds {layer.geometry_type}s, not polygons")
        found.append(layer)
    return found


def _protected_layers(conn: psycopg.Connection, options: CheckOptions) -> dict[str, LayerInfo]:
    out = {}
    for kind, default in PROTECTED.items():
        given = options.protected.get(kind)
        name = default if given is None else given
        if not name:
            continue
        layer = find_layer(conn, name)
        if layer is None:
            if given:
                get_layer(conn, name)  # names the missing layer
            continue
        out[kind] = _layers(conn, [name], f"--{default.replace('_', '-')}")[0]
    return out


def _load_parcels(
    conn: psycopg.Connection, layer: LayerInfo, columns: dict[str, str | None], options: CheckOptions, srid: int
) -> tuple[int, list[str], int, list[str]]:
    """The parcels into the temporary table ``_p``: (loaded, skipped (first few), skipped count, notes)."""
    table = sql.Identifier(layer.table_schema, layer.table_name)
    picks = sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(c)) if c else sql.SQL("NULL::text") for c in columns.values()
    )
    placed = [c for c in ("street", "community", "grid") if c in layer.columns]
    place = sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(c)) if c in placed else sql.SQL("NULL::text")
        for c in ("street", "community", "grid")
    )
    # one parcel: with its neighbours, that the buildings crossing its line may belong to (about 500 m around)
    where = sql.SQL("WHERE geom && (SELECT ST_Expand(s.geom, 0.005) FROM {} s WHERE s.{}::text = %s LIMIT 1)").format(
        table, sql.Identifier(columns["parcel_id"] or "parcel_id")
    )
    rows = conn.execute(
        sql.SQL(
            "SELECT fid, {picks}, {place}, geom IS NULL OR ST_IsEmpty(geom), ST_IsValid(geom), "
            "ST_Area(ST_Transform(ST_MakeValid(geom), %s)) FROM {table} {where} ORDER BY fid"
        ).format(picks=picks, place=place, table=table, where=where if options.parcel_id else sql.SQL("")),
        (srid, options.parcel_id) if options.parcel_id else (srid,),
    ).fetchall()
    if options.parcel_id and not any((r[1] or "").strip() == options.parcel_id for r in rows):
        raise InputError(options.parcels, f"has no parcel {options.parcel_id!r}")
    skipped: list[str] = []
    notes: list[str] = []
    count = 0
    seen: set[str] = set()
    good = []
    for fid, *values in rows:
        record = dict(zip(columns, values[: len(columns)]))
        street, community, grid, empty, valid, area = values[len(columns) :]
        pid = (record["parcel_id"] or "").strip()[:100]
        problem = (
            "no parcel_id"
            if not pid
            else f"parcel_id {pid!r} again (the first one is checked)"
            if pid in seen
            else "no geometry"
            if empty
            else "a polygon of no area"
            if not area or area < 0.01
            else None
        )
        if problem:
            count += 1
            if len(skipped) < _REPORTED:
                skipped.append(f"record {fid}: {problem}")
            continue
        seen.add(pid)
        if not valid:
            notes.append(f"parcel {pid} (record {fid}): invalid polygon, checked as repaired (ST_MakeValid)")
        parsed: dict[str, object] = {}
        for name in _NUMBERS + _DATES:
            try:
                parsed[name] = (_number if name in _NUMBERS else parse_date)(record[name])
            except ValueError as exc:
                parsed[name] = None
                notes.append(f"parcel {pid} (record {fid}): {columns[name]} {exc}; that rule is not checked")
        figures = [parsed[n] for n in _NUMBERS + _DATES]
        good.append((fid, pid, (record["use"] or "")[:100], *figures, record["status"], street, community, grid))
    conn.execute(
        """CREATE TEMP TABLE _p (fid bigint, parcel_id text, use text, approved_far float8, coverage_limit float8,
             height_limit float8, approval_date date, start_deadline date, completion_deadline date, status text,
             street text, community text, grid text, geom geometry, pg geometry, area float8) ON COMMIT DROP"""
    )
    with conn.cursor().copy(
        "COPY _p (fid, parcel_id, use, approved_far, coverage_limit, height_limit, approval_date, start_deadline, "
        "completion_deadline, status, street, community, grid) FROM STDIN"
    ) as copy:
        for row in good:
            copy.write_row(row)
    conn.execute(
        sql.SQL(
            "UPDATE _p SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid(t.geom), 3)) "
            "FROM {} t WHERE t.fid = _p.fid"
        ).format(table)
    )
    conn.execute("UPDATE _p SET pg = ST_Transform(geom, %s)", (srid,))
    conn.execute("UPDATE _p SET area = ST_Area(pg)")
    conn.execute("CREATE INDEX ON _p USING gist (geom)")
    conn.execute("ANALYZE _p")
    return len(good), skipped, count, notes


def _load_buildings(
    conn: psycopg.Connection, layers: Sequence[LayerInfo], srid: int, t: Thresholds, *, single: bool = False
) -> int:
    """Every building of ``layers`` into ``_b``: key (its ``id``, else its fid), height, floors, local footprint;
    ``single``: only those around the parcels read (one parcel and its neighbours)."""
    conn.execute(
        """CREATE TEMP TABLE _b (layer text, fid bigint, key text, name text, height float8, floors int,
             street text, community text, grid text, geom geometry, bg geometry, area float8) ON COMMIT DROP"""
    )
    for layer in layers:
        cols = layer.columns
        if "height" not in cols and "floors" not in cols:
            raise InputError(layer.name, "a buildings layer needs a height or floors column")

        def col(name: str, cast: str = "text", cols: dict[str, str] = cols) -> sql.Composable:
            if name not in cols:
                return sql.SQL("NULL")
            return sql.SQL("t.{}::{}").format(sql.Identifier(name), sql.SQL(cast))

        floors = sql.SQL(
            "CASE WHEN {f} > 0 AND {f} < 500 THEN {f} ELSE round(coalesce({h}, 0) / %(fh)s)::int END"
        ).format(f=col("floors", "numeric::int"), h=col("height", "float8"))
        height = sql.SQL("coalesce({}, {} * %(fh)s)").format(col("height", "float8"), col("floors", "float8"))
        conn.execute(
            sql.SQL(
                """INSERT INTO _b (layer, fid, key, name, height, floors, street, community, grid, geom)
                   SELECT %(layer)s, t.fid, coalesce({key}, t.fid::text), left({name}, 100), {height}, {floors},
                          {street}, {community}, {grid}, t.geom
                   FROM {table} t WHERE t.geom IS NOT NULL AND NOT ST_IsEmpty(t.geom) {near}"""
            ).format(
                key=col("id"),
                name=col("name"),
                height=height,
                floors=floors,
                street=col("street"),
                community=col("community"),
                grid=col("grid"),
                table=sql.Identifier(layer.table_schema, layer.table_name),
                near=sql.SQL("AND t.geom && (SELECT ST_Extent(geom) FROM _p)" if single else ""),
            ),
            {"layer": layer.name, "fh": t.floor_height_m},
        )
    conn.execute("UPDATE _b SET bg = ST_Transform(geom, %s)", (srid,))
    conn.execute("UPDATE _b SET area = ST_Area(bg)")
    conn.execute("CREATE INDEX ON _b USING gist (geom)")
    conn.execute("CREATE INDEX ON _b (layer, fid)")
    if not single:  # (a few hundred rows around one parcel: the planner's guesses are as good)
        conn.execute("ANALYZE _b")
    row = conn.execute("SELECT count(*) FROM _b").fetchone()
    return int(row[0]) if row else 0


#: the buildings on each parcel (by more than overlap_min_m2), and each building's home parcel (most of it)
_PAIRS = (
    """CREATE TEMP TABLE _pb ON COMMIT DROP AS
       SELECT * FROM (SELECT p.parcel_id, b.layer, b.fid, b.key, b.name, b.height, b.floors, b.area,
                             CASE WHEN ST_Covers(p.pg, b.bg) THEN b.area
                                  ELSE ST_Area(ST_Intersection(p.pg, b.bg)) END AS inside, false AS home
                      FROM _p p JOIN _b b ON ST_Intersects(p.geom, b.geom)) x
       WHERE inside > %(min)s""",
    """UPDATE _pb SET home = true
       FROM (SELECT DISTINCT ON (layer, fid) layer, fid, parcel_id FROM _pb
             ORDER BY layer, fid, inside DESC, parcel_id) h
       WHERE h.layer = _pb.layer AND h.fid = _pb.fid AND h.parcel_id = _pb.parcel_id""",
    "CREATE INDEX ON _pb (parcel_id)",
    "ANALYZE _pb",
)

_FIGURES = """
CREATE TEMP TABLE _f ON COMMIT DROP AS
SELECT p.parcel_id, p.area,
       coalesce(sum(pb.inside), 0) AS footprint,
       coalesce(sum(pb.inside * pb.floors), 0) AS floor_area,
       max(pb.height) AS max_height,
       count(pb.fid)::int AS buildings
FROM _p p LEFT JOIN _pb pb ON pb.parcel_id = p.parcel_id
GROUP BY p.parcel_id, p.area;
"""


def _building_json(alias: str, extra: str = "") -> str:
    return (
        f"jsonb_build_object('layer', {alias}.layer, 'fid', {alias}.fid, 'id', {alias}.key, 'name', {alias}.name, "
        f"'height', round({alias}.height::numeric, 2), 'floors', {alias}.floors, "
        f"'inside_m2', round({alias}.inside::numeric, 2), "
        f"'outside_m2', round(greatest({alias}.area - {alias}.inside, 0)::numeric, 2){extra})"
    )


#: parcel findings: (kind, SQL giving parcel_id + evidence for each parcel where it holds)
def _parcel_findings(t: Thresholds) -> list[tuple[str, str]]:
    b = _building_json("pb")
    return [
        (
            "far_exceeded",
            f"""SELECT p.parcel_id, jsonb_build_object(
                  'value', round((f.floor_area / p.area)::numeric, 3), 'limit', p.approved_far,
                  'floor_area_m2', round(f.floor_area::numeric, 1), 'parcel_area_m2', round(p.area::numeric, 1),
                  'buildings', (SELECT jsonb_agg({b} ORDER BY pb.inside DESC) FROM _pb pb
                                WHERE pb.parcel_id = p.parcel_id))
                FROM _p p JOIN _f f USING (parcel_id)
                WHERE p.approved_far IS NOT NULL AND f.floor_area / p.area > p.approved_far + {t.far_tolerance}""",
        ),
        (
            "coverage_exceeded",
            f"""SELECT p.parcel_id, jsonb_build_object(
                  'value', round((f.footprint / p.area)::numeric, 4), 'limit', p.coverage_limit,
                  'footprint_area_m2', round(f.footprint::numeric, 1), 'parcel_area_m2', round(p.area::numeric, 1),
                  'buildings', (SELECT jsonb_agg({b} ORDER BY pb.inside DESC) FROM _pb pb
                                WHERE pb.parcel_id = p.parcel_id))
                FROM _p p JOIN _f f USING (parcel_id)
                WHERE p.coverage_limit IS NOT NULL
                  AND f.footprint / p.area > p.coverage_limit + {t.coverage_tolerance}""",
        ),
        (
            "height_exceeded",
            f"""SELECT p.parcel_id, jsonb_build_object(
                  'value', round(f.max_height::numeric, 2), 'limit', p.height_limit, 'unit', 'm',
                  'buildings', (SELECT jsonb_agg({b} ORDER BY pb.height DESC) FROM _pb pb
                                WHERE pb.parcel_id = p.parcel_id
                                  AND pb.height > p.height_limit + {t.height_tolerance_m}))
                FROM _p p JOIN _f f USING (parcel_id)
                WHERE p.height_limit IS NOT NULL AND f.max_height > p.height_limit + {t.height_tolerance_m}""",
        ),
        (
            "outside_parcel",
            f"""SELECT pb.parcel_id, jsonb_build_object(
                  'value', round(sum(pb.area - pb.inside)::numeric, 2), 'limit', {t.outside_min_m2}, 'unit', 'm2',
                  'buildings', jsonb_agg({b} ORDER BY pb.area - pb.inside DESC))
                FROM _pb pb WHERE pb.home AND pb.area - pb.inside > {t.outside_min_m2}
                GROUP BY pb.parcel_id""",
        ),
        (
            "idle",
            f"""SELECT p.parcel_id, jsonb_build_object(
                  'start_deadline', p.start_deadline, 'idle_since', p.start_deadline + {t.idle_after_days},
                  'days', %(as_of)s::date - p.start_deadline, 'limit', {t.idle_after_days}, 'unit', 'd')
                FROM _p p JOIN _f f USING (parcel_id)
                WHERE f.buildings = 0 AND p.start_deadline IS NOT NULL
                  AND %(as_of)s::date > p.start_deadline + {t.idle_after_days}
                  AND lower(coalesce(trim(p.status), '')) <> ALL(%(completed)s)""",
        ),
        (
            "overdue_completion",
            """SELECT p.parcel_id, jsonb_build_object(
                  'completion_deadline', p.completion_deadline, 'status', p.status,
                  'value', %(as_of)s::date - p.completion_deadline, 'limit', 0, 'unit', 'd')
                FROM _p p
                WHERE p.completion_deadline IS NOT NULL AND %(as_of)s::date > p.completion_deadline
                  AND lower(coalesce(trim(p.status), '')) <> ALL(%(completed)s)""",
        ),
    ]


def _protected_finding(conn: psycopg.Connection, layer: LayerInfo, t: Thresholds) -> str:
    """Buildings of a parcel (their home parcel) on a protected layer by more than overlap_min_m2."""
    table = sql.Identifier(layer.table_schema, layer.table_name).as_string(conn)
    code = "z.code::text" if "code" in layer.columns else "z.fid::text"
    name = "z.name::text" if "name" in layer.columns else "NULL"
    b = _building_json("o", ", 'overlap_m2', round(o.overlap::numeric, 2), 'features', o.features")
    return f"""
        WITH o AS (
          SELECT pb.*, sum(ST_Area(ST_Intersection(b.bg, ST_Transform(z.geom, %(srid)s)))) AS overlap,
                 jsonb_agg(DISTINCT jsonb_build_object('code', {code}, 'name', {name})) AS features
          FROM _pb pb JOIN _b b ON b.layer = pb.layer AND b.fid = pb.fid
          JOIN {table} z ON ST_Intersects(z.geom, b.geom)
          WHERE pb.home GROUP BY pb.parcel_id, pb.layer, pb.fid, pb.key, pb.name, pb.height, pb.floors, pb.area,
                                 pb.inside, pb.home)
        SELECT o.parcel_id, jsonb_build_object('layer', %(zone)s::text, 'value', round(sum(o.overlap)::numeric, 2),
                 'limit', {t.overlap_min_m2}, 'unit', 'm2', 'buildings', jsonb_agg({b} ORDER BY o.overlap DESC))
        FROM o WHERE o.overlap > {t.overlap_min_m2} GROUP BY o.parcel_id"""


def _load_exempt(conn: psycopg.Connection, exempt: Sequence[LayerInfo], srid: int) -> None:
    """The exempt layers' polygons into ``_x``, projected once (not once per building they hold)."""
    conn.execute("CREATE TEMP TABLE _x (geom geometry, xg geometry) ON COMMIT DROP")
    for e in exempt:
        conn.execute(
            sql.SQL(
                "INSERT INTO _x SELECT geom, ST_Transform(geom, %s) FROM {} "
                "WHERE geom IS NOT NULL AND geom && (SELECT ST_Extent(geom) FROM _b)"
            ).format(sql.Identifier(e.table_schema, e.table_name)),
            (srid,),
        )
    conn.execute("CREATE INDEX ON _x USING gist (geom)")


def _unapproved(t: Thresholds) -> str:
    """Buildings on no approved parcel (by more than overlap_min_m2) and on no exempt land (``_x``)."""
    b = (
        "jsonb_build_object('layer', b.layer, 'fid', b.fid, 'id', b.key, 'name', b.name, "
        "'height', round(b.height::numeric, 2), 'floors', b.floors, 'area_m2', round(b.area::numeric, 2))"
    )
    return f"""
        SELECT b.layer || ':' || b.key, jsonb_build_object('value', round(b.area::numeric, 2), 'unit', 'm2',
                 'buildings', jsonb_build_array({b})), b.street, b.community, b.grid, ST_PointOnSurface(b.geom)
        FROM _b b
        WHERE NOT EXISTS (SELECT 1 FROM _pb pb JOIN _p p USING (parcel_id)
                          WHERE pb.layer = b.layer AND pb.fid = b.fid AND p.approval_date IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM _x x WHERE ST_Intersects(x.geom, b.geom)
                            AND (ST_Covers(x.xg, b.bg) OR ST_Area(ST_Intersection(x.xg, b.bg)) > {t.overlap_min_m2}))"""


def _write_parcels(conn: psycopg.Connection, layer: str, run_id: int, single: str | None) -> None:
    scope = "AND parcel_id = %(single)s" if single else ""
    params = {"layer": layer, "run": run_id, "single": single}
    conn.execute(f"DELETE FROM {SCHEMA}.parcels WHERE parcels_layer = %(layer)s {scope}", params)
    conn.execute(f"DELETE FROM {SCHEMA}.parcel_buildings WHERE parcels_layer = %(layer)s {scope}", params)
    conn.execute(
        f"""INSERT INTO {SCHEMA}.parcels (parcels_layer, parcel_id, fid, use, street, community, grid, area_m2,
              footprint_area, floor_area, far, coverage, max_height, building_count, approved_far, coverage_limit,
              height_limit, approval_date, start_deadline, completion_deadline, status, verdict, run_id, geom)
            SELECT %(layer)s, p.parcel_id, p.fid, p.use, p.street, p.community, p.grid, p.area, f.footprint,
                   f.floor_area, f.floor_area / p.area, f.footprint / p.area, f.max_height, f.buildings,
                   p.approved_far, p.coverage_limit, p.height_limit, p.approval_date, p.start_deadline,
                   p.completion_deadline, p.status, '合规', %(run)s, p.geom
            FROM _p p JOIN _f f USING (parcel_id) WHERE %(single)s::text IS NULL OR p.parcel_id = %(single)s""",
        params,
    )
    conn.execute(
        f"""INSERT INTO {SCHEMA}.parcel_buildings (parcels_layer, parcel_id, layer, fid, key, name, height, floors,
              inside_m2, outside_m2, home, geom)
            SELECT %(layer)s, pb.parcel_id, pb.layer, pb.fid, pb.key, pb.name, pb.height, pb.floors, pb.inside,
                   greatest(pb.area - pb.inside, 0), pb.home, b.geom
            FROM _pb pb JOIN _b b ON b.layer = pb.layer AND b.fid = pb.fid
            WHERE %(single)s::text IS NULL OR pb.parcel_id = %(single)s""",
        params,
    )


def run_check(conn: psycopg.Connection, options: CheckOptions, progress: Progress | None = None) -> CheckResult:
    """Check the parcels of ``options.parcels`` against ``options.buildings``; results replace the previous ones."""
    t0 = time.perf_counter()
    say = progress or (lambda _: None)
    t = options.thresholds
    as_of = options.as_of or dt.date.today()
    ensure_land_schema(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cim.land.{options.parcels}",))
        # dropped at commit; when the caller holds a transaction open, by the next check
        conn.execute("DROP TABLE IF EXISTS _p, _b, _pb, _f, _found, _m, _prev, _x")
        parcels = _layers(conn, [options.parcels], "--parcels")[0]
        columns = _mapped(options, parcels)
        if not options.buildings:
            raise InputError("--buildings", "name at least one buildings layer")
        buildings = _layers(conn, options.buildings, "--buildings")
        protected = _protected_layers(conn, options)
        exempt = _layers(conn, options.exempt, "--exempt")
        west, south, east, north = parcels.bbox
        srid = local_srid((west + east) / 2, (south + north) / 2)
        say("reading parcels")
        loaded, skipped, skipped_count, notes = _load_parcels(conn, parcels, columns, options, srid)
        say("measuring buildings")
        _load_buildings(conn, buildings, srid, t, single=options.parcel_id is not None)
        say("overlaying")
        for statement in _PAIRS:
            conn.execute(statement, {"min": t.overlap_min_m2} if "%(min)s" in statement else None)
        conn.execute(_FIGURES)
        run_row = conn.execute(
            f"""INSERT INTO {SCHEMA}.runs (parcels_layer, buildings_layers, epoch, as_of, actor, options)
                VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                options.parcels,
                list(options.buildings),
                options.epoch,
                as_of,
                options.actor[:200],
                Jsonb({"fields": options.fields, "protected": options.protected, "exempt": list(options.exempt)}),
            ),
        ).fetchone()
        assert run_row is not None
        run_id = int(run_row[0])
        say("finding")
        params = {"as_of": as_of, "completed": sorted(COMPLETED), "srid": srid}
        found: list[tuple] = []  # key, parcel_id, kind, evidence, street, community, grid, geom
        for kind, query in _parcel_findings(t):
            for pid, evidence in conn.execute(query, params).fetchall():
                found.append((f"{pid}|{kind}", pid, kind, evidence))
        for kind, zone in protected.items():
            for pid, evidence in conn.execute(_protected_finding(conn, zone, t), {**params, "zone": zone.name}):
                found.append((f"{pid}|{kind}", pid, kind, evidence))
        unapproved = []
        if options.parcel_id is None:
            _load_exempt(conn, exempt, srid)
            unapproved = conn.execute(_unapproved(t), params).fetchall()
        say("writing")
        _write_parcels(conn, options.parcels, run_id, options.parcel_id)
        changes, previous = compare_epochs(conn, options, srid, run_id) if options.epoch else ({}, None)
        closed = record_findings(conn, options.parcels, run_id, found, unapproved, options.parcel_id, options.actor)
        summary = _summary(conn, options.parcels)
        seconds = time.perf_counter() - t0
        conn.execute(
            f"UPDATE {SCHEMA}.runs SET seconds = %s, previous_epoch = %s, summary = %s WHERE id = %s",
            (
                seconds,
                previous,
                Jsonb({"checked": loaded, "skipped": skipped_count, "findings": summary[0], "verdicts": summary[1]}),
                run_id,
            ),
        )
    return CheckResult(
        run_id=run_id,
        parcels_layer=options.parcels,
        checked=1 if options.parcel_id else loaded,  # (its neighbours were read, not checked)
        skipped=skipped,
        skipped_count=skipped_count,
        notes=notes[:_REPORTED] + ([f"... and {len(notes) - _REPORTED} more"] if len(notes) > _REPORTED else []),
        findings=summary[0],
        verdicts=summary[1],
        by_street=summary[2],
        changes=changes,
        previous_epoch=previous,
        closed=closed,
        seconds=seconds,
    )


def _summary(
    conn: psycopg.Connection, layer: str
) -> tuple[dict[str, int], dict[str, int], list[tuple[str, int, int, int]]]:
    findings = dict.fromkeys(KINDS, 0)
    for kind, n in conn.execute(
        f"""SELECT kind, count(*) FROM {SCHEMA}.findings WHERE parcels_layer = %s AND closed_at IS NULL
            AND state <> '误报' GROUP BY kind""",
        (layer,),
    ):
        findings[kind] = int(n)
    verdicts = {
        v: int(n)
        for v, n in conn.execute(
            f"SELECT verdict, count(*) FROM {SCHEMA}.parcels WHERE parcels_layer = %s GROUP BY verdict", (layer,)
        )
    }
    streets = [
        (s or "(未落格)", int(n), int(w), int(v))
        for s, n, w, v in conn.execute(
            f"""SELECT street, count(*), count(*) FILTER (WHERE verdict = '预警'),
                       count(*) FILTER (WHERE verdict = '违规')
                FROM {SCHEMA}.parcels WHERE parcels_layer = %s GROUP BY street ORDER BY street""",
            (layer,),
        )
    ]
    return findings, verdicts, streets


def last_options(
    conn: psycopg.Connection, layer: str, *, parcel_id: str | None, actor: str, thresholds: Thresholds
) -> CheckOptions:
    """The options of the last check of parcels ``layer`` (to re-check one parcel as it was checked)."""
    row = conn.execute(
        f"SELECT buildings_layers, epoch, options FROM {SCHEMA}.runs WHERE parcels_layer = %s ORDER BY id DESC LIMIT 1",
        (layer,),
    ).fetchone()
    if row is None:
        raise InputError("--parcels", f"parcels layer {layer!r} has not been checked yet")
    buildings, epoch, saved = row
    return CheckOptions(
        parcels=layer,
        buildings=tuple(buildings),
        epoch=epoch,
        fields=dict(saved.get("fields") or {}),
        protected=dict(saved.get("protected") or {}),
        exempt=tuple(saved.get("exempt") or ()),
        parcel_id=parcel_id,
        thresholds=thresholds,
        actor=actor,
    )
