"""Land supervision on the full Futian sample: ours (PostGIS) beside the same
figures in geopandas (overlay + groupby), in the same run.

    .venv/bin/python -m bench.bench_land [--rounds 3]

Ours: the whole check of the full sample's parcels against its buildings,
epoch 2023 (``buildings``) then epoch 2026 (``buildings_2026``, with the
changes between them); one parcel re-checked (median of 20 parcels); one PDF
report (the parcel's JSON read, then rendered; median of 10).
Peer: geopandas reads the same parcels, buildings and protected layers from
PostGIS (timed apart), projects them to EPSG:4547, overlays parcels with
buildings, sums footprint and floor area per parcel, finds each building's
home parcel and what it has outside, and overlays the buildings with the
protected layers: the figures and the geometric findings, not the dates,
epochs or follow-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time

import geopandas as gpd
import pandas as pd
import shapely

from bench.common import OUT, bench_settings, full_sample
from cim.db import connect
from import_scripts.layer import LayerImporter
from import_scripts.vector import LayerOptions
from layers.land.checks import CheckOptions, run_check
from layers.land.queries import parcel_query
from layers.land.report import parcel_report_pdf

PREFIX = "bl_"
LAYERS = ("grids", "parcels", "buildings", "buildings_2026", "farmland", "forest", "eco_redline", "construction_land")
AS_OF = dt.date(2026, 6, 30)


def import_layers(settings) -> None:
    folder = full_sample()
    for name in LAYERS:
        path = folder / f"{name}.gpkg"
        if path.exists():
            LayerImporter(settings, path, PREFIX + name, LayerOptions(grid_join=name != "grids")).run()


def options(buildings: str, epoch: str, parcel_id: str | None = None) -> CheckOptions:
    return CheckOptions(
        parcels=PREFIX + "parcels",
        buildings=(PREFIX + buildings,),
        epoch=epoch,
        as_of=AS_OF,
        protected={k: PREFIX + v for k, v in {"on_farmland": "farmland", "on_forest": "forest"}.items()}
        | {"on_eco_redline": PREFIX + "eco_redline"},
        exempt=(PREFIX + "construction_land",),
        parcel_id=parcel_id,
        actor="bench",
    )


def ours(settings, rounds: int) -> dict:
    out: dict = {}
    with connect(settings) as conn:
        conn.execute("DROP SCHEMA IF EXISTS land CASCADE")
        conn.commit()
        first = run_check(conn, options("buildings", "2023"))
        conn.commit()
        whole = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            result = run_check(conn, options("buildings_2026", "2026"))
            conn.commit()
            whole.append(time.perf_counter() - t0)
        out["first_s"] = first.seconds
        out["whole_s"] = min(whole)
        out["parcels"] = result.checked
        out["findings"] = result.findings
        out["changes"] = result.changes
        ids = [r[0] for r in conn.execute("SELECT parcel_id FROM land.parcels ORDER BY parcel_id LIMIT 20")]
        single = []
        for pid in ids:
            t0 = time.perf_counter()
            run_check(conn, options("buildings_2026", "2026", pid))
            conn.commit()
            single.append(time.perf_counter() - t0)
        out["single_ms"] = statistics.median(single) * 1000
        out["single_max_ms"] = max(single) * 1000
        worst = conn.execute(
            "SELECT parcel_id FROM land.parcels ORDER BY building_count DESC, parcel_id LIMIT 10"
        ).fetchall()
        reports = []
        for (pid,) in worst:
            t0 = time.perf_counter()
            text = conn.execute(*parcel_query(PREFIX + "parcels", pid)).fetchone()[0]
            parcel_report_pdf(json.loads(text), generated_at=dt.datetime.now().astimezone(), generated_by="bench")
            reports.append(time.perf_counter() - t0)
        out["report_ms"] = statistics.median(reports) * 1000
        out["report_max_ms"] = max(reports) * 1000
        row = conn.execute("SELECT count(*) FROM layers.bl_buildings_2026").fetchone()
        out["buildings"] = int(row[0]) if row else 0
    return out


def _read(conn, query: str) -> gpd.GeoDataFrame:
    """A layer's rows, ``geom`` last, as a GeoDataFrame in EPSG:4326 (WKB through psycopg)."""
    cur = conn.execute(query.replace("geom FROM", "ST_AsBinary(geom) FROM"))
    names = [d.name for d in cur.description][:-1]
    rows = cur.fetchall()
    frame = pd.DataFrame([r[:-1] for r in rows], columns=names)
    return gpd.GeoDataFrame(frame, geometry=shapely.from_wkb([bytes(r[-1]) for r in rows]), crs=4326)


