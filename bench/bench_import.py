"""Import speed of the full Futian sample, layer by layer, beside GDAL's
ogr2ogr (PostgreSQL driver, COPY mode) loading the same files into the same
PostGIS in the same run.

    .venv/bin/python -m bench.bench_import [--scale full|small]

Ours includes what ogr2ogr does not: CRS checks, geometry repair, the
staging swap, and the spatial join placing every row in its grid
(进格入块); both build a GiST index.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import time
from urllib.parse import urlparse

from bench.common import bench_settings, ensure_apt, full_sample
from cim.cluster import LocalCluster
from cim.crs import Datum
from cim.db import database_url
from cim.demo import BOUNDARY_GCJ02, SAMPLE_LAYERS
from import_scripts.layer import LayerImporter, LayerOptions


def ogr2ogr(url: str, path, table: str) -> float:
    u = urlparse(url)
    pg = f"PG:host={u.hostname} port={u.port} dbname={u.path.lstrip('/')} user={u.username} password={u.password}"
    t0 = time.perf_counter()
    subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            pg,
            str(path),
            "-nln",
            f"ogr_bench.{table}",
            "-overwrite",
            "-lco",
            "GEOMETRY_NAME=geom",
            "-lco",
            "SPATIAL_INDEX=GIST",
            "-t_srs",
            "EPSG:4326",
            "-nlt",
            "PROMOTE_TO_MULTI",
            "--config",
            "PG_USE_COPY",
            "YES",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="full")
    args = parser.parse_args()
    ensure_apt("gdal-bin")
    settings = bench_settings()
    if settings.uses_local_cluster:
        LocalCluster(settings).up()
    url = database_url(settings)
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS ogr_bench")
    t0 = time.perf_counter()
    folder = full_sample(args.scale)
    print(f"sample ({args.scale}) ready in {time.perf_counter() - t0:.1f} s: {folder}")
    LayerImporter(settings, BOUNDARY_GCJ02, "futian_boundary", LayerOptions(datum=Datum.gcj02, grid_join=False)).run()
    print(f"{'layer':<14}{'rows':>9}{'type':>14}{'ours s':>9}{'rows/s':>10}{'ogr2ogr s':>11}{'rows/s':>10}{'ratio':>7}")
    total_ours = total_ogr = 0.0
    for layer in SAMPLE_LAYERS:  # all as plain layers here: bench_buildings measures the tiles
        path = folder / f"{layer.name}.gpkg"
        options = LayerOptions(title=layer.title, grid_join=layer.grid_join)
        report = LayerImporter(settings, path, layer.name, options).run()
        peer = ogr2ogr(url, path, layer.name)
        total_ours += report.seconds
        total_ogr += peer
        n = report.feature_count
        print(
            f"{layer.name:<14}{n:>9,}{report.geometry_type:>14}{report.seconds:>9.2f}{n / report.seconds:>10,.0f}"
            f"{peer:>11.2f}{n / peer:>10,.0f}{peer / report.seconds:>7.2f}x"
        )
    print(f"{'total':<37}{total_ours:>9.2f}{'':>10}{total_ogr:>11.2f}{'':>10}{total_ogr / total_ours:>7.2f}x")
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
