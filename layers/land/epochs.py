"""Two survey epochs: the buildings of each epoch are kept (``land.epoch_buildings``)
and a check under an epoch reports, per parcel, what changed since the
previous one (the latest epoch whose label sorts before it: ``2023`` <
``2026``, ``2025-06`` < ``2025-12``): new, demolished, raised, grown.

A building of this epoch matches one of the previous epoch when it has the
same key (``id``) and the same footprint box, else when their footprints
overlap by half of the smaller one (the best overlap wins): survey ids may
differ between epochs, footprints do not move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from layers.land.rules import CHANGES
from layers.land.schema import SCHEMA

if TYPE_CHECKING:
    from layers.land.checks import CheckOptions

#: each building of this epoch and its predecessor: the same key with the same footprint's box
#: (most buildings: a hash join, no geometry computed), else the best overlap of half the smaller
#: footprint (areas in degrees: their ratio is the same in metres at a building's size)
_MATCH = (
    """CREATE TEMP TABLE _m ON COMMIT DROP AS
       SELECT b.layer, b.fid, o.key AS old_key, o.height AS old_height, o.area AS old_area
       FROM _b b JOIN _prev o ON o.key = b.key AND o.geom ~= b.geom""",
    "CREATE INDEX ON _m (layer, fid)",
    """INSERT INTO _m
       SELECT DISTINCT ON (x.layer, x.fid) x.layer, x.fid, x.key, x.height, x.area FROM (
         SELECT b.layer, b.fid, o.key, o.height, o.area,
                ST_Area(ST_Intersection(b.geom, o.geom)) / nullif(least(ST_Area(b.geom), ST_Area(o.geom)), 0) AS share
         FROM _b b JOIN _prev o ON ST_Intersects(b.geom, o.geom)
         WHERE NOT EXISTS (SELECT 1 FROM _m m WHERE m.layer = b.layer AND m.fid = b.fid)
           AND NOT EXISTS (SELECT 1 FROM _m m WHERE m.old_key = o.key)) x
       WHERE x.share >= 0.5
       ORDER BY x.layer, x.fid, x.share DESC""",
    "CREATE INDEX ON _m (old_key)",
)

_BUILDING = "jsonb_build_object('height', round({h}::numeric, 2), 'area_m2', round({a}::numeric, 2))"

_CHANGES = f"""
INSERT INTO {SCHEMA}.changes (parcels_layer, parcel_id, kind, layer, key, name, before, after, epoch_from, epoch_to)
SELECT %(layer)s, pb.parcel_id, c.kind, b.layer, b.key, b.name, c.before, c.after, %(prev)s, %(epoch)s
FROM _b b JOIN _pb pb ON pb.layer = b.layer AND pb.fid = b.fid AND pb.home
LEFT JOIN _m m ON m.layer = b.layer AND m.fid = b.fid
CROSS JOIN LATERAL (VALUES
    ('new', NULL::jsonb, {_BUILDING.format(h="b.height", a="b.area")}, m.fid IS NULL),
    ('raised', {_BUILDING.format(h="m.old_height", a="m.old_area")}, {_BUILDING.format(h="b.height", a="b.area")},
     m.fid IS NOT NULL AND b.height - m.old_height >= %(raised)s),
    ('grown', {_BUILDING.format(h="m.old_height", a="m.old_area")}, {_BUILDING.format(h="b.height", a="b.area")},
     m.fid IS NOT NULL AND b.area - m.old_area > %(grown)s)
) AS c(kind, before, after, holds)
WHERE (m.fid IS NULL OR b.height - m.old_height >= %(raised)s OR b.area - m.old_area > %(grown)s)
  AND c.holds AND (%(single)s::text IS NULL OR pb.parcel_id = %(single)s)
UNION ALL
SELECT DISTINCT ON (o.key) %(layer)s, p.parcel_id, 'demolished', o.layer, o.key, o.name,
       {_BUILDING.format(h="o.height", a="o.area")}, NULL, %(prev)s, %(epoch)s
