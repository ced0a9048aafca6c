"""The layer swipe (图层卷帘) on the viewer (viewer/static/swipe.js) in headless Chromium: two layers of the
sample left and right of a divider (the forest, green, and the ecological red line, red, where both cover the
whole view): left of the divider only the left layer is drawn, right of it only the right one; the divider
follows the pointer and the keys, and the boundary moves with it; a turned and tilted map is still split at
the screen line; the URL keeps it; the white model's 3D Tiles (its tiles' sublayers) are clipped too, also
when the swipe starts after they are drawn; the epoch swipe (rasters.js) and the layer swipe share the one
divider and never run together."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from tests.browser import browse
from tests.conftest import REPO, run_cim

SIZE = "1280x800"
W = 1280
#: where the sample's forest and ecological red line both cover a disc of some 195 m (at zoom 17.8: 600 px)
SPOT = (114.080149, 22.563372)
ZOOM = 17.8
DOM = "test_swipe_dom"
OLDER, NEWER = "2019-06-01", "2020-06-01"  # older than any other test's: never the newest, the default basemap

#: in the page: wait for a condition (a function), up to 30 s; frames drawn; the map as an image (no panel)
WAIT = """const wait = async (test, what) => {
  for (const t0 = Date.now(); !test(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > 30000) throw new Error("timed out waiting for " + what);
};
const frames = async (n = 5) => { for (let i = 0; i < n; i++) await new Promise((r) => requestAnimationFrame(r)); };
const settle = async () => { await frames(3); await wait(() => cimViewer.deck.props.layers.every((l) => !l.props.visible
  || l.isLoaded), "the layers loaded"); await frames(5); };
const S = () => __cimSwipe;
const R = () => __cimRasters;
const hashOf = (key) => new URLSearchParams(location.hash.slice(1)).get(key);
const swiped = () => cimViewer.deck.props.layers.filter((l) => l.props.visible).map((l) => [l.id,
  (l.props.extensions || []).filter((e) => e.constructor.extensionName === "SwipeExtension").map((e) => e.opts.side)])
  .filter(([, sides]) => sides.length);
const labels = () => [...document.querySelectorAll("#swipe .swipe-label")].map((e) => e.textContent);
const divider = () => ({ count: document.querySelectorAll("#swipe").length,
  hidden: document.getElementById("swipe") ? document.getElementById("swipe").hidden : null });
const shot = () => cimViewer.tools.exportPng();
const button = () => document.querySelector("#slot-top-right .cim-swipe-button");
const hasSwipe = (model) => Object.keys(model.shaderInputs.modules).includes("swipe");
"""


def _script(body: str, result: str, **values: Any) -> str:
    for name, value in values.items():
        body = body.replace(name, json.dumps(value, ensure_ascii=False))
    return f"(async () => {{ {WAIT} {body} return {result}; }})()"


def _clean(report: dict) -> None:
    failed = [r for r in report["failedRequests"] if not r.endswith("net::ERR_ABORTED")]
    assert report["pageErrors"] == [] and report["consoleErrors"] == [] and failed == [], report
    assert report["foreignRequests"] == []


def _view(zoom: float = ZOOM, pitch: float = 0, bearing: float = 0, spot: tuple[float, float] = SPOT) -> str:
    return f"view={spot[0]:.6f},{spot[1]:.6f},{zoom},{pitch},{bearing}"


def _pixels(source: Path | str) -> np.ndarray:
    """A screenshot's pixels, or a PNG data URL's (the map exported by tools.js: no panel, no divider)."""
    if isinstance(source, str):
        source = io.BytesIO(base64.b64decode(source.split(",", 1)[1]))
    return np.asarray(Image.open(source).convert("RGB")).astype(int)


def _hues(pixels: np.ndarray) -> np.ndarray:
    """Each pixel's layer: "forest" (green over the dark ground), "redline" (red), or "other"."""
    r, g = pixels[..., 0], pixels[..., 1]
    return np.where(g > r + 25, "forest", np.where(r > g + 20, "redline", "other"))


def _share(pixels: np.ndarray, xs: slice, ys: slice = slice(200, 600)) -> dict[str, float]:
    hues = _hues(pixels[ys, xs])
    return {h: float((hues == h).mean()) for h in ("forest", "redline", "other")}


def _split(pixels: np.ndarray, x: int, left: str, right: str, margin: int = 22, width: int = 300) -> None:
    """Left of the screen column x only the left layer, right of it only the right one (the margin: the
    divider's handle, in a screenshot)."""
    west = _share(pixels, slice(max(x - width, 0), x - margin))
    east = _share(pixels, slice(x + margin, min(x + width, W)))
    assert west[left] > 0.9 and west[right] == 0, (x, west)
    assert east[right] > 0.9 and east[left] == 0, (x, east)


@pytest.mark.browser
def test_the_layer_swipe_shows_each_side_s_layer_and_follows_the_divider(server, sample, tmp_path):
    shot = tmp_path / "swipe.png"
    body = """
    const first = { ...S(), swiped: swiped(), labels: labels(), divider: divider(), hash: hashOf("swipeLayers"),
                    layers: hashOf("layers"), button: button().textContent, title: button().title,
                    active: cimViewer.swipe.active, place: document.getElementById("swipe").style.left,
                    sublayers: cimViewer.deck.layerManager.getLayers().filter((l) => l.id.startsWith("forest-")
                      && !l.isComposite && l.props.extensions.some((e) => e.opts.side === -1)).length };
    // the divider follows the pointer, and the boundary with it
    const line = document.querySelector("#swipe .swipe-line");
    const at = (type, x) => line.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: 400, pointerId: 7,
                                                                       bubbles: true, isPrimary: true }));
    at("pointerdown", 0.6 * 1280);
    at("pointermove", 900);
    at("pointermove", 0.35 * 1280);
    at("pointerup", 0.35 * 1280);
    await frames();
    const dragged = { x: S().x, hash: hashOf("swipeLayers"), left: document.getElementById("swipe").style.left,
                      image: await shot() };
    // and the keys
    const handle = document.querySelector("#swipe .swipe-handle");
    handle.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    const keyed = { x: S().x, hash: hashOf("swipeLayers") };
    // off from the popover: both layers drawn whole again, and still shown
    button().click();
    const pop = document.querySelector(".cim-swipe-pop");
    const open = { hidden: pop.hidden, checked: pop.querySelector(".cim-swipe-on").checked, on: S().on,
                   left: pop.querySelector(".cim-swipe-left").value, right: pop.querySelector(".cim-swipe-right").value,
                   options: [...pop.querySelectorAll(".cim-swipe-left option")].map((o) => [o.value, o.textContent]) };
    const box = pop.querySelector(".cim-swipe-on");
    box.checked = false;
    box.dispatchEvent(new Event("change"));
    await frames();
    const off = { ...S(), swiped: swiped(), divider: divider(), hash: hashOf("swipeLayers"), layers: hashOf("layers"),
                  active: cimViewer.swipe.active, active_button: button().classList.contains("active"),
                  image: await shot() };
    """
    result = "({first, dragged, keyed, open, off})"
    report = browse(
        f"{server}/viewer#{_view()}&layers=forest,eco_redline&swipeLayers=forest,eco_redline,0.6",
        screenshot=shot,
        size=SIZE,
        eval=_script(body, result),
    )
    _clean(report)
    e = report["eval"]
    first = e["first"]
    assert first["on"] is True and first["errors"] == [] and first["active"] == "layers"
    assert first["left"] == "forest" and first["right"] == "eco_redline" and first["x"] == pytest.approx(0.6)
    # every deck layer of each entry gets its side's extension (the vector tiles' sublayers too)
    assert dict(map(tuple, [(i, tuple(s)) for i, s in first["swiped"]])) == {"forest": (-1,), "eco_redline": (1,)}
    assert first["sublayers"] > 0
    assert first["labels"] == ["林地", "生态保护红线"] and first["divider"] == {"count": 1, "hidden": False}
    assert first["place"] == "768px" and first["hash"] == "forest,eco_redline,0.600"
    assert first["button"] == "卷帘" and "卷帘" in first["title"]
    # the screenshot: forest left of the divider, the red line right of it
    _split(_pixels(shot), int(0.6 * W), "forest", "redline")
    # dragged to 35 %: the URL keeps it, the boundary is there
    dragged = e["dragged"]
    assert dragged["x"] == pytest.approx(0.35) and dragged["left"] == "448px"
    assert dragged["hash"] == "forest,eco_redline,0.350"
    _split(_pixels(dragged["image"]), 448, "forest", "redline", width=250)
    assert e["keyed"]["x"] == pytest.approx(0.37) and e["keyed"]["hash"] == "forest,eco_redline,0.370"
    # the popover: its selects list the layers by title, its switch is on
    opened = e["open"]
    assert opened["hidden"] is False and opened["checked"] is True and opened["on"] is True
    assert (opened["left"], opened["right"]) == ("forest", "eco_redline")
    assert ["forest", "林地"] in opened["options"] and ["buildings", "建筑"] in opened["options"]
    off = e["off"]
    assert off["on"] is False and off["swiped"] == [] and off["hash"] is None and off["active"] is None
    assert off["divider"]["hidden"] is True and off["active_button"] is False
    assert set(off["layers"].split(",")) == {"forest", "eco_redline"}
    # both layers over the whole view again: the red line over the forest, on either side of where the divider was
    image = _pixels(off["image"])
    for xs in (slice(250, 440), slice(460, 1000)):
        share = _share(image, xs)
        assert share["forest"] < 0.1 and share["redline"] < 0.1, share


@pytest.mark.browser
def test_a_turned_and_tilted_map_is_split_at_the_screen_line(server, sample, tmp_path):
    shot = tmp_path / "swipe.png"
    body = 'const state = { ...S(), hash: hashOf("swipeLayers"), view: hashOf("view") };'
    report = browse(
        f"{server}/viewer#{_view(ZOOM, 50, 35)}&layers=forest,eco_redline&swipeLayers=eco_redline,forest,0.55",
        screenshot=shot,
        size=SIZE,
        eval=_script(body, "state"),
    )
    _clean(report)
    e = report["eval"]
    assert e["on"] is True and (e["left"], e["right"]) == ("eco_redline", "forest")
    assert e["hash"] == "eco_redline,forest,0.550" and e["view"].endswith(",50.0,35.0")
    pixels = _pixels(shot)
    x = int(0.55 * W)
    for y in (320, 450, 600, 780):  # the same column at every height, however far the ground there is
        west, east = _hues(pixels[y, x - 60 : x - 8]), _hues(pixels[y, x + 8 : x + 60])
        assert (west == "redline").mean() > 0.9 and not (west == "forest").any(), (y, pixels[y, x - 30])
        assert (east == "forest").mean() > 0.9 and not (east == "redline").any(), (y, pixels[y, x + 30])


@pytest.mark.browser
def test_the_white_model_s_tiles_are_clipped_when_the_swipe_starts_after_them(server, sample, http):
    layers = {layer["name"]: layer for layer in http.get("/layers").json()}
    w, s, e, n = layers["buildings"]["bbox"]
    centre = ((w + e) / 2, (s + n) / 2)
    body = """
    await settle();
    const before = { ...S(), swiped: swiped() };
    // the button: the defaults (the first layer shown with a tileset or polygons, and its twin when there is one)
    button().click();
    const pop = document.querySelector(".cim-swipe-pop");
    const defaults = { left: S().left, right: S().right, on: S().on,
                       visible: ["buildings", "buildings_2026"].map((k) => cimViewer.isVisible(k)) };
    // the right side: the streets (the model left of the divider only)
    const right = pop.querySelector(".cim-swipe-right");
    right.value = "streets";
    right.dispatchEvent(new Event("change"));
    cimViewer.setLayerVisible("buildings_2026", false);  // shown by the defaults: no longer one of the two
    await settle();
    const tiles = cimViewer.deck.layerManager.getLayers().filter((l) => l.id.startsWith("tileset:buildings-scenegraph"))
      .map((l) => ({ id: l.id, cls: l.constructor.layerName, sides: l.props.extensions.map((x) => x.opts.side),
                     swipe: l.getModels().length > 0 && l.getModels().every(hasSwipe) }));
    const on = { ...S(), swiped: swiped(), tiles, image: await shot() };
    // off: the tiles drawn whole again (their models made again without the extension)
    window.postMessage({ type: "cim:swipe.layers", left: null }, location.origin);
    await wait(() => !S().on, "the swipe off");
    await settle();
    const offTiles = cimViewer.deck.layerManager.getLayers()
      .filter((l) => l.id.startsWith("tileset:buildings-scenegraph"))
      .map((l) => ({ sides: l.props.extensions.map((x) => x.opts.side), swipe: l.getModels().some(hasSwipe) }));
    const off = { ...S(), tiles: offTiles, image: await shot() };
    """
    result = "({before, defaults, on, off})"
    report = browse(
        f"{server}/viewer#{_view(16.6, 45, 0, centre)}&layers=buildings,streets",
        eval=_script(body, result),
        size=SIZE,
        timeout_ms=180_000,
    )
    _clean(report)
    e = report["eval"]
    assert e["before"]["on"] is False and e["before"]["swiped"] == []
    twin = "buildings_2026" in layers
    assert e["defaults"] == {
        "left": "buildings",
        "right": "buildings_2026" if twin else "streets",
        "on": True,
        "visible": [True, twin],
    }
    on = e["on"]
    assert on["left"] == "buildings" and on["right"] == "streets" and on["errors"] == []
    sides = dict(map(tuple, [(i, tuple(s)) for i, s in on["swiped"]]))
    assert sides["streets"] == (1,) and sides["tileset:buildings"] == (-1,) and sides["buildings__pick"] == (-1,)
    # the tiles' glTF sublayers: the extension, and models made again with it
    assert on["tiles"] and all(t["sides"] == [-1] and t["swipe"] for t in on["tiles"]), on["tiles"]
    white = lambda p: (p.min(axis=2) > 140) & (np.ptp(p, axis=2) < 45)  # noqa: E731
    image = _pixels(on["image"])
    x = W // 2
    west, east = white(image[150:700, 200 : x - 6]).mean(), white(image[150:700, x + 6 : W - 60]).mean()
    assert west > 0.02 and east == 0, (west, east)
    assert e["off"]["on"] is False
    assert e["off"]["tiles"] and all(t["sides"] == [] and not t["swipe"] for t in e["off"]["tiles"])
    image = _pixels(e["off"]["image"])
    assert white(image[150:700, x + 6 : W - 60]).mean() > 0.02  # the model right of the centre again


GK = pyproj.CRS.from_epsg(4547)  # CGCS2000 / 3-degree Gauss-Kruger CM 114E


@pytest.fixture(scope="module")
def epochs(settings, sample, http, tmp_path_factory) -> str:
    """An orthophoto of two epochs (400 m square at the spot): the epoch swipe can start."""
    if any(r["name"] == DOM for r in http.get("/rasters").json()):
        return DOM
    x0, y0 = pyproj.Transformer.from_crs(4326, GK, always_xy=True).transform(*SPOT)
    folder = tmp_path_factory.mktemp("viewer-swipe")
    for epoch, colour in ((OLDER, (30, 60, 220)), (NEWER, (220, 30, 30))):
        rgb = np.empty((3, 100, 100), dtype="uint8")
        rgb[:] = np.array(colour, dtype="uint8")[:, None, None]
        path = folder / f"dom-{epoch}.tif"
        with rasterio.open(
            path, "w", driver="GTiff", width=100, height=100, count=3, dtype="uint8", crs=GK,
            transform=from_origin(x0 - 200, y0 + 200, 4.0, 4.0),
        ) as dst:  # fmt: skip
            dst.write(rgb)
        run_cim(settings, "import", "raster", str(path), "--name", DOM, "--kind", "dom", "--epoch", epoch, check=True)
    return DOM


@pytest.mark.browser
def test_the_epoch_swipe_and_the_layer_swipe_share_one_divider_never_together(server, sample, epochs):
    body = """
    await wait(() => R().swipe.on, "the epoch swipe");
    const epoch = { on: R().swipe.on, layers: S().on, active: cimViewer.swipe.active, labels: labels(),
                    divider: divider(), swipe: hashOf("swipe"), swipeLayers: hashOf("swipeLayers") };
    // the layer swipe from its button: the epoch swipe ends, the divider (where it was) is the layer swipe's
    button().click();
    await wait(() => !R().swipe.on && !cimViewer.deck.props.layers.some((l) => l.id.startsWith("rasters:swipe")),
               "the epoch swipe off");
    const layers = { on: R().swipe.on, layers: S().on, left: S().left, right: S().right, x: S().x,
                     active: cimViewer.swipe.active, labels: labels(), divider: divider(), swipe: hashOf("swipe"),
                     swipeLayers: hashOf("swipeLayers"), checked: document.querySelector(
                       '#rasters li[data-raster="swipe"] .toggle').checked };
    // the epoch swipe again from its panel: the layer swipe ends
    document.querySelector('#rasters li[data-raster="swipe"] .toggle').click();
    await wait(() => R().swipe.on, "the epoch swipe again");
    const again = { on: R().swipe.on, layers: S().on, active: cimViewer.swipe.active, labels: labels(),
                    divider: divider(), swipe: hashOf("swipe"), swipeLayers: hashOf("swipeLayers"),
                    swiped: swiped().map(([id]) => id),
                    switch: document.querySelector(".cim-swipe-on").checked };
    // a dashboard's message: the layer swipe (its sides, the divider's place), in English
    window.postMessage({ type: "cim:swipe.layers", left: "eco_redline", right: "forest", x: 0.7 }, location.origin);
    await wait(() => S().on && !R().swipe.on, "the message obeyed");
    cimViewer.setLanguage("en");
    const message = { layers: S().on, left: S().left, right: S().right, x: S().x, labels: labels(),
                      divider: divider(), button: button().textContent, swipeLayers: hashOf("swipeLayers"),
                      swipe: hashOf("swipe") };
    window.postMessage({ type: "cim:swipe.layers", left: null }, location.origin);
    await wait(() => !S().on, "the layer swipe off");
    const off = { layers: S().on, epoch: R().swipe.on, divider: divider(), active: cimViewer.swipe.active,
                  errors: [...S().errors, ...R().errors] };
    """
    result = "({epoch, layers, again, message, off})"
    report = browse(
        f"{server}/viewer#{_view(16.5)}&layers=forest,eco_redline&swipe={DOM}@{OLDER},{DOM}@{NEWER},0.4",
        eval=_script(body, result),
        size=SIZE,
    )
    _clean(report)
    e = report["eval"]
    assert e["epoch"] == {
        "on": True,
        "layers": False,
        "active": "rasters",
        "labels": [OLDER, NEWER],
        "divider": {"count": 1, "hidden": False},
        "swipe": f"{DOM}@{OLDER},{DOM}@{NEWER},0.400",
        "swipeLayers": None,
    }
    layers = e["layers"]
    assert layers["on"] is False and layers["layers"] is True and layers["active"] == "layers"
    assert (layers["left"], layers["right"]) == ("forest", "eco_redline") and layers["x"] == pytest.approx(0.4)
    assert layers["labels"] == ["林地", "生态保护红线"] and layers["divider"] == {"count": 1, "hidden": False}
    assert layers["swipe"] is None and layers["swipeLayers"] == "forest,eco_redline,0.400"
    assert layers["checked"] is False  # the epoch swipe's switch, off
    again = e["again"]
    assert again["on"] is True and again["layers"] is False and again["active"] == "rasters"
    assert again["labels"] == [OLDER, NEWER] and again["divider"] == {"count": 1, "hidden": False}
    assert again["swipeLayers"] is None and again["swipe"] == f"{DOM}@{OLDER},{DOM}@{NEWER},0.400"
    assert set(again["swiped"]) == {"rasters:swipe:left", "rasters:swipe:right"} and again["switch"] is False
    message = e["message"]
    assert message["layers"] is True and (message["left"], message["right"]) == ("eco_redline", "forest")
    assert message["x"] == pytest.approx(0.7) and message["swipeLayers"] == "eco_redline,forest,0.700"
    assert message["swipe"] is None and message["button"] == "Swipe"
    assert message["labels"] == ["Ecological red line", "Forest"]
    assert e["off"] == {
        "layers": False,
        "epoch": False,
        "divider": {"count": 1, "hidden": True},
        "active": None,
        "errors": [],
    }


def test_the_page_loads_the_swipe_before_the_rasters():
    from viewer.page import viewer_config, viewer_page

    page = viewer_page(viewer_config([]))
    swipe, rasters = page.index("/viewer/static/swipe.js"), page.index("/viewer/static/rasters.js")
    assert 0 < swipe < rasters
    source = (REPO / "viewer" / "static" / "swipe.js").read_text()
    assert "cim:swipe.layers" in source and "swipeLayers" in source and "api.swipe = {" in source
