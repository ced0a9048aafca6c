"""Imagery and terrain over the full Futian sample's DOM (0.5 m, 23,552 x 19,494 RGB,
1.4 GB uncompressed) and DEM (10 m): COG creation and tile serving, each beside a peer
in the same run.

    .venv/bin/python -m bench.bench_rasters [--rounds 2] [--tile-rounds 3] [--tiles 600] [--profile]

1. COG creation: ours = ``cim import raster dom.tif --kind dom`` end to end in its own
   process (read, checks, GDAL's COG driver through rasterio, catalogue row), beside
   ``gdal_translate -of COG`` with the same creation options on the same input (Debian
   gdal-bin: GDAL 3.6; rasterio's wheel bundles GDAL 3.10) and, to tell the GDAL version
   from our own overhead, rasterio's ``shutil.copy`` alone with those options; rounds alternate.
   Then the codecs alone (an 8,192 px crop on one thread, JPEG and DEFLATE, both GDALs).
   Then the DEM: ``cim import raster dem.tif --kind dem`` (checks and the geoid on the way).
2. Imagery tiles: ``cim serve`` beside titiler (``titiler.core``'s TilerFactory mounted at
   /cog, uvicorn, one worker) serving the SAME COG file ours wrote, the same seeded list of
   PNG tiles at z14-z18 over the DOM, the same resampling (bilinear warp and overview reads:
   what ours uses; titiler's default is nearest), 2 client threads with keep-alive; rounds
   alternate. Both log their access lines at uvicorn's info level to /dev/null. titiler is
   also given the ``vrt://`` view of the file that tiles.raster opens for a CGCS2000 raster
   (its CRS with the null shift to WGS 84 said), to tell the server from that trick.
3. Terrain tiles (stated): Terrain-RGB PNG (titiler's ``algorithm=terrainrgb`` beside it)
   and quantized-mesh (``layer.json``'s available tiles; no peer) from the imported DEM.

The sample's rasters are generated into bench/out/sample-full-42/ when missing (about 75 s).
``--profile`` (or ours slower than titiler) profiles ``tiles.raster.imagery_tile`` in-process.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_mvt import run_clients
from bench.common import BENCH, OUT, VENV_BIN, bench_settings, ensure_apt, full_sample, peak_rss_mb, run
from cim.net import free_port, wait_until_healthy

ROOT = BENCH.parent
DOM_NAME, DEM_NAME = "bench_dom", "bench_dem"
EPOCH = "2026-01-01"
#: what import_scripts/raster.py gives GDAL's COG driver for an RGB DOM and a DEM
COG_COMMON = {"BLOCKSIZE": "512", "OVERVIEWS": "AUTO", "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER"}
COG_DOM = COG_COMMON | {"COMPRESS": "JPEG", "QUALITY": "90", "RESAMPLING": "AVERAGE"}
COG_DEM = COG_COMMON | {"COMPRESS": "DEFLATE", "PREDICTOR": "YES", "RESAMPLING": "BILINEAR", "LEVEL": "6"}
IMAGERY_ZOOMS = range(14, 19)
RESAMPLE = "resampling=bilinear&reproject=bilinear"


# --- inputs ---------------------------------------------------------------------------------------


def sample_rasters(seed: int = 42) -> dict[str, Path]:
    """The full sample's dem.tif and dom.tif, generated when missing (or left half-written)."""
    folder = full_sample("full", seed)
    paths = {"dem": folder / "dem.tif", "dom": folder / "dom.tif"}
    marker, sample_done = folder / ".rasters-complete", folder / ".complete"
    complete = all(p.is_file() for p in paths.values()) and (
        marker.exists() or all(p.stat().st_mtime <= sample_done.stat().st_mtime for p in paths.values())
    )
    if not complete:
        from cim.samples.futian.rasters import generate_rasters

        print("generating the full sample's DEM and DOM ...", flush=True)
        t0 = time.perf_counter()
        paths = generate_rasters(folder, "full", seed)
        marker.write_text(f"{time.perf_counter() - t0:.1f} s\n")
    return paths


