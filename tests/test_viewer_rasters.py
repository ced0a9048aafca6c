"""Imagery and terrain on the viewer (viewer/static/rasters.js) in headless Chromium: an
orthophoto of two epochs (the older blue, the newer red) and a terrain model imported with
`cim import raster` near the sample's centre; the newest epoch is the basemap, with its epoch
shown, and its tiles are drawn red where it lies; the terrain draws the DEM's hill (the view
differs from the flat one) with the imagery draped on it; the swipe shows the older epoch left
of the divider and the newer one right of it, and the divider follows the pointer; a viewer
with no raster asks for nothing but the (empty) list and looks as it did."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import rasterio
import shapely
from PIL import Image
from rasterio.transform import from_origin

from cim.geoid import undulation
from tests.browser import browse
from tests.conftest import REPO, run_cim

DOM = "test_v_dom"
DEM = "test_v_dem"
OLDER, NEWER = "2024-06-01", "2025-06-01"
RED, BLUE = (220, 30, 30), (30, 60, 220)
GK = pyproj.CRS.from_epsg(4547)  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
TO_GK = pyproj.Transformer.from_crs(4326, GK, always_xy=True)
SIZE = "1280x800"

#: in the page: wait for a condition (a function), up to 30 s
WAIT = """const wait = async (test, what) => {
  for (const t0 = Date.now(); !test(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > 30000) throw new Error("timed out waiting for " + what);
};
const R = () => __cimRasters;
const ids = () => cimViewer.deck.props.layers.filter((l) => l.props.visible).map((l) => l.id);"""


def _script(body: str, result: str, **values: Any) -> str:
    for name, value in values.items():
        body = body.replace(name, json.dumps(value, ensure_ascii=False))
    return f"(async () => {{ {WAIT} {body} return {result}; }})()"


def _failed(report: dict) -> list[str]:
    """The requests that failed, but tiles the camera's moves left behind (aborted)."""
    return [r for r in report["failedRequests"] if not r.endswith("net::ERR_ABORTED")]


def _clean(report: dict) -> None:
    assert report["pageErrors"] == [] and report["consoleErrors"] == [] and _failed(report) == [], report
    assert report["foreignRequests"] == []  # deck.gl, loaders.gl and the terrain worker: all from this server


def _write(path: Path, data: np.ndarray, origin: tuple[float, float], pixel: float, **profile: Any) -> Path:
    bands = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
        dtype=bands.dtype, crs=GK, transform=from_origin(origin[0], origin[1], pixel, pixel), **profile,
    ) as dst:  # fmt: skip
        dst.write(bands)
    return path


@pytest.fixture(scope="module")
def site(settings, sample, http, tmp_path_factory) -> dict:
    """At the sample's centre: an orthophoto of 2 km x 1.4 km (4 m pixels) of two epochs, blue then red,
    and a terrain model of 4 km x 4 km (20 m pixels): a plain at 10 m with a hill of 200 m in the middle."""
    layers = {layer["name"]: layer for layer in http.get("/layers").json()}
    w, s, e, n = layers["buildings"]["bbox"]
    lon, lat = (w + e) / 2, (s + n) / 2
    x0, y0 = TO_GK.transform(lon, lat)
    folder = tmp_path_factory.mktemp("viewer-rasters")
    for epoch, colour in ((OLDER, BLUE), (NEWER, RED)):
        rgb = np.empty((3, 350, 500), dtype="uint8")
        rgb[:] = np.array(colour, dtype="uint8")[:, None, None]
        path = _write(folder / f"dom-{epoch}.tif", rgb, (x0 - 1000, y0 + 700), 4.0)
        run_cim(settings, "import", "raster", str(path), "--name", DOM, "--kind", "dom", "--epoch", epoch, check=True)
    r, c = np.mgrid[0:200, 0:200]
    hill = 10.0 + 200.0 * np.exp(-(((r - 100) ** 2 + (c - 100) ** 2) / (2 * 25.0**2)))
    path = _write(folder / "dem.tif", hill.astype("float32"), (x0 - 2000, y0 + 2000), 20.0, nodata=-9999.0)
    run_cim(settings, "import", "raster", str(path), "--name", DEM, "--kind", "dem", "--epoch", NEWER, check=True)
    return {"lon": lon, "lat": lat}


