"""The full Futian components (500,000 in 103 classes) to PostGIS + an instanced tileset.

    .venv/bin/python -m bench.bench_components

Ours: `cim import components` end to end (read, checks, class codes, models,
PostGIS load with grid placement, instanced 3D Tiles with metadata, swap), in
its own process, with the sample's model files. Peers in the same run:
`cim import layer` of the same file (the PostGIS half alone: what the tileset
adds) and GDAL's `ogr2ogr -f PostgreSQL` (COPY, GiST index, no grid
placement). The published anchor that cannot run here: i3dm.export (.NET,
Geodan) converts 588,094 instances (trees) from PostGIS to i3dm tiles in
43.8 s (its README's benchmark). Peak memory is each process's own (wait4).
"""

from __future__ import annotations

import os
import re

from bench.bench_import import ogr2ogr
from bench.common import VENV_BIN, bench_settings, ensure_apt, full_sample, run
from cim.db import database_url


def folder_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ensure_apt("gdal-bin")
    settings = bench_settings()
    folder = full_sample()
    source = folder / "components.gpkg"
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), COLUMNS="200")
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url
    cim = str(VENV_BIN / "cim")
    rows = []
    for round_ in (1, 2):
        ours_s, ours_mb, out = run(
            [cim, "import", "components", str(source), "--name", "bench_components",
             "--models", str(folder / "component_models")], env,
        )  # fmt: skip
        flat = " ".join(out.split())
        n = int(re.search(r"features\W+([\d,]+) Point", flat).group(1).replace(",", ""))
        tiles_s = float(re.search(r"written in ([\d.]+) s", flat).group(1))
        tileset = (settings.tilesets_dir / "bench_components").resolve()
        layer_s, layer_mb, _ = run([cim, "import", "layer", str(source), "--name", "bench_components_points"], env)
        peer_s = ogr2ogr(database_url(settings), source, "bench_components_ogr")
        rows.append((round_, n, ours_s, ours_mb, tiles_s, folder_bytes(tileset), layer_s, layer_mb, peer_s))
    print(f"components: {n:,} (full Futian sample, {source})")
    print(f"{'round':<6}{'ours s':>8}{'inst/s':>9}{'peak MB':>9}{'tiles s':>9}{'B/inst':>8}"
          f"{'layer s':>9}{'peak MB':>9}{'ogr2ogr s':>11}")  # fmt: skip
    for round_, n, ours_s, ours_mb, tiles_s, size, layer_s, layer_mb, peer_s in rows:
        print(f"{round_:<6}{ours_s:>8.2f}{n / ours_s:>9,.0f}{ours_mb:>9.0f}{tiles_s:>9.2f}{size / n:>8.1f}"
              f"{layer_s:>9.2f}{layer_mb:>9.0f}{peer_s:>11.2f}")  # fmt: skip
    print("anchor: i3dm.export, 588,094 instances in 43.8 s (published; .NET, not run here)")


if __name__ == "__main__":
    main()