def cim_env(settings) -> dict[str, str]:
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), COLUMNS="200")
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url
    return env


def stored_cog(settings, name: str) -> Path:
    """The COG file the catalogue names for ``name``'s newest epoch."""
    from cim.db import connect
    from layers.rasters import list_rasters

    with connect(settings) as conn:
        info = next(r for r in list_rasters(conn) if r.name == name)
    return settings.rasters_dir / name / info.file


def describe(path: Path) -> str:
    import rasterio

    with rasterio.open(path) as ds:
        overviews = ds.overviews(1)
        compress = ds.profile.get("compress", "none")
    return f"{path.stat().st_size / 1e6:,.1f} MB, {compress}, {len(overviews)} overviews"


# --- 1. COG creation ------------------------------------------------------------------------------


def gdal_translate(source: Path, target: Path, options: dict[str, str]) -> tuple[float, float]:
    target.unlink(missing_ok=True)
    args = ["gdal_translate", "-q", "-of", "COG", "--config", "GDAL_NUM_THREADS", "ALL_CPUS"]
    for key, value in options.items():
        args += ["-co", f"{key}={value}"]
    seconds, mb, _ = run([*args, str(source), str(target)])
    return seconds, mb


RASTERIO_COPY = """
import sys, json, rasterio, rasterio.shutil
with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
    rasterio.shutil.copy(sys.argv[1], sys.argv[2], driver="COG", **json.loads(sys.argv[3]))
"""


def rasterio_copy(source: Path, target: Path, options: dict[str, str]) -> tuple[float, float]:
    target.unlink(missing_ok=True)
    seconds, mb, _ = run([sys.executable, "-c", RASTERIO_COPY, str(source), str(target), json.dumps(options)])
    return seconds, mb


def cim_import(settings, source: Path, name: str, kind: str) -> tuple[float, float]:
    args = [str(VENV_BIN / "cim"), "import", "raster", str(source), "--name", name, "--kind", kind, "--epoch", EPOCH]
    seconds, mb, _ = run(args, cim_env(settings))
    return seconds, mb


def codec_check(dom: Path, rounds: int = 2) -> None:
    """The two GDALs' codecs alone: an 8,192 px square of the DOM to a COG on one thread, JPEG and DEFLATE,
    gdal_translate (Debian GDAL 3.6, libjpeg-turbo) vs rasterio's copy (its wheel's GDAL 3.10 and libjpeg)."""
    crop = OUT / "rasters-peer" / "crop.vrt"
    subprocess.run(["gdal_translate", "-q", "-of", "VRT", "-srcwin", "4096", "4096", "8192", "8192", str(dom),
                    str(crop)], check=True)  # fmt: skip
    print("codecs alone: an 8,192 x 8,192 crop, NUM_THREADS=1")
    for _ in range(rounds):
        for codec in ({"COMPRESS": "JPEG", "QUALITY": "90"}, {"COMPRESS": "DEFLATE"}):
            options = {"BLOCKSIZE": "512", "OVERVIEWS": "AUTO", "NUM_THREADS": "1", "RESAMPLING": "AVERAGE"} | codec
            gdal, _ = gdal_translate(crop, crop.with_name("crop-gdal.tif"), options)
            rio, _ = rasterio_copy(crop, crop.with_name("crop-rio.tif"), options)
            print(
                f"  {codec['COMPRESS']:<8} gdal_translate {gdal:5.1f} s, rasterio copy {rio:5.1f} s: {rio / gdal:.2f}x"
            )


