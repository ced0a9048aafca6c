"""Run tools/browser_check.mjs (headless Debian Chromium through playwright-core)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import REPO


def browse(url: str, *, timeout_ms: int = 90_000, screenshot: Path | None = None, size: str = "1280x800",
           hover: str | None = None, eval: str | None = None) -> dict:
    """Open ``url``, wait for the page's ``window.__cimDone``; then optionally
    screenshot, move the mouse to ``hover`` ("x,y") and evaluate ``eval``."""
    args = ["node", str(REPO / "tools" / "browser_check.mjs"), url, "--timeout", str(timeout_ms), "--size", size]
    if screenshot is not None:
        args += ["--screenshot", str(screenshot)]
    if hover is not None:
        args += ["--hover", hover]
    if eval is not None:
        args += ["--eval", eval]
    out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=timeout_ms / 1000 + 60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report.get("error") is None, report
    return report