FROM _prev o JOIN _p p ON ST_Intersects(p.geom, o.geom)
WHERE NOT EXISTS (SELECT 1 FROM _m m WHERE m.old_key = o.key)
  AND ST_Area(ST_Intersection(p.pg, ST_Transform(o.geom, %(srid)s))) > %(min)s
  AND (%(single)s::text IS NULL OR p.parcel_id = %(single)s)
ORDER BY 8, 2
"""


def previous_epoch(conn: psycopg.Connection, epoch: str) -> str | None:
    row = conn.execute(
        f"SELECT epoch FROM {SCHEMA}.epochs WHERE epoch < %s ORDER BY epoch DESC LIMIT 1", (epoch,)
    ).fetchone()
    return row[0] if row else None


def record_epoch(conn: psycopg.Connection, epoch: str, layers: list[str]) -> None:
    """This check's buildings (``_b``) become epoch ``epoch``'s, replacing what it held."""
    conn.execute(
        f"""INSERT INTO {SCHEMA}.epochs (epoch, layers) VALUES (%s, %s)
            ON CONFLICT (epoch) DO UPDATE SET layers = EXCLUDED.layers, recorded_at = now()""",
        (epoch, layers),
    )
    conn.execute(f"DELETE FROM {SCHEMA}.epoch_buildings WHERE epoch = %s", (epoch,))
    conn.execute(
        f"""INSERT INTO {SCHEMA}.epoch_buildings (epoch, layer, key, name, height, floors, area_m2, geom)
            SELECT %s, layer, key, name, height, floors, area, geom FROM _b""",
        (epoch,),
    )


def compare_epochs(
    conn: psycopg.Connection, options: CheckOptions, srid: int, run_id: int
) -> tuple[dict[str, int], str | None]:
    """Record this epoch (a whole check only) and write the changes since the previous one, per parcel:
    (count by kind, the previous epoch or None)."""
    assert options.epoch is not None
    if options.parcel_id is None:
        record_epoch(conn, options.epoch, list(options.buildings))
    prev = previous_epoch(conn, options.epoch)
    scope = "AND parcel_id = %(single)s" if options.parcel_id else ""
    params = {"layer": options.parcels, "single": options.parcel_id}
    conn.execute(f"DELETE FROM {SCHEMA}.changes WHERE parcels_layer = %(layer)s {scope}", params)
    if prev is None:
        return dict.fromkeys(CHANGES, 0), None
    # one parcel: the previous epoch's buildings around the parcels read (its neighbourhood)
    near = "AND geom && (SELECT ST_Extent(geom) FROM _b)" if options.parcel_id else ""
    conn.execute(
        f"""CREATE TEMP TABLE _prev ON COMMIT DROP AS
            SELECT layer, key, name, height, floors, area_m2 AS area, geom
            FROM {SCHEMA}.epoch_buildings WHERE epoch = %s {near}""",
        (prev,),
    )
    conn.execute("CREATE INDEX ON _prev USING gist (geom)")
    conn.execute("CREATE INDEX ON _prev (key)")
    for statement in _MATCH:
        conn.execute(statement)
    t = options.thresholds
    conn.execute(
        _CHANGES,
        {
            **params,
            "prev": prev,
            "epoch": options.epoch,
            "raised": t.raised_min_m,
            "grown": t.grown_min_m2,
            "min": t.overlap_min_m2,
            "srid": srid,
        },
    )
    conn.execute(
        f"""UPDATE {SCHEMA}.parcels p SET changed = EXISTS (
              SELECT 1 FROM {SCHEMA}.changes c WHERE c.parcels_layer = p.parcels_layer AND c.parcel_id = p.parcel_id)
            WHERE p.parcels_layer = %(layer)s {scope}""",
        params,
    )
    counts = dict.fromkeys(CHANGES, 0)
    for kind, n in conn.execute(
        f"SELECT kind, count(*) FROM {SCHEMA}.changes WHERE parcels_layer = %s GROUP BY kind", (options.parcels,)
    ):
        counts[kind] = int(n)
    return counts, prev
