"""The screen mode's first frame on the full sample (150,000 tickets, 270,000 sensors, 500,000 components)
beside today's viewer's, in the same run, in headless Debian Chromium (software WebGL), 5 runs each, alternated.

    .venv/bin/python -m bench.bench_screen

Imports the full Futian sample (bench/out/sample-full-42, generated once) into its own data directory
under bench/out (kept: a second run skips the import), serves it with `cim serve`, and opens:
- the viewer as a planner opens it: `/viewer` with its default layers (the peer), on the ground
  (CIM_VIEWER_GROUND: the sample's orthophoto and terrain under them), and the same layers on a flat map;
- the screen mode with the 事件 topic (tickets on, indicators per street), and with the 感知 topic (sensors on).
Reports, per page, the median first frame (deck.gl's first render), the time until the page was done (every
visible layer loaded, and for the screen its indicators drawn) and requests per load; the goal: the screen's
first frame at most 1.5x the viewer's.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import urllib.request

from bench.common import OUT, full_sample, served
from cim.config import Settings
from cim.demo import import_sample

REPO = OUT.parent.parent
RUNS = 5


def _imported(settings: Settings) -> None:
    marker = settings.data_dir / "bench-screen-imported"
    if marker.is_file():
        return
    samples = settings.data_dir / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    full = samples / "full"
    if not full.exists():
        full.symlink_to(full_sample().resolve())  # the full sample, generated once for every bench
    import_sample(settings, scale="full", models=False)
    marker.write_text("ok\n")


def _open(url: str) -> dict:
    out = subprocess.run(
        ["node", str(REPO / "tools" / "browser_check.mjs"), url, "--timeout", "180000", "--size", "1920x1080"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert not report.get("error") and not report["foreignRequests"], report
    return report


def main() -> None:
    settings = Settings(data_dir=(OUT / "screen-cim").resolve())
    _imported(settings)
    with served(settings) as base:
        config = json.loads(urllib.request.urlopen(f"{base}/viewer/config.json", timeout=60).read())
        flat = ",".join(e["key"] for e in config["entries"] if e.get("visible"))
        pages = {
            "viewer (default layers)": f"{base}/viewer",
            # the same layers listed in the link: no imagery and terrain under them (CIM_VIEWER_GROUND's cost)
            "viewer, flat (its default layers, no ground)": f"{base}/viewer#layers={flat}",
            "screen, 事件 (tickets)": f"{base}/viewer?mode=screen&topic=events",
            "screen, 感知 (sensors)": f"{base}/viewer?mode=screen&topic=sensing",
        }
        runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in pages}
        _open(pages["viewer (default layers)"])  # warm: the server's first tiles, the browser's disk cache is off
        for _ in range(RUNS):
            for name, url in pages.items():  # alternated: the machine's load falls on each alike
                r = _open(url)["result"]
                runs[name].append((r["firstFrameMs"], r["loadedMs"], 0))
        peer = statistics.median(r[0] for r in runs["viewer (default layers)"])
        print("| page | first frame (median) | x viewer | done (median) | runs (first frame ms) |")
        print("|---|---:|---:|---:|---|")
        for name, rows in runs.items():
            first = statistics.median(r[0] for r in rows)
            done = statistics.median(r[1] for r in rows)
            print(
                f"| {name} | {first:.0f} ms | {first / peer:.2f}x | {done:,.0f} ms | "
                f"{', '.join(str(round(r[0])) for r in rows)} |"
            )


if __name__ == "__main__":
    main()
