// Open a page in headless Debian Chromium, wait until it sets window.__cimDone,
// and print one JSON object: the page's window.__cimResult, console errors,
// failed requests, every request to a host other than 127.0.0.1/localhost, and `crashed` when the
// renderer died (tests/browser.py opens the page once more then).
// usage: node tools/browser_check.mjs URL [--timeout 60000] [--screenshot out.png] [--size 1280x800]
//        [--hover X,Y] [--eval "JS expression"]   (after the page is done: move the mouse, then evaluate)
//        [--click X,Y] after the page is done (and the hover): click there, then wait for window.__cimClicked
//        [--frame-eval "JS"] then evaluate JS in the page's first iframe, and wait for window.__cimClicked
//        [--sign-in USER]  first sign in as USER on the URL's server's sign-in page (the password in
//                      the environment variable CIM_BROWSER_PASSWORD); the report's `me` is /auth/me then
//        [--no-done]   for pages that never set __cimDone (e.g. FastAPI's /docs): done at the load event;
//                      pass an --eval that waits for what it needs (a Promise is awaited; let it give up
//                      by itself, in less than --timeout).
//                      The environment variable CIM_BROWSER_NO_DONE=1 does the same (for callers that
//                      cannot add the flag, such as tests/browser.py's browse()).
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const timeout = Number(opt("--timeout", "60000"));
const screenshot = opt("--screenshot", null);
const [width, height] = opt("--size", "1280x800").split("x").map(Number);
const hover = opt("--hover", null);
const click = opt("--click", null);
const frameEval = opt("--frame-eval", null);
const evalExpr = opt("--eval", null);
const signInAs = opt("--sign-in", null);
const waitDone = !(args.includes("--no-done") || process.env.CIM_BROWSER_NO_DONE === "1");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--ignore-gpu-blocklist", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { url, consoleErrors: [], pageErrors: [], failedRequests: [], foreignRequests: [], requests: 0 };
try {
  const page = await browser.newPage({ viewport: { width, height } });
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  page.on("crash", () => { out.crashed = true; });
  page.on("request", (r) => {
    out.requests += 1;
    const u = new URL(r.url());
    if (!["http:", "https:", "ws:", "wss:"].includes(u.protocol)) return;  // data:, blob:
    if (!["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) out.foreignRequests.push(r.url());
  });
  page.on("requestfailed", (r) => out.failedRequests.push(`${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) out.failedRequests.push(`${r.url()} HTTP ${r.status()}`); });
  if (signInAs) {
    // back to the sign-in page once signed in (an HTML page with an icon: a JSON one makes Chromium ask
    // for /favicon.ico, a 404 in the console)
    const base = new URL(url).origin;
    await page.goto(`${base}/auth/login?next=${encodeURIComponent("/auth/login?signed=1")}`, { timeout });
    await page.fill("input[name=username]", signInAs);
    await page.fill("input[name=password]", process.env.CIM_BROWSER_PASSWORD || "");
    await Promise.all([page.waitForURL(/\/auth\/login\?signed=1$/, { timeout }), page.click("button")]);
    out.me = await page.evaluate(() => fetch("/auth/me").then((r) => r.json()));
  }
  const t0 = Date.now();
  await page.goto(url, { waitUntil: "load", timeout });
  if (waitDone) await page.waitForFunction(() => window.__cimDone === true, null, { timeout, polling: 200 });
  out.seconds = (Date.now() - t0) / 1000;
  out.result = await page.evaluate(() => window.__cimResult ?? null);
  if (screenshot) await page.screenshot({ path: screenshot });
  if (hover) {
    const [x, y] = hover.split(",").map(Number);
    await page.mouse.move(x - 5, y - 5);
    await page.mouse.move(x, y, { steps: 5 });
    await page.waitForTimeout(800);
  }
  if (click) {
    const [x, y] = click.split(",").map(Number);
    await page.mouse.click(x, y);
    if (waitDone) await page.waitForFunction(() => window.__cimClicked === true, null, { timeout, polling: 200 });
  }
  if (frameEval) {
    // in the page's first frame (an embedded viewer, whatever its origin), then wait for the page's __cimClicked
    await page.frames()[1].evaluate(frameEval);
    if (waitDone) await page.waitForFunction(() => window.__cimClicked === true, null, { timeout, polling: 200 });
  }
  if (evalExpr) out.eval = await page.evaluate(evalExpr);
} catch (e) {
  out.error = String(e);
  if (/Target page, context or browser has been closed/.test(out.error)) out.crashed = true;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