def peer(settings) -> dict:
    t0 = time.perf_counter()
    with connect(settings) as conn:
        parcels = _read(
            conn,
            "SELECT parcel_id, approved_far::float8, coverage::float8, height_limit::float8, geom "
            "FROM layers.bl_parcels",
        )
        buildings = _read(conn, "SELECT fid, height::float8, floors::float8, geom FROM layers.bl_buildings_2026")
        zones = {
            name: _read(conn, f"SELECT fid, geom FROM layers.{PREFIX}{name}")
            for name in ("farmland", "forest", "eco_redline")
        }
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    parcels = parcels.to_crs(4547)
    parcels["parcel_area"] = parcels.area
    buildings = buildings.to_crs(4547)
    buildings["barea"] = buildings.area
    buildings["floors"] = buildings.floors.where(buildings.floors > 0, (buildings.height / 3).round())
    pieces = gpd.overlay(parcels, buildings, how="intersection", keep_geom_type=True)
    pieces["inside"] = pieces.area
    pieces = pieces[pieces.inside > 1.0]
    pieces["floor_area"] = pieces.inside * pieces.floors
    figures = pieces.groupby("parcel_id").agg(
        footprint=("inside", "sum"), floor_area=("floor_area", "sum"), max_height=("height", "max")
    )
    figures = parcels.set_index("parcel_id").join(figures).fillna({"footprint": 0, "floor_area": 0})
    figures["far"] = figures.floor_area / figures.parcel_area
    figures["cov"] = figures.footprint / figures.parcel_area
    far = int((figures["far"] > figures["approved_far"]).sum())
    cov = int((figures["cov"] > figures["coverage"]).sum())  # (GeoDataFrame.coverage is a method)
    height = int((figures["max_height"] > figures["height_limit"]).sum())
    home = pieces.sort_values("inside", ascending=False).drop_duplicates("fid")
    outside = int(((home.barea - home.inside) > 1.0).groupby(home.parcel_id).any().sum())
    on_zone = {}
    homed = buildings.merge(home[["fid", "parcel_id"]], on="fid")
    for name, zone in zones.items():
        hits = gpd.overlay(homed, zone.to_crs(4547), how="intersection", keep_geom_type=True)
        on_zone[name] = int((hits.area.groupby(hits.parcel_id).sum() > 1.0).sum())
    check_s = time.perf_counter() - t0
    return {
        "read_s": read_s,
        "check_s": check_s,
        "far": far,
        "coverage": cov,
        "height": height,
        "outside": outside,
        **on_zone,
        "pieces": len(pieces),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-import", action="store_true", help="the layers are there from an earlier run")
    args = parser.parse_args()
    settings = bench_settings()
    if not args.no_import:
        import_layers(settings)
    a = ours(settings, args.rounds)
    b = peer(settings)
    f = a["findings"]
    whole_peer = f"{b['check_s']:.2f} (+{b['read_s']:.2f} read)"
    rows = [
        ("parcels / buildings (epoch 2026)", f"{a['parcels']:,} / {a['buildings']:,}", ""),
        ("whole check, first epoch (s)", f"{a['first_s']:.2f}", ""),
        ("whole check with changes (s, best of rounds)", f"{a['whole_s']:.2f}", whole_peer),
        ("one parcel re-checked (ms, median / max of 20)", f"{a['single_ms']:.0f} / {a['single_max_ms']:.0f}", ""),
        ("report PDF (ms, median / max of 10 busiest)", f"{a['report_ms']:.0f} / {a['report_max_ms']:.0f}", ""),
        (
            "far / coverage / height exceeded",
            f"{f['far_exceeded']} / {f['coverage_exceeded']} / {f['height_exceeded']}",
            f"{b['far']} / {b['coverage']} / {b['height']}",
        ),
        (
            "outside / farmland / forest / eco red line",
            f"{f['outside_parcel']} / {f['on_farmland']} / {f['on_forest']} / {f['on_eco_redline']}",
            f"{b['outside']} / {b['farmland']} / {b['forest']} / {b['eco_redline']}",
        ),
        ("changes", ", ".join(f"{k} {v}" for k, v in a["changes"].items()), ""),
    ]
    frame = pd.DataFrame(rows, columns=["what", "ours (PostGIS)", "geopandas"])
    print(frame.to_string(index=False))
    print(f"ratio whole check: geopandas / ours = {b['check_s'] / a['whole_s']:.1f}x (without its read)")
    print(json.dumps({"ours": a, "peer": b}, ensure_ascii=False, default=str))
    (OUT / "bench_land.json").write_text(json.dumps({"ours": a, "peer": b}, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