def _view(site: dict, zoom: float, pitch: float = 0, bearing: float = 0) -> str:
    return f"view={site['lon']:.6f},{site['lat']:.6f},{zoom},{pitch},{bearing}"


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _near(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool(np.abs(pixel - np.array(colour)).max() <= tolerance)


@pytest.mark.browser
def test_the_newest_epoch_is_the_basemap_with_its_epoch_shown(server, site, tmp_path):
    shot = tmp_path / "basemap.png"
    body = """
    const entry = document.querySelector('#rasters li[data-raster="basemap"]');
    const label = entry.querySelector(".name").textContent;
    const options = [...entry.querySelectorAll(".epoch option")].map((o) => o.value);
    const before = { ...R().basemap };
    const order = cimViewer.deck.props.layers.map((l) => l.id);
    const data = cimViewer.deck.props.layers.find((l) => l.id === "rasters:basemap").props.data;
    // the older epoch from the panel's selector: its own tiles (?epoch=)
    const select = entry.querySelector(".epoch");
    select.value = `${DOM}@${OLDER}`;
    select.dispatchEvent(new Event("change"));
    await wait(() => R().basemap.epoch === OLDER && ids().includes("rasters:basemap"), "the older epoch");
    const olderData = cimViewer.deck.props.layers.find((l) => l.id === "rasters:basemap").props.data;
    const olderLabel = entry.querySelector(".name").textContent;
    const hash = location.hash;
    // switched off: no imagery layer left
    entry.querySelector(".toggle").click();
    await wait(() => !R().basemap.on, "the basemap off");
    const off = ids().filter((id) => id.startsWith("rasters:"));
    const offLayers = new URLSearchParams(location.hash.slice(1)).get("layers");
    cimViewer.setLanguage("en");
    const english = document.querySelector("#rasters h3").textContent;
    """
    result = """({label, options, before, order, data, olderData, olderLabel, hash, off, offLayers, english,
      hidden: document.getElementById("rasters").hidden, errors: R().errors})"""
    report = browse(
        f"{server}/viewer#{_view(site, 17)}&layers=basemap&basemap={DOM}",
        screenshot=shot,
        size=SIZE,
        eval=_script(body, result, DOM=DOM, OLDER=OLDER),
    )
    _clean(report)
    e = report["eval"]
    assert e["errors"] == [] and e["hidden"] is False
    assert e["label"] == f"影像 {NEWER}" and e["olderLabel"] == f"影像 {OLDER}"
    assert {f"{DOM}@{NEWER}", f"{DOM}@{OLDER}"} <= set(e["options"])
    assert e["before"]["name"] == DOM and e["before"]["epoch"] == NEWER and e["before"]["loadedTiles"] > 0
    assert e["order"][0] == "rasters:basemap"  # under every other layer
    assert f"/rasters/{DOM}/tiles/" in e["data"] and "epoch=" not in e["data"]
    assert f"epoch={OLDER}" in e["olderData"] and f"basemap={DOM}%40{OLDER}" in e["hash"]
    assert e["off"] == [] and e["offLayers"] == ""  # off: no longer among the layers shown
    assert e["english"] == "Imagery and terrain"
    pixels = _pixels(shot)
    # red where the orthophoto is (the whole map at this zoom; the panel covers the left)
    for x, y in ((500, 200), (800, 400), (1200, 700)):
        assert _near(pixels[y, x], RED), (x, y, pixels[y, x])


@pytest.mark.browser
def test_the_basemap_is_listed_off_until_switched_on_and_a_layer_of_the_url(server, site, http):
    listed = http.get("/rasters").json()
    newest = max((r for r in listed if r["kind"] == "dom"), key=lambda r: (r["epoch"], r["imported_at"]))
    result = """({basemap: R().basemap, layers: (new URLSearchParams(location.hash.slice(1)).get("layers") || "")
      .split(","), ids: ids()})"""
    # off by default with CIM_VIEWER_GROUND off (the test session's; its default, on, is the test below). The
    # default layers (no `layers=`) are every layer of the session's database, other modules' models included: the
    # view is out at sea, where none of them has a tile to load
    report = browse(f"{server}/viewer#view=114.3,22.3,16,0,0", eval=_script("", result))
    _clean(report)
    e = report["eval"]
    assert e["basemap"]["name"] == newest["name"] and e["basemap"]["on"] is False
    assert "rasters:basemap" not in e["ids"] and "basemap" not in e["layers"]
    # switched on by the URL's layers: the newest orthophoto, under every layer, and a link keeps it
    report = browse(f"{server}/viewer#{_view(site, 16)}&layers=basemap,buildings", eval=_script("", result))
    _clean(report)
    e = report["eval"]
    assert e["basemap"]["name"] == newest["name"] and e["basemap"]["epoch"] == newest["epoch"]
    assert e["basemap"]["loadedTiles"] > 0 and e["ids"][0] == "rasters:basemap" and "basemap" in e["layers"]
    assert "terrain" not in e["layers"]  # the terrain: off until switched on


@pytest.mark.browser
def test_the_terrain_draws_the_hill_with_the_imagery_draped(server, site, tmp_path):
    flat, raised = tmp_path / "flat.png", tmp_path / "terrain.png"
    view = _view(site, 14.2, 60, 20)
    body = """const flat = { ids: ids(), basemap: { ...R().basemap } };"""
    report = browse(
        f"{server}/viewer#{view}&layers=basemap&basemap={DOM}",
        screenshot=flat,
        size=SIZE,
        eval=_script(body, "flat"),
    )
    _clean(report)
    assert report["eval"]["ids"] == ["rasters:basemap"]
    body = """
    const entry = document.querySelector('#rasters li[data-raster="terrain"]');
    const terrain = cimViewer.deck.layerManager.getLayers({ layerIds: ["rasters:terrain"] })
      .find((l) => l.id === "rasters:terrain");
    const on = { ids: ids(), terrain: { ...R().terrain }, checked: entry.querySelector(".toggle").checked,
                 texture: terrain.props.texture, zRange: terrain.state.zRange };
    // off again: the flat basemap is back
    entry.querySelector(".toggle").click();
    await wait(() => !R().terrain.on && ids().includes("rasters:basemap"), "the flat basemap");
    """
    result = "({on, off: ids(), errors: R().errors})"
    report = browse(
        f"{server}/viewer#{view}&layers=basemap,terrain&basemap={DOM}&terrain={DEM}",
        screenshot=raised,
        size=SIZE,
        eval=_script(body, result),
    )
    _clean(report)
    e = report["eval"]
    assert e["errors"] == []
    assert e["on"]["ids"] == ["rasters:terrain"] and e["on"]["checked"] is True  # the flat basemap hidden
    assert e["on"]["terrain"]["name"] == DEM and e["on"]["terrain"]["loadedTiles"] > 0
    assert f"/rasters/{DOM}/tiles/" in e["on"]["texture"]  # the imagery draped on it
    # the meshes' heights: the hill's top (210 m above the geoid, some 3 m less above the ellipsoid), decoded
    # from the Terrain-RGB tiles as the server encodes them
    assert 200 < e["on"]["zRange"][1] < 212, e["on"]["zRange"]
    assert e["off"] == ["rasters:basemap"]
    a, b = _pixels(flat), _pixels(raised)
    changed = (np.abs(a - b).max(axis=2) > 40).mean()
    assert changed > 0.05, changed  # the hill stands up: the view is another
    # the terrain beyond the orthophoto is drawn (light grey: no imagery there), where the flat view is dark
    grey = (b.min(axis=2) > 120) & (np.ptp(b, axis=2) < 40)
    assert grey.mean() > 0.02, grey.mean()
    reddish = (b[..., 0] > 100) & (b[..., 0] > 2 * b[..., 2])
    assert reddish.mean() > 0.05, reddish.mean()  # and the red imagery on it


@pytest.mark.browser
def test_the_swipe_shows_one_epoch_on_each_side_of_the_divider(server, site, tmp_path):
    shot = tmp_path / "swipe.png"
    body = """
    const entry = document.querySelector('#rasters li[data-raster="swipe"]');
    const first = { ...R().swipe, ids: ids(), checked: entry.querySelector(".toggle").checked,
                    labels: [...document.querySelectorAll("#swipe .swipe-label")].map((e) => e.textContent) };
    // the divider follows the pointer
    const line = document.querySelector("#swipe .swipe-line");
    const at = (type, x) => line.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: 400, pointerId: 7,
                                                                       bubbles: true, isPrimary: true }));
    at("pointerdown", first.x);
    at("pointermove", 500);
    at("pointermove", 384);
    at("pointerup", 384);
    const moved = { x: R().swipe.x, swipe: new URLSearchParams(location.hash.slice(1)).get("swipe"),
                    left: document.getElementById("swipe").style.left };
    entry.querySelector(".toggle").click();
    await wait(() => !R().swipe.on, "the swipe off");
    const off = { ids: ids(), divider: document.getElementById("swipe").hidden };
    """
    result = "({first, moved, off, errors: R().errors})"
    report = browse(
        f"{server}/viewer#{_view(site, 17)}&layers=basemap&basemap={DOM}&swipe={DOM}@{OLDER},{DOM}@{NEWER},0.6",
        screenshot=shot,
        size=SIZE,
        eval=_script(body, result),
    )
    _clean(report)
    e = report["eval"]
    assert e["errors"] == []
    first = e["first"]
    assert first["on"] is True and first["checked"] is True and first["loadedTiles"] > 0
    assert first["left"] == f"{DOM}@{OLDER}" and first["right"] == f"{DOM}@{NEWER}"
    assert first["ids"] == ["rasters:swipe:left", "rasters:swipe:right"]
    assert abs(first["x"] - 0.6 * 1280) < 1 and first["labels"] == [OLDER, NEWER]
    assert abs(e["moved"]["x"] - 384) < 1 and e["moved"]["left"] == "384px"
    assert e["moved"]["swipe"] == f"{DOM}@{OLDER},{DOM}@{NEWER},0.300"  # in the URL: a link opens the same
    assert e["off"] == {"ids": ["rasters:basemap"], "divider": True}
    pixels = _pixels(shot)
    divider = int(0.6 * 1280)
    for x in (divider - 300, divider - 60, divider - 12):
        assert _near(pixels[600, x], BLUE), (x, pixels[600, x])  # the older epoch, left of the divider
    for x in (divider + 12, divider + 60, divider + 400):
        assert _near(pixels[600, x], RED), (x, pixels[600, x])  # the newer, right of it
    for y in (150, 400, 780):  # along the whole divider, also where the view is far (no pitch here: same)
        assert _near(pixels[y, divider - 20], BLUE) and _near(pixels[y, divider + 20], RED), y


def _hue(pixel: np.ndarray) -> str:
    r, _, b = (int(v) for v in pixel)
    return "red" if r > b + 60 else "blue" if b > r + 60 else "other"


@pytest.mark.browser
@pytest.mark.parametrize("terrain", [False, True], ids=["flat", "terrain"])
def test_the_swipe_follows_the_screen_line_on_a_turned_and_tilted_map(server, site, tmp_path, terrain):
    shot = tmp_path / "swipe.png"
    swipe = f"swipe={DOM}@{OLDER},{DOM}@{NEWER},0.5"
    body = "const drawn = { ids: ids(), terrain: { ...R().terrain } };"
    report = browse(
        f"{server}/viewer#{_view(site, 17.3, 50, 35)}&basemap={DOM}&{swipe}"
        + (f"&layers=basemap,terrain&terrain={DEM}" if terrain else "&layers=basemap"),
        screenshot=shot,
        size=SIZE,
        eval=_script(body, "drawn"),
    )
    _clean(report)
    e = report["eval"]
    if terrain:  # the two epochs draped on two terrains, each clipped on its side
        assert e["ids"] == ["rasters:terrain:left", "rasters:terrain:right"] and e["terrain"]["loadedTiles"] > 0
    else:
        assert e["ids"] == ["rasters:swipe:left", "rasters:swipe:right"]
    pixels = _pixels(shot)
    for y in (450, 600, 780):  # a screen line: at every height the same x, however far the ground there is
        sides = [_hue(pixels[y, 640 - 20]), _hue(pixels[y, 640 + 20])]
        assert sides == ["blue", "red"], (y, pixels[y, 620], pixels[y, 660])


@pytest.mark.browser
def test_a_viewer_with_no_raster_asks_for_the_list_only(tmp_path):
    """The page as a server with no raster (and no layer) serves it: the list is empty."""
    from tests.static_server import serve
    from viewer.assets import STATIC_DIR, VENDOR
    from viewer.page import viewer_config, viewer_page

    (tmp_path / "viewer.html").write_text(viewer_page(viewer_config([])))
    (tmp_path / "rasters.json").write_text("[]")
    mounts = {"/viewer": tmp_path / "viewer.html", "/viewer/static": STATIC_DIR, "/rasters": tmp_path / "rasters.json"}
    mounts |= {f"/viewer/vendor/{name}": REPO / "node_modules" / path for name, path in VENDOR.items()}
    body = (
        "for (let i = 0; i < 200 && R().rasters === null; i++) await new Promise((r) => setTimeout(r, 50));"
        "await new Promise((r) => setTimeout(r, 300));"
    )  # the list answered (under load this takes a while), then a moment for anything it would start
    result = """({resources: performance.getEntriesByType("resource").map((r) => new URL(r.name).pathname),
      layers: cimViewer.deck.props.layers.map((l) => l.id), hidden: document.getElementById("rasters").hidden,
      divider: !!document.getElementById("swipe"), panel: document.getElementById("layer-list").textContent.trim(),
      hash: location.hash, rasters: R().rasters, errors: R().errors})"""
    with serve(mounts) as base:
        report = browse(f"{base}/viewer", eval=_script(body, result))
    _clean(report)
    e = report["eval"]
    assert e["rasters"] == [] and e["errors"] == []
    assert [p for p in e["resources"] if p.startswith("/rasters")] == ["/rasters"]  # no tile, no epoch asked
    assert not any("terrain-worker" in p for p in e["resources"])
    assert e["layers"] == [] and e["hidden"] is True and e["divider"] is False
    assert e["panel"] == "尚无图层：请先导入数据"
    assert "basemap" not in e["hash"] and "terrain" not in e["hash"] and "swipe" not in e["hash"]


def test_the_page_wires_the_rasters_module():
    from tiles.raster import TERRAIN_RGB_OFFSET, TERRAIN_RGB_STEP
    from viewer.assets import VENDOR
    from viewer.page import I18N, viewer_config, viewer_page

    config = viewer_config([], base_url="http://example.test")
    decoder = config["rasters"]["elevationDecoder"]
    assert decoder == pytest.approx({"rScaler": 6553.6, "gScaler": 25.6, "bScaler": 0.1, "offset": -10000.0})
    # a height back from a Terrain-RGB colour, as deck.gl's TerrainLayer decodes it
    r, g, b = 1, 134, 160  # (1 * 65536 + 134 * 256 + 160) * 0.1 - 10000 = 3.2 m
    height = r * decoder["rScaler"] + g * decoder["gScaler"] + b * decoder["bScaler"] + decoder["offset"]
    assert abs(height - ((r * 65536 + g * 256 + b) * TERRAIN_RGB_STEP + TERRAIN_RGB_OFFSET)) < 1e-6
    assert config["rasters"]["loadOptions"] == {
        "terrain": {"workerUrl": "http://example.test/viewer/vendor/terrain-worker.js"}
    }
    assert (REPO / "node_modules" / VENDOR["terrain-worker.js"]).is_file()
    assert set(I18N["zh"]) == set(I18N["en"]) and I18N["zh"]["swipe"] == "卷帘对比" and I18N["zh"]["imagery"] == "影像"
    page = viewer_page(config)
    assert '<script src="/viewer/static/rasters.js"></script>' in page and '<section id="rasters" hidden>' in page


@pytest.mark.browser
def test_the_vector_layers_lie_on_the_terrain(server, site):
    body = """
    const extensions = (id) => cimViewer.deck.props.layers.find((l) => l.id === id).props.extensions
      .map((e) => `${e.constructor.extensionName} ${e.opts.on ? "on" : "off"}`);
    // the streets' features right of the panel, as deck.gl picks them (on the terrain: through the terrain's pass)
    const picked = () => new Set(cimViewer.deck.pickObjects({ x: 340, y: 0, width: 940, height: 800 })
      .filter((o) => o.layer.id === "streets").map((o) => o.object.id)).size;
    const on = { streets: extensions("streets"), buildings: extensions("tileset:buildings"), picked: picked() };
    cimViewer.setLayerVisible("terrain", false);
    await wait(() => !R().terrain.on, "the terrain off");
    await new Promise((r) => setTimeout(r, 500));
    """
    result = """({on, off: extensions("streets"), picked: picked(), errors: R().errors})"""
    report = browse(
        f"{server}/viewer#{_view(site, 15, 50, 0)}&layers=basemap,terrain,streets,buildings&terrain={DEM}",
        eval=_script(body, result),
        timeout_ms=180_000,  # tilted: the terrain's and the imagery's tiles to the horizon, cut on demand
    )
    _clean(report)
    e = report["eval"]
    assert e["errors"] == []
    # the streets' polygons draped on the terrain (and picked there), the 3D Tiles at their own heights
    assert e["on"]["streets"] == ["TerrainExtension on"] and e["on"]["buildings"] == [] and e["on"]["picked"] > 0
    # the terrain off: flat again, drawn and picked as before
    assert e["off"] == ["TerrainExtension off"] and e["picked"] > 0


@pytest.mark.browser
def test_a_point_picked_on_the_terrain_has_the_terrains_height(server, site):
    """The measure tools' pick on the terrain (rasters.js draws it pickable): the hill's top and the plain
    beside it at the DEM's heights (made ellipsoidal by the import), so the height tool measures the hill;
    the terrain itself is no feature (no tooltip, no cim:clicked); a layer draped on it is picked at its height."""
    x0, y0 = TO_GK.transform(site["lon"], site["lat"])
    from_gk = pyproj.Transformer.from_crs(GK, 4326, always_xy=True)
    plain = from_gk.transform(x0 + 1800, y0)  # 90 pixels east of the hill's centre: the plain, 10 m (+0.3)
    body = """
    const viewport = cimViewer.deck.getViewports()[0];
    const pick = (lonlat) => { const [x, y] = viewport.project(lonlat); return cimViewer.tools.pickPoint(x, y); };
    const top = pick([LON, LAT]), flat = pick(PLAIN);
    const [x, y] = viewport.project([LON, LAT]);
    const info = cimViewer.deck.pickObject({ x, y, radius: 0 });
    const tooltip = cimViewer.deck.props.getTooltip(info);
    cimViewer.tools.measure("height", [top, flat]);
    const clicked = __cimResult.clicked || null;
    // the streets (district areas) draped on it: picked there, at the terrain's height
    cimViewer.setLayerVisible("streets", true);
    const onTop = () => cimViewer.deck.pickObject({ x, y, radius: 0 });
    await wait(() => onTop() && onTop().layer.id === "streets", "the streets on the terrain");
    const onStreet = pick([LON, LAT]), streetPick = { ...__cimTools.lastPick };
    """
    report = browse(
        f"{server}/viewer#{_view(site, 14.5)}&layers=basemap,terrain&terrain={DEM}",
        size=SIZE,
        timeout_ms=120_000,
        eval=_script(
            body,
            "{top, flat, picked: info && info.layer ? info.layer.id : null, tooltip, clicked,"
            " height: __cimTools.measure.height_m, onStreet, streetPick}",
            LON=site["lon"],
            LAT=site["lat"],
            PLAIN=list(plain),
        ),
    )
    _clean(report)
    e = report["eval"]
    assert e["picked"] and e["picked"].startswith("rasters:terrain"), e
    assert e["tooltip"] is None and e["clicked"] is None

    def dem(lon: float, lat: float) -> float:
        """The DEM's height (ellipsoidal) at a place, its pixels' centres interpolated."""
        x, y = TO_GK.transform(lon, lat)
        c, r = (x - (x0 - 2000)) / 20 - 0.5, ((y0 + 2000) - y) / 20 - 0.5
        return (
            10.0
            + 200.0 * math.exp(-((r - 100) ** 2 + (c - 100) ** 2) / (2 * 25.0**2))
            + float(undulation(np.array([lon]), np.array([lat]))[0])
        )

    # within the terrain mesh's error (2 m, rasters.js meshMaxError) and the depth buffer's precision
    for point in (e["top"], e["flat"]):
        assert abs(point[2] - dem(point[0], point[1])) < 3.0, (point, dem(point[0], point[1]))
    assert e["top"][2] > 190 and e["flat"][2] < 15
    assert abs(e["height"] - (dem(*e["top"][:2]) - dem(*e["flat"][:2]))) < 4.0, e["height"]
    assert e["streetPick"]["layer"] == "streets" and abs(e["onStreet"][2] - dem(*e["onStreet"][:2])) < 3.0, e


@pytest.mark.browser
def test_on_the_ground_by_default_the_buildings_stand_on_the_terrain(in_process, server, site, http):
    """CIM_VIEWER_GROUND (the default; the test session turns it off): a page opened without `layers=` has
    the newest orthophoto and DEM on, and a building's foot (its base_height, sampled from the DEM at its
    import) is where the terrain is drawn under it; a link that lists its layers still decides; the screen mode has
    the imagery only."""
    listed = http.get("/rasters").json()
    box = f"{site['lon'] - 0.004:.6f},{site['lat'] - 0.004:.6f},{site['lon'] + 0.004:.6f},{site['lat'] + 0.004:.6f}"
    features = http.get("/layers/buildings/items", params={"bbox": box, "limit": 200}).json()["features"]
    building = max(features, key=lambda f: f["properties"].get("base_height") or 0)
    polygon = shapely.geometry.shape(building["geometry"])
    centre = [polygon.representative_point().x, polygon.representative_point().y]
    # the basemap: the newest DOM; the terrain: the newest DEM under the view's centre (other modules' DEMs lie
    # elsewhere: the layers draped on the terrain would not be drawn here)
    west, south, east, north = (0, 1, 2, 3)
    under = [r for r in listed if r["kind"] == "dem" and r["bbox"][west] <= centre[0] <= r["bbox"][east]
             and r["bbox"][south] <= centre[1] <= r["bbox"][north]]  # fmt: skip
    newest = {
        "dom": max((r for r in listed if r["kind"] == "dom"), key=lambda r: r["epoch"]),
        "dem": max(under, key=lambda r: r["epoch"]),
    }
    body = """
    await wait(() => R().terrain.on && R().terrain.loadedTiles > 0, "the terrain");
    await new Promise((r) => setTimeout(r, 500));
    const opened = { ids: ids(), layers: new URLSearchParams(location.hash.slice(1)).get("layers").split(",") };
    const viewport = cimViewer.deck.getViewports()[0];
    const [x, y] = viewport.project(CENTRE);
    // the ground there: the terrain, or a layer draped on it (the district's areas cover it), the white model off
    cimViewer.setLayerVisible("buildings", false);
    const drawn = (id) => cimViewer.deck.layerManager.getLayers({ layerIds: [id] })
      .some((l) => l.id === id && l.props.visible);
    await wait(() => !drawn("buildings__pick") && !drawn("tileset:buildings"), "the white model off");
    // (the first picks after a change on the terrain may find nothing: deck.gl builds its picking cover then)
    await wait(() => cimViewer.deck.pickObject({ x, y, radius: 0 }), "the ground under the building picked");
    const [, , ground] = cimViewer.tools.pickPoint(x, y);  // the measure tools' pick
    const groundLayer = __cimTools.lastPick.layer;

    """
    result = """({basemap: R().basemap, terrain: R().terrain, ids: ids(),
      layers: new URLSearchParams(location.hash.slice(1)).get("layers").split(",")})"""
    view = f"view={centre[0]:.6f},{centre[1]:.6f},17,0,0"
    # the session's server as one with the setting's default (the route reads the settings at each request)
    own = in_process.app.state.settings
    in_process.app.state.settings = own.model_copy(update={"viewer_ground": True})
    try:
        report = browse(
            f"{server}/viewer#{view}",
            eval=_script(body, result[:-2] + ", ground, groundLayer, opened})", CENTRE=centre),
            timeout_ms=120_000,
        )
        listing = browse(f"{server}/viewer#{view}&layers=buildings", eval=_script("", result))
        screen = browse(f"{server}/viewer?mode=screen#{view}", eval=_script("", result))
    finally:
        in_process.app.state.settings = own
    _clean(report)
    _clean(listing)
    _clean(screen)
    e = report["eval"]
    assert e["basemap"]["on"] and e["basemap"]["name"] == newest["dom"]["name"]
    assert e["terrain"]["on"] and e["terrain"]["name"] == newest["dem"]["name"] and e["terrain"]["loadedTiles"] > 0
    opened = e["opened"]
    assert "rasters:terrain" in opened["ids"] and {"basemap", "terrain", "buildings"} <= set(opened["layers"])
    # the building's foot on the terrain drawn under it (not 0: the flat map it would float over), within the
    # terrain mesh's error (2 m) and the ground's fall across its footprint (base_height is the lowest of the DEM
    # under its corners and middle)
    base = building["properties"]["base_height"]
    assert e["groundLayer"] not in (None, "buildings__pick", "tileset:buildings")
    assert base > 5 and e["ground"] is not None and abs(e["ground"] - base) < 2.0, (e["ground"], base)
    # a link that lists its layers: as it says (no ground)
    e = listing["eval"]
    assert not e["basemap"]["on"] and not e["terrain"]["on"] and "rasters:terrain" not in e["ids"]
    # the screen mode (the district from above): the imagery, no terrain
    e = screen["eval"]
    assert e["basemap"]["on"] and not e["terrain"]["on"] and "rasters:basemap" in e["ids"]
