"""The full Futian buildings (>= 20,000) to 3D Tiles: ours beside py3dtiles.

    .venv/bin/python -m bench.bench_buildings

Ours: `cim import buildings` end to end (read, checks, PostGIS load with
grid placement, tileset with metadata, swap), in its own process. Peer:
`py3dtiles export` from the same PostGIS table, in its own process; it needs
the solids in the table, so they are made first with SFCGAL (ST_Extrude,
timed apart and not counted for the peer) and transformed to ECEF. Peak
memory is each process's own (wait4).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from urllib.parse import urlparse

import psycopg

from bench.common import OUT, VENV_BIN, bench_settings, full_sample, run
from cim.db import database_url


def folder_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    settings = bench_settings()
    url = database_url(settings)
    source = full_sample() / "buildings.gpkg"
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), COLUMNS="200")
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url

    ours_s, ours_mb, out = run(
        [str(VENV_BIN / "cim"), "import", "buildings", str(source), "--name", "bench_buildings"], env
    )
    flat = " ".join(out.split())
    n = int(re.search(r"features\W+([\d,]+) MultiPolygon", flat).group(1).replace(",", ""))
    tiles_s = float(re.search(r"written in ([\d.]+) s", flat).group(1))
    ours_bytes = folder_bytes((settings.tilesets_dir / "bench_buildings").resolve())

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis_sfcgal")
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench_py3dtiles")
        conn.execute("DROP TABLE IF EXISTS bench_py3dtiles.buildings_3d")
        t0 = time.perf_counter()
        conn.execute("""CREATE TABLE bench_py3dtiles.buildings_3d AS
            SELECT fid, ST_Transform((SELECT ST_Collect(d.geom) FROM ST_Dump(
                       ST_Extrude(ST_Force3D(ST_ForcePolygonCCW(geom)), 0, 0, height)) d), 4978) AS geom
            FROM layers.bench_buildings""")
        prep_s = time.perf_counter() - t0
    u = urlparse(url)
    conninfo = f"host={u.hostname} port={u.port} dbname={u.path.lstrip('/')} user={u.username} password={u.password}"
    peer_dir = OUT / "py3dtiles-buildings"
    shutil.rmtree(peer_dir, ignore_errors=True)
    peer_s, peer_mb, _ = run(
        [
            str(VENV_BIN / "py3dtiles"),
            "export",
            "-D",
            conninfo,
            "-t",
            "bench_py3dtiles.buildings_3d",
            "-c",
            "geom",
            "-i",
            "fid",
            "-s",
            str(peer_dir),
        ]
    )
    peer_bytes = folder_bytes(peer_dir)

    print(f"buildings: {n:,} (full Futian sample, {source})")
    print(f"{'':<34}{'seconds':>9}{'buildings/s':>13}{'peak MB':>9}{'bytes/bldg':>12}")
    print(
        f"{'ours: cim import buildings':<34}{ours_s:>9.2f}{n / ours_s:>13,.0f}{ours_mb:>9.0f}{ours_bytes / n:>12,.0f}"
    )
    print(f"{'ours: of which the tileset':<34}{tiles_s:>9.2f}{n / tiles_s:>13,.0f}")
    print(f"{'peer: SFCGAL solids (not counted)':<34}{prep_s:>9.2f}")
    print(f"{'peer: py3dtiles export':<34}{peer_s:>9.2f}{n / peer_s:>13,.0f}{peer_mb:>9.0f}{peer_bytes / n:>12,.0f}")
    print(
        f"throughput ratio ours/py3dtiles: {peer_s / ours_s:.1f}x end to end, "
        f"{peer_s / tiles_s:.1f}x tileset writing alone"
    )


if __name__ == "__main__":
    main()
