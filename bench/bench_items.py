"""OGC API - Features items over the full Futian sample: pages of 1,000
features walked with offset paging by 2 concurrent clients, ours
(`/collections/{id}/items`) beside TiPg's (`/collections/layers.{id}/items`)
on the same tables of the same PostGIS in the same run.

    .venv/bin/python -m bench.bench_items [--layers buildings,sensors] [--page 1000] [--rounds 3]

Run bench.bench_import first (it imports the full sample into the bench cluster).
"""

from __future__ import annotations

import argparse
import json

import httpx
import psycopg

from bench.bench_mvt import run_clients, start_servers
from bench.common import bench_settings, peak_rss_mb
from cim.db import database_url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", default="buildings,sensors")
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = bench_settings()
    layers = args.layers.split(",")
    with psycopg.connect(database_url(settings)) as conn:
        counts = {name: conn.execute(f"SELECT count(*) FROM layers.{name}").fetchone()[0] for name in layers}  # type: ignore[index]
    ours, tipg, p_ours, p_tipg = start_servers(settings)
    try:
        make = {
            "ours": lambda layer, off: (
                f"http://127.0.0.1:{p_ours}/collections/{layer}/items?limit={args.page}&offset={off}"
            ),
            "tipg": lambda layer, off: (
                f"http://127.0.0.1:{p_tipg}/collections/layers.{layer}/items?limit={args.page}&offset={off}"
            ),
        }
        # the same answer from both: every feature once, in pages of args.page
        for name, url in make.items():
            got = httpx.get(url(layers[0], 0), timeout=120).json()
            assert len(got["features"]) == min(args.page, counts[layers[0]]), (name, len(got["features"]))
        print(f"pages of {args.page} features; layers: " + ", ".join(f"{k} ({v:,})" for k, v in counts.items()))
        results: dict = {}
        for rnd in range(1, args.rounds + 1):
            for name, url in make.items():
                urls = [url(layer, off) for layer in layers for off in range(0, counts[layer], args.page)]
                r = run_clients(urls)
                r["rss_mb"] = peak_rss_mb((ours if name == "ours" else tipg).pid)
                r["features_per_s"] = sum(counts.values()) / r["seconds"]
                results[(rnd, name)] = r
                print(
                    f"round {rnd} {name:<5} {r['tiles_per_s']:7.1f} pages/s  {r['features_per_s']:9,.0f} features/s  "
                    f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  {r['bytes'] / 1e6:6.1f} MB  "
                    f"peak RSS {r['rss_mb']:.0f} MB  errors {len(r['errors'])}"
                )
                if r["errors"]:
                    print("   first errors:", r["errors"][:3])
            o, t = results[(rnd, "ours")], results[(rnd, "tipg")]
            print(f"round {rnd} ratio ours/tipg: {o['tiles_per_s'] / t['tiles_per_s']:.2f}x pages/s")
        print(
            json.dumps(
                {f"{k[0]}:{k[1]}": {kk: vv for kk, vv in v.items() if kk != "errors"} for k, v in results.items()}
            )
        )
    finally:
        for p in (ours, tipg):
            p.terminate()


if __name__ == "__main__":
    main()
