"""The API docs offline: /docs (Swagger UI) and /redoc load their JavaScript,
CSS and icon from this server (node_modules), never from a CDN or Google
Fonts, and render every operation of the schema in a real browser."""

from __future__ import annotations

import re

import pytest

from cim.server.routes.docs import DOCS_ASSETS
from tests.browser import browse

#: wait (at most 60 s) for the rendered DOM, then describe it; these pages never set window.__cimDone
_UNTIL = """const until = async (ready) => {
  const deadline = Date.now() + 60000;
  while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return Boolean(ready());
};"""

SWAGGER_EVAL = f"""(async () => {{
  {_UNTIL}
  const layers = () => document.querySelector("#operations-layers-list_layers_layers_get");
  const rendered = await until(layers);
  let expanded = false;
  if (rendered) {{  // open the /layers operation: its parameters and responses are drawn
    layers().querySelector("button.opblock-summary-control").click();
    expanded = await until(() => layers().querySelector(".opblock-body .responses-wrapper"));
  }}
  return {{
    rendered,
    expanded,
    title: document.querySelector(".information-container .title")?.textContent ?? null,
    operations: [...document.querySelectorAll(".opblock")].map((b) =>
      b.querySelector(".opblock-summary-method")?.textContent.toLowerCase() + " " +
      b.querySelector(".opblock-summary-path")?.getAttribute("data-path")),
    errors: [...document.querySelectorAll(".errors-wrapper")].map((e) => e.textContent),
  }};
}})()"""

REDOC_EVAL = f"""(async () => {{
  {_UNTIL}
  const items = () => [...document.querySelectorAll(".menu-content li[data-item-id]")];
  const rendered = await until(() => items().length > 0 && document.querySelector(".api-info h1"));
  return {{
    rendered,
    title: document.querySelector(".api-info h1")?.textContent ?? null,
    menu: items().map((li) => li.getAttribute("data-item-id")),
    stylesheets: [...document.querySelectorAll("link[rel=stylesheet]")].map((l) => l.href),
  }};
}})()"""


def browse_docs(url: str, expression: str) -> dict:
    """browse() a page that does not set window.__cimDone (tools/browser_check.mjs's CIM_BROWSER_NO_DONE)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIM_BROWSER_NO_DONE", "1")
        return browse(url, eval=expression, timeout_ms=90_000)


@pytest.fixture(scope="module")
def schema_operations(http) -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every operation in /openapi.json."""
    paths = http.get("/openapi.json").json()["paths"]
    return [
        (method, path, op["operationId"])
        for path, ops in paths.items()
        for method, op in ops.items()
        if isinstance(op, dict) and "operationId" in op
    ]


def assert_offline(report: dict) -> None:
    assert report.get("error") is None, report
    assert report["foreignRequests"] == []  # no CDN, no Google Fonts, no logo from cdn.redoc.ly
    assert report["consoleErrors"] == [] and report["pageErrors"] == [] and report["failedRequests"] == []


def test_the_pages_refer_only_to_local_files(http):
    for page in ("/docs", "/redoc"):
        r = http.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = re.findall(r'(?:src|href)="([^"]*)"', r.text)
        assert urls and all(u.startswith("/docs/assets/") for u in urls), urls
        assert "https://" not in r.text and "http://" not in r.text  # jsDelivr, fonts.googleapis.com, tiangolo.com
    assert http.get("/docs/oauth2-redirect").status_code == 200
    types = {
        "swagger-ui-bundle.js": "text/javascript",
        "swagger-ui.css": "text/css",
        "favicon.png": "image/png",
        "redoc.standalone.js": "text/javascript",
    }
    assert set(types) == set(DOCS_ASSETS)
    for name, media_type in types.items():
        r = http.get(f"/docs/assets/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media_type), name
        assert len(r.content) > 500
    assert b"cdn.redoc.ly" not in http.get("/docs/assets/redoc.standalone.js").content


@pytest.mark.parametrize(
    "name",
    ["package.json", "swagger-ui-dist/swagger-ui.css", "..%2Fpackage.json", "%2E%2E%2Fpackage.json", "index.css"],
)
def test_nothing_else_under_node_modules_is_served(http, name):
    assert http.get(f"/docs/assets/{name}").status_code == 404


@pytest.mark.browser
def test_swagger_ui_renders_offline(server, schema_operations):
    report = browse_docs(f"{server}/docs", SWAGGER_EVAL)
    assert_offline(report)
    page = report["eval"]
    assert page["rendered"] and page["expanded"], page  # the /layers block, opened
    assert page["title"].startswith("CIM twin") and page["errors"] == []
    assert sorted(page["operations"]) == sorted(f"{m} {p}" for m, p, _ in schema_operations)


@pytest.mark.browser
def test_redoc_renders_offline(server, schema_operations):
    report = browse_docs(f"{server}/redoc", REDOC_EVAL)
    assert_offline(report)
    page = report["eval"]
    assert page["rendered"] and page["title"].startswith("CIM twin"), page
    assert page["stylesheets"] == []  # with_google_fonts=False: the system's fonts
    operations = [item.split("/operation/", 1)[1] for item in page["menu"] if "/operation/" in item]
    assert "list_layers_layers_get" in operations
    assert sorted(operations) == sorted(op_id for _, _, op_id in schema_operations)
