"""Vector-tile serving over the full Futian sample, z12-z16, 2 concurrent
clients: ours (`cim serve`) beside TiPg serving the same tables from the
same PostGIS in the same run. Both get the same tile list, in the same order,
with the same per-tile feature cap and buffer.

    .venv/bin/python -m bench.bench_mvt [--layers buildings,sensors,grids,parcels] [--rounds 2]

Run bench.bench_import first (it imports the full sample into the bench cluster).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import statistics
import subprocess
import threading
import time

import httpx

from bench.common import VENV_BIN, bench_settings, peak_rss_mb
from cim.db import database_url
from cim.net import free_port, wait_until_healthy

FUTIAN = (113.985, 22.502, 114.101, 22.591)
CAP = 50_000
BUFFER = 64


def tiles(z: int) -> list[tuple[int, int, int]]:
    n = 2**z

    def xy(lon, lat):
        return (int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))

    x0, y1 = xy(FUTIAN[0], FUTIAN[1])
    x1, y0 = xy(FUTIAN[2], FUTIAN[3])
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def run_clients(urls: list[str], clients: int = 2, headers: dict[str, str] | None = None) -> dict:
    work: queue.Queue = queue.Queue()
    for u in urls:
        work.put(u)
    latencies: list[float] = []
    sizes: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker():
        with httpx.Client(timeout=120, headers=headers) as c:
            while True:
                try:
                    u = work.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                r = c.get(u)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    sizes.append(len(r.content))
                    if r.status_code not in (200, 204):
                        errors.append(f"{r.status_code} {u}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return dict(
        tiles=len(urls),
        seconds=wall,
        tiles_per_s=len(urls) / wall,
        p50_ms=1000 * statistics.median(lat),
        p99_ms=1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        nonempty=sum(1 for s in sizes if s > 0),
        bytes=sum(sizes),
        errors=errors,
    )


def viewer_token(settings) -> str:
    """A new API token with the viewer role, made by `cim tokens create` in the bench database."""
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir))
    if settings.database_url:
        env["CIM_DATABASE_URL"] = settings.database_url
    out = subprocess.run(
        [str(VENV_BIN / "cim"), "tokens", "create", "--name", "bench-mvt", "--role", "viewer"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def start_servers(settings) -> tuple[subprocess.Popen, subprocess.Popen, int, int]:
    """`cim serve` and TiPg over the bench database, both answering; returns the processes and their ports."""
    url = database_url(settings)
    # anonymous reads on: a client with a token (bench_mvt --token) or without one is served
    env_ours = dict(
        os.environ, CIM_DATA_DIR=str(settings.data_dir), CIM_MVT_FEATURE_LIMIT=str(CAP), CIM_ANONYMOUS_READ="true"
    )
    if settings.database_url:
        env_ours["CIM_DATABASE_URL"] = settings.database_url
    env_tipg = dict(
        os.environ,
        DATABASE_URL=url,
        TIPG_DB_SCHEMAS='["layers"]',
        TIPG_MAX_FEATURES_PER_TILE=str(CAP),
        TIPG_TILE_BUFFER=str(BUFFER),
        TIPG_DB_MIN_CONN_SIZE="2",
        TIPG_DB_MAX_CONN_SIZE="8",
    )
    p_ours, p_tipg = free_port(), free_port()
    ours = subprocess.Popen(
        [str(VENV_BIN / "cim"), "serve", "--port", str(p_ours)],
        env=env_ours,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    tipg = subprocess.Popen(
        [str(VENV_BIN / "uvicorn"), "tipg.main:app", "--port", str(p_tipg), "--log-level", "warning"],
        env=env_tipg,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_until_healthy(f"http://127.0.0.1:{p_ours}/healthz", ours)
    wait_until_healthy(f"http://127.0.0.1:{p_tipg}/healthz", tipg)
    return ours, tipg, p_ours, p_tipg


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", default="buildings,sensors,grids,parcels")
    parser.add_argument("--zooms", default="12,13,14,15,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--token", action="store_true", help="our requests carry a viewer's API token")
    args = parser.parse_args()
    settings = bench_settings()
    layers = args.layers.split(",")
    tile_list = [t for z in map(int, args.zooms.split(",")) for t in tiles(z)]

    ours, tipg, p_ours, p_tipg = start_servers(settings)
    headers = {"Authorization": f"Bearer {viewer_token(settings)}"} if args.token else None
    try:
        servers = {
            "ours": (ours, lambda layer, z, x, y: f"http://127.0.0.1:{p_ours}/layers/{layer}/tiles/{z}/{x}/{y}.mvt"),
            "tipg": (
                tipg,
                lambda layer, z, x, y: (
                    f"http://127.0.0.1:{p_tipg}/collections/layers.{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                ),
            ),
        }
        print(
            f"{len(tile_list)} tiles per layer (z{args.zooms}), layers: {', '.join(layers)}; 2 clients; cap {CAP}/tile"
        )
        results: dict = {}
        for rnd in range(1, args.rounds + 1):
            for name, (proc, make) in servers.items():
                urls = [make(layer, *t) for layer in layers for t in tile_list]
                r = run_clients(urls, headers=headers if name == "ours" else None)
                r["rss_mb"] = peak_rss_mb(proc.pid)
                results[(rnd, name)] = r
                print(
                    f"round {rnd} {name:<5} {r['tiles_per_s']:8.1f} tiles/s  p50 {r['p50_ms']:7.1f} ms  "
                    f"p99 {r['p99_ms']:7.1f} ms  non-empty {r['nonempty']}  {r['bytes'] / 1e6:7.1f} MB  "
                    f"peak RSS {r['rss_mb']:.0f} MB  errors {len(r['errors'])}"
                )
                if r["errors"]:
                    print("   first errors:", r["errors"][:3])
            o, t = results[(rnd, "ours")], results[(rnd, "tipg")]
            print(
                f"round {rnd} ratio ours/tipg: {o['tiles_per_s'] / t['tiles_per_s']:.2f}x tiles/s, "
                f"p99 {t['p99_ms'] / o['p99_ms']:.2f}x lower"
            )
        # per-layer view of the last round, ours vs tipg
        print("per layer (last round):")
        for layer in layers:
            row = []
            for _name, (_proc, make) in servers.items():
                r = run_clients([make(layer, *t) for t in tile_list])
                row.append(r)
            print(
                f"  {layer:<10} ours {row[0]['tiles_per_s']:7.1f}/s p99 {row[0]['p99_ms']:7.1f} ms | "
                f"tipg {row[1]['tiles_per_s']:7.1f}/s p99 {row[1]['p99_ms']:7.1f} ms | "
                f"{row[0]['tiles_per_s'] / row[1]['tiles_per_s']:.2f}x"
            )
        print(
            json.dumps(
                {f"{k[0]}:{k[1]}": {kk: vv for kk, vv in v.items() if kk != "errors"} for k, v in results.items()}
            )
        )
    finally:
        for p in (ours, tipg):
            p.terminate()
            p.wait(timeout=20)


if __name__ == "__main__":
    main()
