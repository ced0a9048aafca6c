"""Oblique-photography import speed and memory as the production grows, beside
the floor: bare OpenSceneGraph (`osgconv`) reading the same files, in the same run.

    .venv/bin/python -m bench.bench_oblique [--gb 1.0]

Productions of ~0.25, ~0.5 and --gb GB of OSGB are built once under
bench/out/oblique/ from the project's sample (data_samples/oblique/Production_5_part): its metadata.xml
and its two Tile folders replicated under new names `Tile_+RRR_+CCC` (the files
hard-linked, keeping their names; the copies overlap in space).

Floor: one `osgconv <every .osgb of the folder> out.osgb` per Tile folder (it
reads and merges them all), as many at once as there are cores; peak memory is
the largest process's own (wait4 ru_maxrss). Ours: `cim import oblique` end to
end (read every file with OpenSceneGraph on all cores, place in ECEF, one GLB
per PagedLOD node, tilesets, PostGIS layer, swap), never resumed; peak memory is
the whole process tree's (cim + its workers + their `cim-osgb-dump` readers),
the sum of VmRSS sampled every 0.1 s, beside the main process's ru_maxrss.

Goal: total time <= 2x the floor; peak memory flat as the production grows.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import OUT, VENV_BIN, bench_settings, process_stats, process_tree, run
from cim.db import database_url

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "oblique" / "Production_5_part"
ROOT = OUT / "oblique"


def production(gb: float) -> Path:
    """A production of at least ``gb`` GB of OSGB: the sample's folders replicated (cached)."""
    folder = ROOT / f"{gb:g}GB"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "Data").mkdir(parents=True)
    shutil.copy(SAMPLE / "metadata.xml", folder / "metadata.xml")
    tiles = sorted(p for p in (SAMPLE / "Data").iterdir() if p.is_dir())
    sample_bytes = sum(f.stat().st_size for t in tiles for f in t.glob("*.osgb"))
    for copy in range(math.ceil(gb * 1e9 / sample_bytes)):
        for tile in tiles:
            col = tile.name.rsplit("_", 1)[1]  # +012: each copy is a new row of the same columns
            dest = folder / "Data" / f"Tile_+{copy:03d}_{col}"
            dest.mkdir()
            for f in tile.glob("*.osgb"):
                try:
                    os.link(f, dest / f.name)
                except OSError:
                    shutil.copyfile(f, dest / f.name)
    (folder / ".complete").write_text(f"{sample_bytes} bytes per copy\n")
    return folder


def osgb_files(prod: Path) -> list[list[Path]]:
    return [sorted(t.glob("*.osgb")) for t in sorted((prod / "Data").iterdir()) if t.is_dir()]


def floor(prod: Path) -> tuple[float, float]:
    """Wall seconds and largest peak RSS (MB) of `osgconv` over every folder, one process per folder."""

    def one(files: list[Path]) -> float:
        with tempfile.TemporaryDirectory(prefix="osgconv-") as tmp:
            return run(["osgconv", *map(str, files), f"{tmp}/out.osgb"])[1]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        peaks = list(pool.map(one, osgb_files(prod)))
    return time.perf_counter() - t0, max(peaks)


def tree_rss_kb(root: int) -> int:
    """Sum of the resident memory (kB) of ``root`` and all its descendants, from /proc."""
    stats = process_stats()
    return sum(int(stats[pid][21]) for pid in process_tree(root, stats)) * os.sysconf("SC_PAGE_SIZE") // 1024


def ours(prod: Path, name: str, env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, peak tree RSS (MB), main-process ru_maxrss (MB) and output of `cim import oblique`."""
    shutil.rmtree(bench_settings().tilesets_dir / ".versions" / f"{name}-partial", ignore_errors=True)
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(VENV_BIN / "cim"), "import", "oblique", str(prod), "--name", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"cim import oblique failed:\n{output}")
    return seconds, peak[0] / 1024, usage.ru_maxrss / 1024, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="largest production, GB of OSGB")
    gb = parser.parse_args().gb
    settings = bench_settings()
    database_url(settings)
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), COLUMNS="200")
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url
    print(
        f"{'GB':>5}{'files':>7}{'MB OSGB':>9}{'triangles':>12}{'floor s':>9}{'ours s':>9}{'ratio':>7}"
        f"{'MB/s':>7}{'tri/s':>10}{'floor MB':>10}{'tree MB':>9}{'main MB':>9}",
        flush=True,
    )
    for size in [s for s in (0.25, 0.5) if s < gb] + [gb]:
        prod = production(size)
        files = [f for folder in osgb_files(prod) for f in folder]
        mb = sum(f.stat().st_size for f in files) / 1e6
        floor_s, floor_mb = floor(prod)
        ours_s, tree_mb, main_mb, out = ours(prod, f"bench_oblique_{size:g}".replace(".", "_"), env)
        flat = " ".join(out.replace("│", " ").split())
        triangles = int(re.search(r"levels, ([\d,]+) triangles", flat).group(1).replace(",", ""))
        print(
            f"{size:>5g}{len(files):>7}{mb:>9.0f}{triangles:>12,}{floor_s:>9.1f}{ours_s:>9.1f}"
            f"{ours_s / floor_s:>6.2f}x{mb / ours_s:>7.1f}{triangles / ours_s:>10,.0f}{floor_mb:>10.0f}"
            f"{tree_mb:>9.0f}{main_mb:>9.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
