"""Run tools/browser_check.mjs (headless Debian Chromium through playwright-core)."""

from __future__ import annotations

import json
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
    eval: str | None = None,
) -> dict:
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


#: sign in through the sign-in page (the session cookie), then open a page as browser_check.mjs does
_SIGNED_IN_BROWSER = r"""import { chromium } from "%(playwright)s";
const [base, user, password, url, evalExpr, timeoutText, screenshot] = process.argv.slice(2);
const timeout = Number(timeoutText);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--ignore-gpu-blocklist", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { url, consoleErrors: [], pageErrors: [], failedRequests: [], foreignRequests: [], requests: 0 };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  page.on("request", (r) => {
    out.requests += 1;
    const u = new URL(r.url());
    if (!["http:", "https:", "ws:", "wss:"].includes(u.protocol)) return;  // data:, blob:
    if (!["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) out.foreignRequests.push(r.url());
  });
  page.on("requestfailed", (r) => out.failedRequests.push(`${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) out.failedRequests.push(`${r.url()} HTTP ${r.status()}`); });
  // back to the sign-in page once signed in (an HTML page with an icon: a JSON one makes Chromium ask for
  // /favicon.ico, a 404 in the console)
  await page.goto(`${base}/auth/login?next=${encodeURIComponent("/auth/login?signed=1")}`, { timeout });
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(/\/auth\/login\?signed=1$/, { timeout }), page.click("button")]);
  out.me = await page.evaluate(() => fetch("/auth/me").then((r) => r.json()));
  await page.goto(url, { waitUntil: "load", timeout });
  await page.waitForFunction(() => window.__cimDone === true, null, { timeout, polling: 200 });
  out.result = await page.evaluate(() => window.__cimResult ?? null);
  if (evalExpr) out.eval = await page.evaluate(evalExpr);
  if (screenshot) await page.screenshot({ path: screenshot });
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
"""


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
    session cookie, as a person does), then ``url`` is opened, waited for (``window.__cimDone``)
    and ``eval`` evaluated (a Promise is awaited), then the screenshot taken. The report also has
    ``me``: what ``/auth/me`` said after signing in."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "signed_in.mjs"
        script.write_text(
            _SIGNED_IN_BROWSER % {"playwright": (REPO / "node_modules" / "playwright-core" / "index.mjs").as_uri()}
        )
        args = ["node", str(script), base, user, password, url, eval or "", str(timeout_ms), str(screenshot or "")]
        out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=timeout_ms / 1000 + 60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report.get("error") is None, report
    return report
