"""Shared set-up of the benchmarks: a bench data directory with its own local
PostGIS cluster, and the full Futian sample generated once and cached."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cim.config import Settings

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
VENV_BIN = Path(sys.executable).parent


def bench_settings() -> Settings:
    url = os.environ.get("CIM_BENCH_DATABASE_URL") or None
    return Settings(data_dir=Path(os.environ.get("CIM_BENCH_DATA_DIR", OUT / "cim")).resolve(), database_url=url)


def full_sample(scale: str = "full", seed: int = 42) -> Path:
    """The sample of that scale, generated once into bench/out/<scale>."""
    from cim.samples import futian

    folder = OUT / f"sample-{scale}-{seed}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        futian.generate(folder, scale=scale, seed=seed)
        (folder / ".complete").write_text(f"{time.perf_counter() - t0:.1f} s\n")
    return folder


def ensure_apt(*packages: str) -> None:
    """Install Debian packages the benchmark's peers need (ogr2ogr...)."""
    missing = [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
