"""The viewer's time to first frame and to fully loaded, with every sample
layer switched on, in headless Debian Chromium (software WebGL), 5 runs.

    .venv/bin/python -m bench.bench_viewer

Imports the small Futian sample (as `cim demo` does) into its own data
directory under bench/out, serves it with `cim serve`, opens /viewer.
"""

from __future__ import annotations

import json
import statistics
import subprocess

from bench.common import OUT, served
from cim.config import Settings
from cim.demo import import_sample

REPO = OUT.parent.parent


def main() -> None:
    settings = Settings(data_dir=(OUT / "viewer-cim").resolve())
    import_sample(settings, models=False)  # the 12 Futian layers, as RESULTS.md measured them
    with served(settings) as base:
        keys = [
            e["key"]
            for e in json.loads(
                subprocess.run(["curl", "-s", f"{base}/viewer/config.json"], capture_output=True, text=True).stdout
            )["entries"]
        ]
        url = f"{base}/viewer#layers={','.join(keys)}"
        runs = []
        for _ in range(5):
            out = subprocess.run(
                ["node", str(REPO / "tools" / "browser_check.mjs"), url, "--timeout", "120000"],
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            report = json.loads(out.stdout.strip().splitlines()[-1])
            assert not report.get("error") and not report["foreignRequests"], report
            runs.append((report["result"]["firstFrameMs"], report["result"]["loadedMs"], report["requests"]))
        first = statistics.median(r[0] for r in runs)
        loaded = statistics.median(r[1] for r in runs)
        print(f"layers on: {len(keys)} ({', '.join(keys)})")
        print(
            f"first frame: median {first:.0f} ms; all visible layers loaded: median {loaded:.0f} ms; "
            f"requests per load: {runs[0][2]}"
        )
        print("runs (first frame ms, loaded ms, requests):", [(round(a), round(b), c) for a, b, c in runs])


if __name__ == "__main__":
    main()
