"""Models replace the white model where they stand (viewer/static/models.js) in headless Chromium:
the FZK-Haus IFC is imported with `cim import bim` over a building of the sample's white model; with
the model on, that building (under its outline) is neither drawn nor pickable, while its neighbour
still is; with the switch (模型, whitemodel=all in the URL, or a dashboard's cim:models.showBoth) both
are drawn; with the model off, the white model is whole again."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pyproj
import pytest
import shapely

from tests.browser import browse
from tests.conftest import DATA, run_cim

NAME = "test_models_bim"
IFC = DATA / "ifc" / "AC20-FZK-Haus.ifc"
GK = pyproj.CRS.from_epsg(4547)  # CGCS2000 / 3-degree Gauss-Kruger CM 114E: metres
TO_GK = pyproj.Transformer.from_crs(4326, GK, always_xy=True).transform
TO_LONLAT = pyproj.Transformer.from_crs(GK, 4326, always_xy=True).transform
BACKGROUND = (11, 16, 23)  # the stage's colour (viewer.css), nothing drawn
ZOOM = 18

#: in the page: wait for a condition; capture the map's pixels; sample points (picks and pixels)
HELPERS = """const wait = async (test, what) => {
  for (const t0 = Date.now(); !test(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > 30000) throw new Error("timed out waiting for " + what);
};
const frames = async () => {
  for (let i = 0; i < 4; i++) await new Promise((r) => requestAnimationFrame(r));
  await new Promise((r) => setTimeout(r, 400));
};
const capture = async () => {
  await frames();
  const canvas = cimViewer.deck.getCanvas();
  cimViewer.deck.redraw("capture");  // drawn now: the drawing buffer is read in the same task
  const image = new Image();
  image.src = canvas.toDataURL("image/png");
  await image.decode();
  const c = document.createElement("canvas");
  c.width = image.width; c.height = image.height;
  const g = c.getContext("2d");
  g.drawImage(image, 0, 0);
  return { data: g.getImageData(0, 0, c.width, c.height).data, width: c.width, scale: c.width / canvas.clientWidth };
};
// each point [lon, lat, z]: the building picked there (buildings__pick) and the pixel's colour
const sample = async (points) => {
  const frame = await capture();
  const vp = cimViewer.deck.getViewports()[0];
  return points.map(([lon, lat, z]) => {
    const [x, y] = vp.project([lon, lat, z]);
    const hit = cimViewer.deck.pickObject({ x, y, radius: 0, layerIds: ["buildings__pick"] });
    const i = (Math.round(y * frame.scale) * frame.width + Math.round(x * frame.scale)) * 4;
    const seen = x >= 0 && y >= 0 && x < vp.width && y < vp.height;
    const rgb = seen ? [...frame.data.slice(i, i + 3)] : null;
    return { id: hit && hit.object ? hit.object.properties.id : null, rgb, xy: [Math.round(x), Math.round(y)] };
  });
};
const M = () => __cimModels;"""


def _script(body: str, result: str, **values: Any) -> str:
    for name, value in values.items():
        body = body.replace(name, json.dumps(value, ensure_ascii=False))
    return f"(async () => {{ {HELPERS} {body} return {result}; }})()"


def _failed(report: dict) -> list[str]:
    return [r for r in report["failedRequests"] if not r.endswith("net::ERR_ABORTED")]


def _clean(report: dict) -> None:
    assert report["pageErrors"] == [] and report["consoleErrors"] == [] and _failed(report) == [], report
    assert report["foreignRequests"] == []


def _metric(geometry):
    return shapely.transform(geometry, lambda xy: np.column_stack(TO_GK(xy[:, 0], xy[:, 1])))


def _grid(area, step: float, z: float) -> list[list[float]]:
    """Points every ``step`` metres inside ``area`` (metric), as [lon, lat, z]."""
    x0, y0, x1, y1 = area.bounds
    points = []
    y = y0 + step / 2
    while y < y1:
        x = x0 + step / 2
        while x < x1:
            if area.contains(shapely.Point(x, y)):
                lon, lat = TO_LONLAT(x, y)
                points.append([lon, lat, z])
            x += step
        y += step
    return points


def _top(props: dict) -> float:
    return max(props.get("base_height") or 0.0, 0.0) + props["height"]


@pytest.fixture(scope="module")
def site(settings, sample, http) -> dict:
    """A building of the white model near the sample's centre with a neighbour 10-60 m away; FZK-Haus
    imported on the building's centre; points on the building away from the house's outline, and on
    the neighbour."""
    layers = {layer["name"]: layer for layer in http.get("/layers").json()}
    w, s, e, n = layers["buildings"]["bbox"]
    lon, lat = (w + e) / 2, (s + n) / 2
    box = f"{lon - 0.006:.6f},{lat - 0.006:.6f},{lon + 0.006:.6f},{lat + 0.006:.6f}"
    features = http.get("/layers/buildings/items", params={"bbox": box, "limit": 5000}).json()["features"]
    shapes = [(f["properties"], _metric(shapely.geometry.shape(f["geometry"]))) for f in features]
    centre = shapely.Point(TO_GK(lon, lat))
    chosen = None
    for props, shape in sorted(shapes, key=lambda ps: ps[1].distance(centre)):
        if not (600 <= shape.area <= 3000 and shape.area > 0.95 * shape.convex_hull.area and props["height"] <= 60):
            continue
        near = [(p, g) for p, g in shapes if p["id"] != props["id"] and 10 <= g.distance(shape) <= 60]
        near = [(p, g) for p, g in near if 300 <= g.area <= 3000 and p["height"] <= 60]
        if near:
            chosen = (props, shape, min(near, key=lambda pg: pg[1].distance(shape)))
            break
    assert chosen is not None, "no building fit for the test near the sample's centre"
    props, shape, (nprops, nshape) = chosen
    c_lon, c_lat = TO_LONLAT(shape.centroid.x, shape.centroid.y)
    base = max(props.get("base_height") or 0.0, 0.0)
    run_cim(
        settings, "import", "bim", str(IFC), "--name", NAME, "--anchor", f"{c_lon:.7f},{c_lat:.7f},{base:.2f},0",
        "--vertical-datum", "ellipsoidal", check=True,
    )  # fmt: skip
    outline_fc = http.get(f"/layers/{NAME}_outline/items").json()
    outline = _metric(shapely.geometry.shape(outline_fc["features"][0]["geometry"]))
    assert outline.intersection(shape).area > 0.5 * outline.area  # the house stands on the building
    target = shape.buffer(-1.5).difference(outline.buffer(3.0))
    inside = outline.buffer(-1.0)
    return {
        "id": props["id"],
        "neighbour": nprops["id"],
        "centre": [c_lon, c_lat],
        "target": _grid(target, 2.5, _top(props)),
        "other": _grid(nshape.buffer(-1.5), 2.5, _top(nprops)),
        "house": _grid(inside, 1.5, base + 3.0),
        "outline_m2": outline.area,
        "building_m2": shape.area,
    }


def _drawn(rgb: list[int] | None) -> bool:
    return rgb is not None and max(abs(a - b) for a, b in zip(rgb, BACKGROUND)) > 40


def _url(server: str, site: dict, extra: str = "") -> str:
    lon, lat = site["centre"]
    return f"{server}/viewer#view={lon:.7f},{lat:.7f},{ZOOM},0,0&layers=buildings,{NAME}{extra}"


@pytest.mark.browser
def test_the_white_model_is_hidden_under_a_bim_model_and_the_switch_shows_both(server, site, tmp_path):
    body = """
    const [t, o, h] = [TARGET, OTHER, HOUSE];
    const points = [...t, ...o, ...h];
    const split = (list) => ({ target: list.slice(0, t.length), other: list.slice(t.length, t.length + o.length),
                               house: list.slice(t.length + o.length) });
    const masked = { models: { ...M() }, points: split(await sample(points)) };
    const button = document.getElementById("models-switch");
    const title = button.title, label = button.textContent;
    button.click();
    await wait(() => M().showBoth && M().masked.length === 0, "both shown");
    const both = { models: { ...M() }, points: split(await sample(points)), hash: location.hash, title: button.title };
    button.click();
    await wait(() => !M().showBoth && M().masked.length > 0, "the white model masked again");
    const hashAfter = location.hash;
    cimViewer.setLayerVisible(NAME, false);
    await wait(() => M().footprints === 0, "the model off");
    const off = { models: { ...M() }, points: split(await sample(points)) };
    """
    result = "{ masked, both, off, title, label, hashAfter }"
    script = _script(body, result, TARGET=site["target"], OTHER=site["other"], HOUSE=site["house"], NAME=NAME)
    report = browse(_url(server, site), eval=script, screenshot=tmp_path / "masked.png")
    _clean(report)
    out = report["eval"]
    masked, both, off = out["masked"], out["both"], out["off"]

    # the model on: its outline in the mask, the white model's two layers masked, the building under it hidden whole
    assert masked["models"]["footprints"] == 1 and masked["models"]["buildings"] >= 1
    assert masked["models"]["models"] == [NAME] and masked["models"]["errors"] == []
    assert sorted(masked["models"]["masked"]) == ["buildings__pick", "tileset:buildings"]
    assert out["label"] == "模型" and out["title"] == "显示白模"

    # the white model whole (the model off): the points on the building pick it and are drawn
    target_ok = [i for i, p in enumerate(off["points"]["target"]) if p["id"] == site["id"] and _drawn(p["rgb"])]
    other_ok = [i for i, p in enumerate(off["points"]["other"]) if p["id"] == site["neighbour"] and _drawn(p["rgb"])]
    # (taller buildings nearby hide some of them: the points seen on the building are those compared below)
    assert len(target_ok) >= 20 and len(target_ok) >= 0.5 * len(site["target"]), (len(target_ok), len(site["target"]))
    picked = Counter(str(p["id"]) + ("+" if _drawn(p["rgb"]) else "") for p in off["points"]["other"])
    assert len(other_ok) >= 20, (len(other_ok), picked)
    assert off["models"]["masked"] == [] and off["models"]["footprints"] == 0

    # the model on: none of those points of the building under it is picked or drawn; the neighbour's all are
    hidden = [masked["points"]["target"][i] for i in target_ok]
    assert [p for p in hidden if p["id"] == site["id"]] == []
    assert [p for p in hidden if _drawn(p["rgb"])] == []
    kept = [masked["points"]["other"][i] for i in other_ok]
    assert all(p["id"] == site["neighbour"] and _drawn(p["rgb"]) for p in kept)
    # the house itself is drawn (its roof over the outline)
    house = masked["points"]["house"]
    assert len(house) >= 10 and sum(_drawn(p["rgb"]) for p in house) >= 0.8 * len(house)
    assert all(p["id"] != site["id"] for p in house)  # not picked through the house either

    # the switch: both drawn, the building picked again; the URL says so, and no more once switched back
    shown = [both["points"]["target"][i] for i in target_ok]
    assert all(p["id"] == site["id"] and _drawn(p["rgb"]) for p in shown)
    assert both["models"]["showBoth"] is True and both["models"]["masked"] == []
    assert "whitemodel=all" in both["hash"] and "whitemodel" not in out["hashAfter"]
    assert both["title"] == "隐藏白模重叠部分"


@pytest.mark.browser
def test_the_url_and_a_dashboard_set_the_switch_in_english(server, site):
    body = """
    const first = { ...M() };
    cimViewer.setLanguage("en");
    const button = document.getElementById("models-switch");
    const english = { title: button.title, label: button.textContent };
    for (const f of cimViewer.onMessage) f({ type: "cim:models.showBoth", on: false });  // as a dashboard's message
    await wait(() => !M().showBoth && M().masked.length === 2, "masked by the message");
    const after = { ...M(), hash: location.hash, title: button.title };
    """
    report = browse(_url(server, site, "&whitemodel=all"), eval=_script(body, "{ first, english, after }"))
    _clean(report)
    out = report["eval"]
    assert out["first"]["showBoth"] is True and out["first"]["masked"] == [] and out["first"]["footprints"] == 1
    assert out["english"] == {"title": "Hide the white model under the models", "label": "Model"}
    assert out["after"]["showBoth"] is False and "whitemodel" not in out["after"]["hash"]
    assert out["after"]["title"] == "Show the white model too"


@pytest.mark.browser
def test_a_model_switched_on_after_the_white_model_has_drawn_hides_it(server, site):
    """The white model's tiles drawn first, the model switched on later: the tiles already drawn are
    masked too (deck.gl builds a tile's sublayer once, with the extensions it had then)."""
    body = """
    const points = TARGET;
    const before = await sample(points);
    cimViewer.setLayerVisible(NAME, true);
    await wait(() => M().footprints > 0 && M().masked.length === 2, "the model on, the white model masked");
    const after = await sample(points);
    """
    script = _script(body, "{ before, after, models: { ...M() } }", TARGET=site["target"], NAME=NAME)
    lon, lat = site["centre"]
    report = browse(f"{server}/viewer#view={lon:.7f},{lat:.7f},{ZOOM},0,0&layers=buildings", eval=script)
    _clean(report)
    out = report["eval"]
    seen = [i for i, p in enumerate(out["before"]) if p["id"] == site["id"] and _drawn(p["rgb"])]
    assert len(seen) >= 20, len(seen)
    after = [out["after"][i] for i in seen]
    assert out["models"]["models"] == [NAME] and out["models"]["errors"] == []
    # neither picked nor drawn: its tiles were drawn before the mask came, and are masked now
    assert [p for p in after if p["id"] == site["id"]] == []
    assert [p for p in after if _drawn(p["rgb"])] == [], sum(_drawn(p["rgb"]) for p in after)
