"""Shared set-up of the benchmarks: a bench data directory with its own local
PostGIS cluster, and the full Futian sample generated once and cached."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    from cim.samples.futian.params import LAYERS

    folder = OUT / f"sample-{scale}-{seed}"
    stale = not all((folder / f"{name}.gpkg").is_file() for name in LAYERS)  # made before a layer existed
    if stale or not (folder / ".complete").exists():
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
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(args: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and output of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def process_stats() -> dict[int, list[str]]:
    """Every process's /proc/PID/stat fields after the command name (field 1 is the parent,
    11 and 12 the user and system CPU ticks, 21 the resident pages)."""
    stats: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    return stats


def process_tree(root: int, stats: dict[int, list[str]]) -> list[int]:
    """``root`` and all its descendants that ``stats`` knows."""
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        if pid in stats:
            out.append(pid)
    return out


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """``cim serve`` on a free port over ``settings``' data directory, anonymous reading on (pages opened
    without signing in); yields its base URL, stops it after."""
    from cim.net import free_port, wait_until_healthy

    port = free_port()
    env = dict(os.environ, CIM_DATA_DIR=str(settings.data_dir), CIM_ANONYMOUS_READ="true")
    args = [str(VENV_BIN / "cim"), "serve", "--port", str(port)]
    server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(f"{base}/healthz", server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
