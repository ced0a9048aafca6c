"""The viewer in Jupyter: one call gives the server's deck, and its HTML
export draws in Chromium with nothing fetched from the internet."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.browser import browse
from tests.conftest import CORS_PORT
from tests.static_server import serve
from viewer.notebook import from_server, to_html


def test_from_server_gives_the_viewers_deck_with_absolute_urls(server, http):
    spec = json.loads(from_server(server).to_json())
    page = http.get("/viewer/config.json").json()["deck"]
    # the same deck, but for the component layers: the page's components.js draws those itself
    drawn_by_panel = {t["name"] for t in http.get("/tilesets").json() if t.get("kind") == "components"}
    assert "components" in drawn_by_panel
    assert [layer["id"] for layer in spec["layers"] if layer["id"] not in drawn_by_panel] == [
        layer["id"] for layer in page["layers"]
    ]
    urls = [layer["data"] for layer in spec["layers"] if isinstance(layer.get("data"), str)]
    assert urls and all(url.startswith(server + "/") for url in urls)
    assert spec["initialViewState"] == pytest.approx(page["initialViewState"])
    by_id = {layer["id"]: layer for layer in spec["layers"]}
    assert by_id["streets"]["getLineColor"] == [120, 180, 255, 230]  # the sample's viewer.json, through the server


@pytest.mark.browser
def test_the_html_export_draws_offline(server, tmp_path):
    out = to_html(from_server(server), tmp_path / "futian.html")
    assert "cdn." not in out.read_text(encoding="utf-8") and "https://" not in out.read_text(encoding="utf-8")[:2000]
    # opened from another origin than the server's (as a notebook's page is): CIM_CORS_ORIGINS lets it fetch tiles
    with serve({"/futian.html": out}, host="localhost", port=CORS_PORT) as base:
        report = browse(f"{base}/futian.html", screenshot=tmp_path / "export.png", timeout_ms=120_000)
    assert report["result"]["errors"] == [] and report["consoleErrors"] == [], report
    assert report["foreignRequests"] == [] and report["failedRequests"] == [], report
    assert "tileset:buildings" in report["result"]["layers"]
    img = np.asarray(Image.open(tmp_path / "export.png").convert("RGB")).astype(int)
    background = np.array([0x0B, 0x12, 0x20])
    drawn = (np.abs(img - background).sum(axis=2) > 60).mean()
    street_blue = (np.abs(img - np.array([120, 180, 255])).sum(axis=2) < 90).sum()  # the streets' outlines
    white_model = ((img.min(axis=2) > 150) & (img.max(axis=2) - img.min(axis=2) < 30)).sum()  # buildings' shades
    assert drawn > 0.01 and street_blue > 300 and white_model > 300, (drawn, street_blue, white_model)
