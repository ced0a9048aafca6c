"""BIM import speed and memory per shared IFC model, beside the floor: ifcopenshell's
bare geometry iterator over the same file, same settings, in the same run.

    .venv/bin/python -m bench.bench_bim

Both run in their own process (peak memory is each process's own). Ours is
`cim import bim` end to end: read + triangulate (the same iterator, all
cores), properties, georeference, PostGIS element and outline layers, tiles.
"""

from __future__ import annotations

import os
import sys

from bench.common import VENV_BIN, bench_settings, run
from cim.db import database_url

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ifc")
MODELS = [
    ("AC20-FZK-Haus.ifc", []),
    ("duplex.ifc", []),
    ("IfcOpenHouse_IFC4.ifc", ["--anchor", "114.0553,22.5333,0,30"]),
    ("bsi43_geographic-referencing-gk.ifc", []),
]
FLOOR = """
import multiprocessing, sys, ifcopenshell, ifcopenshell.geom
from import_scripts.bim.reader import EXCLUDED_CLASSES
s = ifcopenshell.geom.settings()  # as the importer: local coordinates, repeats triangulated once
m = ifcopenshell.open(sys.argv[1])
it = ifcopenshell.geom.iterator(s, m, multiprocessing.cpu_count(), exclude=list(EXCLUDED_CLASSES))
n = 0
if it.initialize():
    while True:
        n += 1
        if not it.next(): break
print(n)
"""


def main() -> None:
    settings = bench_settings()
    database_url(settings)
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), COLUMNS="200")
    print(
        f"{'model':<40}{'elements':>9}{'floor s':>9}{'ours s':>9}{'ratio':>7}{'el/s':>8}{'floor MB':>10}{'ours MB':>9}"
    )
    for file, extra in MODELS:
        path = os.path.abspath(os.path.join(SHARED, file))
        floor_s, floor_mb, out = run([sys.executable, "-c", FLOOR, path], env)
        n = int(out.strip().splitlines()[-1])
        name = "bench_" + file.split(".")[0].lower().replace("-", "_")[:30]
        ours_s, ours_mb, _ = run([str(VENV_BIN / "cim"), "import", "bim", path, "--name", name, *extra], env)
        print(
            f"{file:<40}{n:>9}{floor_s:>9.2f}{ours_s:>9.2f}{ours_s / floor_s:>6.2f}x{n / ours_s:>8.0f}"
            f"{floor_mb:>10.0f}{ours_mb:>9.0f}"
        )


if __name__ == "__main__":
    main()