def bench_cog(settings, paths: dict[str, Path], rounds: int) -> dict:
    peer_dir = OUT / "rasters-peer"
    peer_dir.mkdir(parents=True, exist_ok=True)
    dom = paths["dom"]
    print(f"\n1. COG creation: {dom} ({dom.stat().st_size / 1e9:.2f} GB), options {COG_DOM}")
    print(f"{'round':<6}{'ours s':>9}{'peak MB':>9}{'gdal_tr s':>11}{'peak MB':>9}{'rio copy s':>12}{'peak MB':>9}"
          f"{'ours/gdal':>11}")  # fmt: skip
    rows = []
    for rnd in range(1, rounds + 1):
        ours = cim_import(settings, dom, DOM_NAME, "dom")
        gdal = gdal_translate(dom, peer_dir / "dom-gdal_translate.tif", COG_DOM)
        rio = rasterio_copy(dom, peer_dir / "dom-rasterio.tif", COG_DOM)
        rows.append((rnd, ours, gdal, rio))
        print(f"{rnd:<6}{ours[0]:>9.1f}{ours[1]:>9.0f}{gdal[0]:>11.1f}{gdal[1]:>9.0f}{rio[0]:>12.1f}{rio[1]:>9.0f}"
              f"{ours[0] / gdal[0]:>10.2f}x", flush=True)  # fmt: skip
    cog = stored_cog(settings, DOM_NAME)
    print(f"ours:           {cog}: {describe(cog)}")
    print(f"gdal_translate: {describe(peer_dir / 'dom-gdal_translate.tif')}")
    print(f"rasterio copy:  {describe(peer_dir / 'dom-rasterio.tif')}")
    codec_check(dom)

    dem = paths["dem"]
    dem_rows = []
    for _ in range(rounds):
        ours = cim_import(settings, dem, DEM_NAME, "dem")
        gdal = gdal_translate(dem, peer_dir / "dem-gdal_translate.tif", COG_DEM | {"NODATA": "-9999"})
        dem_rows.append((ours, gdal))
    print(
        f"DEM {dem} ({dem.stat().st_size / 1e6:.1f} MB deflate, 1279 x 1076 float32): "
        + "; ".join(f"ours {o[0]:.2f} s ({o[1]:.0f} MB), gdal_translate {g[0]:.2f} s" for o, g in dem_rows)
    )
    return {"dom": rows, "dem": dem_rows, "dom_cog": cog}


# --- 2./3. tiles ----------------------------------------------------------------------------------


def titiler_app():
    """The peer: titiler.core's TilerFactory at /cog (uvicorn --factory bench.bench_rasters:titiler_app)."""
    from fastapi import FastAPI
    from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
    from titiler.core.factory import TilerFactory

    app = FastAPI(title="titiler (bench)")
    app.include_router(TilerFactory().router, prefix="/cog")
    add_exception_handlers(app, DEFAULT_STATUS_CODES)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    return app


def mercator_tiles(bounds, zooms, count: int, seed: int) -> list[tuple[int, int, int]]:
    """``count`` distinct XYZ tiles over ``bounds`` (lon/lat), shared out evenly between the zooms (all
    of a zoom's tiles when it has fewer; the rest from the deepest zoom), in a seeded random order."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    rng = random.Random(seed)
    zooms = list(zooms)
    west, south, east, north = bounds
    per_zoom = {z: [(t.z, t.x, t.y) for t in tms.tiles(west, south, east, north, [z])] for z in zooms}
    return _spread(per_zoom, zooms, count, rng)


def geographic_tiles(available: list, zooms, count: int, seed: int) -> list[tuple[int, int, int]]:
    """The same from a quantized-mesh layer.json's ``available`` ranges (TMS, geographic)."""
    rng = random.Random(seed)
    zooms = list(zooms)
    per_zoom = {
        z: [(z, x, y) for r in available[z] for x in range(r["startX"], r["endX"] + 1)
            for y in range(r["startY"], r["endY"] + 1)]
        for z in zooms
    }  # fmt: skip
    return _spread(per_zoom, zooms, count, rng)


def _spread(per_zoom: dict, zooms: list[int], count: int, rng: random.Random) -> list[tuple[int, int, int]]:
    chosen: list[tuple[int, int, int]] = []
    share = count // len(zooms)
    for i, z in enumerate(zooms):
        room = share if i < len(zooms) - 1 else count - len(chosen)
        chosen += rng.sample(per_zoom[z], min(room, len(per_zoom[z])))
    rng.shuffle(chosen)
    return chosen


