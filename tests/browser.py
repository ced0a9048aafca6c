"""Run tools/browser_check.mjs (headless Debian Chromium through playwright-core)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import REPO


def browse(
    url: str,
    *,
    timeout_ms: int = 90_000,
    screenshot: Path | None = None,
    size: str = "1280x800",
    hover: str | None = None,
    click: str | None = None,
    frame_eval: str | None = None,
    eval: str | None = None,
    sign_in: tuple[str, str] | None = None,
) -> dict:
    """Open ``url``, wait for the page's ``window.__cimDone``; then optionally
    screenshot, move the mouse to ``hover`` ("x,y"), click at ``click`` ("x,y"; then wait for
    the page's ``window.__cimClicked``), evaluate ``frame_eval`` in the page's first iframe (then wait
    for ``window.__cimClicked`` too) and evaluate ``eval``.
    ``sign_in`` (user, password): sign in on the url's server first, as a person does."""
    args = ["node", str(REPO / "tools" / "browser_check.mjs"), url, "--timeout", str(timeout_ms), "--size", size]
    env = None
    if sign_in is not None:
        args += ["--sign-in", sign_in[0]]
        env = dict(os.environ, CIM_BROWSER_PASSWORD=sign_in[1])
    if screenshot is not None:
        args += ["--screenshot", str(screenshot)]
    if hover is not None:
        args += ["--hover", hover]
    if click is not None:
        args += ["--click", click]
    if frame_eval is not None:
        args += ["--frame-eval", frame_eval]
    if eval is not None:
        args += ["--eval", eval]
    for attempt in (1, 2):
        out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=timeout_ms / 1000 + 60, env=env)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        # Chromium's renderer (software GL) now and then dies on this 2-core machine under the suite's load:
        # that is the browser, not the page, and the page is opened once more
        if attempt == 1 and report.get("crashed"):
            continue
        break
    assert report.get("error") is None, report
    return report


def load_in_cesium(tileset_folder: Path) -> dict:
    """Load ``tileset_folder/tileset.json`` in CesiumJS (served locally with the
    folder) through tests/pages/cesium_tileset.html; returns the browse report
    (``report["result"]``: loaded, failed, features, sample, error)."""
    from tests.static_server import serve

    mounts = {
        "/cesium": REPO / "node_modules" / "cesium" / "Build" / "Cesium",
        "/page.html": REPO / "tests" / "pages" / "cesium_tileset.html",
        "/tileset": tileset_folder.resolve(),
    }
    with serve(mounts) as base:
        return browse(f"{base}/page.html?tileset=/tileset/tileset.json")


def browse_signed_in(
    base: str,
    user: str,
    password: str,
    url: str,
    *,
    eval: str | None = None,
    timeout_ms: int = 90_000,
    screenshot: Path | None = None,
) -> dict:
    """As :func:`browse`, signed in first: ``user`` signs in on ``base``'s sign-in page (the
    session cookie, as a person does; ``url`` must be on ``base``), then the page is opened and
    handled as :func:`browse` does. The report also has ``me``: what ``/auth/me`` said after
    signing in."""
    assert url.startswith(base), (base, url)  # signed in on the url's own server
    return browse(url, eval=eval, timeout_ms=timeout_ms, screenshot=screenshot, sign_in=(user, password))