def repeated(tiles: list, count: int, seed: int) -> list:
    """``tiles`` requested again (each pass in its own seeded order) until there are at least ``count``
    requests: the DEM's extent holds few tiles, and the servers keep no tile cache."""
    rng, out = random.Random(seed), list(tiles)
    while len(out) < count:
        again = list(tiles)
        rng.shuffle(again)
        out += again
    return out


def start_servers(settings) -> tuple[subprocess.Popen, subprocess.Popen, int, int]:
    env_ours = cim_env(settings) | {"CIM_ANONYMOUS_READ": "true"}
    env_peer = dict(os.environ, PYTHONPATH=str(ROOT))
    p_ours, p_peer = free_port(), free_port()
    ours = subprocess.Popen(
        [str(VENV_BIN / "cim"), "serve", "--port", str(p_ours)],
        env=env_ours, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    peer = subprocess.Popen(
        [str(VENV_BIN / "uvicorn"), "--factory", "bench.bench_rasters:titiler_app", "--port", str(p_peer),
         "--workers", "1", "--log-level", "info"],
        cwd=ROOT, env=env_peer, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_until_healthy(f"http://127.0.0.1:{p_ours}/healthz", ours)
    wait_until_healthy(f"http://127.0.0.1:{p_peer}/healthz", peer)
    return ours, peer, p_ours, p_peer


def compare(title: str, servers: dict, tiles: list, rounds: int) -> dict:
    """Rounds alternating between the servers: ``servers`` = {label: (process, url of (z, x, y))}."""
    print(f"\n{title}: {len(tiles)} tiles, 2 clients, keep-alive")
    results: dict = {}
    for rnd in range(1, rounds + 1):
        for label, (proc, make) in servers.items():
            r = run_clients([make(*t) for t in tiles])
            r["rss_mb"] = peak_rss_mb(proc.pid)
            r["codes"] = r.pop("errors")
            results[(rnd, label)] = r
            print(
                f"round {rnd} {label:<18}{r['tiles_per_s']:8.1f} tiles/s  p50 {r['p50_ms']:7.1f} ms  "
                f"p99 {r['p99_ms']:7.1f} ms  non-empty {r['nonempty']}  {r['bytes'] / 1e6:6.1f} MB  "
                f"peak RSS {r['rss_mb']:5.0f} MB  not 200/204: {len(r['codes'])}",
                flush=True,
            )
            if r["codes"]:
                print("   first:", r["codes"][:3])
        first, *others = servers
        for other in others:
            a, b = results[(rnd, first)], results[(rnd, other)]
            print(f"round {rnd} ratio {first} / {other}: {a['tiles_per_s'] / b['tiles_per_s']:.2f}x tiles/s")
    return results


def best(results: dict, label: str) -> dict:
    return max((r for (_, lab), r in results.items() if lab == label), key=lambda r: r["tiles_per_s"])


def catalogue_overhead(base: str, n: int = 100) -> float:
    """ms a request of ``GET /rasters/{name}``: the catalogue read every tile request of ours also does."""
    import httpx

    with httpx.Client(timeout=60) as c:
        c.get(f"{base}/rasters/{DOM_NAME}")
        t0 = time.perf_counter()
        for _ in range(n):
            c.get(f"{base}/rasters/{DOM_NAME}")
    return 1000 * (time.perf_counter() - t0) / n


def profile_imagery(cog: Path, tiles: list, n: int = 60) -> None:
    """Where an imagery tile's time goes, in this process, one thread, over the first ``n`` tiles: ours
    (tiles.raster.imagery_tile), titiler's path (rio-tiler Reader.tile + titiler's render_image) on the file
    and on ours' vrt:// view, the CRS transformation's set-up alone (file's CRS and view's), and one WarpedVRT
    in EPSG:3857 kept open (what a per-thread dataset cache could still save); then cProfile of ours."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader
    from rio_tiler.utils import render
    from titiler.core.utils import render_image

    from tiles.raster import WEB_MERCATOR, RasterSource, gdal_path, imagery_tile

    src = RasterSource(cog, "dom")
    sample = tiles[:n]
    view = gdal_path(cog)
    dataset, viewed = rasterio.open(cog), rasterio.open(view)
    vrt = WarpedVRT(dataset, crs="EPSG:3857", resampling=Resampling.bilinear, add_alpha=True)
    mercator = CRS.from_epsg(3857)

    def ours() -> None:
        for z, x, y in sample:
            imagery_tile(src, z, x, y, "png")

    def titiler_path(path: str) -> None:
        for z, x, y in sample:
            with Reader(path) as r:
                try:
                    img = r.tile(x, y, z, resampling_method="bilinear", reproject_method="bilinear")
                except TileOutsideBounds:
                    continue
            render_image(img, output_format=None)

    def crs_setup(ds) -> None:
        for _ in sample:
            transform_bounds(ds.crs, mercator, *ds.bounds)

    def kept_vrt(read_only: bool) -> None:
        for z, x, y in sample:
            with Reader(None, dataset=vrt, tms=WEB_MERCATOR) as r:
                try:
                    img = r.tile(x, y, z, resampling_method="bilinear")
                except TileOutsideBounds:
                    continue
            if not read_only:
                render(img.data[:3], img.mask, img_format="PNG", ZLEVEL=1)

    variants = (
        ("ours: tiles.raster.imagery_tile (vrt:// view, PNG zlib level 1)", ours),
        ("titiler's path on the file (PNG zlib default)", lambda: titiler_path(str(cog))),
        ("titiler's path on ours' vrt:// view", lambda: titiler_path(view)),
        (f"one transform_bounds {dataset.crs.to_string()} -> EPSG:3857 (PROJ set-up)", lambda: crs_setup(dataset)),
        ("one transform_bounds, the view's CRS (+towgs84=0) -> EPSG:3857", lambda: crs_setup(viewed)),
        ("one WarpedVRT to EPSG:3857 kept open: read only", lambda: kept_vrt(True)),
        ("one WarpedVRT kept open: read + PNG zlib level 1", lambda: kept_vrt(False)),
    )
    print(f"\nin-process, one thread, {len(sample)} tiles (ms a tile):")
    for label, fn in variants:
        fn()  # warm
        t0 = time.perf_counter()
        fn()
        print(f"  {1000 * (time.perf_counter() - t0) / len(sample):7.1f}  {label}", flush=True)
    prof = cProfile.Profile()
    prof.enable()
    ours()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    print("cProfile of ours, by own time:\n" + "\n".join(out.getvalue().splitlines()[:30]))
    for d in (vrt, dataset, viewed):
        d.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2, help="COG creation rounds")
    parser.add_argument("--tile-rounds", type=int, default=3)
    parser.add_argument("--tiles", type=int, default=600, help="imagery tiles a round")
    parser.add_argument("--terrain-tiles", type=int, default=400)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-cog", action="store_true", help="serve the COGs of an earlier run")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    ensure_apt("gdal-bin")
    import rasterio

    from tiles.raster import bounds_wgs84

    settings = bench_settings()
    load = os.getloadavg()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), "
        + subprocess.run(["gdal_translate", "--version"], capture_output=True, text=True).stdout.strip()
    )
    paths = sample_rasters(args.seed)
    if not args.skip_cog:
        bench_cog(settings, paths, args.rounds)
    dom_cog, dem_cog = stored_cog(settings, DOM_NAME), stored_cog(settings, DEM_NAME)

    ours, peer, p_ours, p_peer = start_servers(settings)
    o, t = f"http://127.0.0.1:{p_ours}", f"http://127.0.0.1:{p_peer}"
    try:
        from urllib.parse import quote

        from tiles.raster import gdal_path

        dom_view = quote(gdal_path(dom_cog), safe="")
        imagery = mercator_tiles(bounds_wgs84(dom_cog), IMAGERY_ZOOMS, args.tiles, args.seed)
        zs = sorted({z for z, _, _ in imagery})
        counts = ", ".join(f"z{z} {sum(1 for t in imagery if t[0] == z)}" for z in zs)
        print(f"\n2. imagery tiles of {dom_cog.name} ({counts})")
        img = compare(
            "imagery PNG, 256 px, bilinear",
            {
                "ours": (ours, lambda z, x, y: f"{o}/rasters/{DOM_NAME}/tiles/{z}/{x}/{y}.png"),
                "titiler": (
                    peer,
                    lambda z, x, y: f"{t}/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url={dom_cog}&{RESAMPLE}",
                ),
                # the same file through the vrt:// view tiles.raster opens (CRS with the null shift to WGS 84)
                "titiler, ours' view": (
                    peer,
                    lambda z, x, y: f"{t}/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url={dom_view}&{RESAMPLE}",
                ),
            },
            imagery,
            args.tile_rounds,
        )
        import httpx

        layer = httpx.get(f"{o}/rasters/{DEM_NAME}/terrain/layer.json").json()
        maxzoom = layer["maxzoom"]
        dem_bounds = bounds_wgs84(dem_cog)
        dem_view = quote(gdal_path(dem_cog), safe="")
        rgb_distinct = mercator_tiles(dem_bounds, range(10, maxzoom + 1), args.terrain_tiles, args.seed)
        qm_distinct = geographic_tiles(layer["available"], range(8, maxzoom + 1), args.terrain_tiles, args.seed)
        rgb_tiles = repeated(rgb_distinct, args.terrain_tiles, args.seed)
        qm_tiles = repeated(qm_distinct, args.terrain_tiles, args.seed)
        print(
            f"\n3. terrain of {dem_cog.name}: Terrain-RGB z10-z{maxzoom}, {len(rgb_distinct)} distinct tiles; "
            f"quantized-mesh z8-z{maxzoom} (layer.json's available), {len(qm_distinct)} distinct tiles; "
            f"requested again until {args.terrain_tiles} a round"
        )
        rgb = compare(
            "Terrain-RGB PNG",
            {
                "ours": (ours, lambda z, x, y: f"{o}/rasters/{DEM_NAME}/terrain-rgb/{z}/{x}/{y}.png"),
                "titiler terrainrgb": (
                    peer,
                    lambda z, x, y: (
                        f"{t}/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url={dem_cog}&{RESAMPLE}&algorithm=terrainrgb"
                    ),
                ),
                "titiler, ours' view": (
                    peer,
                    lambda z, x, y: (
                        f"{t}/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url={dem_view}&{RESAMPLE}&algorithm=terrainrgb"
                    ),
                ),
            },
            rgb_tiles,
            args.tile_rounds,
        )
        qm = compare(
            "quantized-mesh (gzip)",
            {"ours": (ours, lambda z, x, y: f"{o}/rasters/{DEM_NAME}/terrain/{z}/{x}/{y}.terrain")},
            qm_tiles,
            args.tile_rounds,
        )
        print(f"\nours: GET /rasters/{DOM_NAME} (the catalogue read of every tile request): "
              f"{catalogue_overhead(o):.1f} ms")  # fmt: skip
    finally:
        for p in (ours, peer):
            p.terminate()
            p.wait(timeout=20)
    mine, theirs = best(img, "ours"), best(img, "titiler")
    print(
        f"\nimagery, best round: ours {mine['tiles_per_s']:.1f} tiles/s vs titiler {theirs['tiles_per_s']:.1f} "
        f"({mine['tiles_per_s'] / theirs['tiles_per_s']:.2f}x); Terrain-RGB ours {best(rgb, 'ours')['tiles_per_s']:.1f}"
        f"/s (titiler {best(rgb, 'titiler terrainrgb')['tiles_per_s']:.1f}/s); quantized-mesh ours "
        f"{best(qm, 'ours')['tiles_per_s']:.1f}/s"
    )
    if args.profile or mine["tiles_per_s"] < theirs["tiles_per_s"]:
        profile_imagery(dom_cog, imagery)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
