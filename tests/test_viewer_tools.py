"""The map tools for planners (viewer/static/tools.js) in headless Chromium: measured lengths and
areas against pyproj's Geod (Karney's algorithm) on WGS84, the scale bar against the metres per
pixel of the view (deck.gl's 512-px tiles), the north arrow's reset of the bearing, a measure done
by clicks on the map (and kept from the other modules' click handlers) equal to the same points
given to the API, a building's height measured from its foot to its roof, and the map exported as
a PNG with its scale bar and north arrow drawn on it."""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pyproj
import pytest
from PIL import Image

from tests.browser import browse

GEOD = pyproj.Geod(ellps="WGS84")
SIZE = "1280x800"
WIDTH, HEIGHT = 1280, 800

#: in the page: wait for a condition (a function), up to 20 s; sleep
WAIT = """const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const wait = async (test, what) => {
  for (const t0 = Date.now(); !test(); await sleep(100))
    if (Date.now() - t0 > 20000) throw new Error("timed out waiting for " + what);
};
const M = () => JSON.parse(JSON.stringify(__cimTools.measure));
// a click on the map as deck.gl hands it to its onClick prop: through every module's handler, the tools' first
const clickAt = (x, y) => cimViewer.deck.props.onClick({ x, y, coordinate: null, layer: null, object: null }, {});"""


def _script(body: str, result: str, **values: Any) -> str:
    for name, value in values.items():
        body = body.replace(name, json.dumps(value, ensure_ascii=False))
    return f"(async () => {{ {WAIT} {body} return {result}; }})()"


def _clean(report: dict) -> None:
    assert report["pageErrors"] == [] and report["consoleErrors"] == [], report
    assert report["foreignRequests"] == []


def _view(lon: float, lat: float, zoom: float, pitch: float = 0, bearing: float = 0) -> str:
    return f"view={lon:.7f},{lat:.7f},{zoom},{pitch},{bearing}"


def _mpp(lat: float, zoom: float) -> float:
    """Web Mercator metres per pixel at a latitude: deck.gl's zoom z is zoom z + 1 of 256-px tiles."""
    return 156543.03392 * math.cos(math.radians(lat)) / 2 ** (zoom + 1)


def _ring(lon: float, lat: float, steps: list[tuple[float, float]]) -> list[list[float]]:
    """A ring walked from (lon, lat): each step (azimuth in degrees, metres) along a geodesic."""
    points = [[lon, lat]]
    for azimuth, metres in steps:
        x, y, _ = GEOD.fwd(points[-1][0], points[-1][1], azimuth, metres)
        points.append([x, y])
    return points


def _pyproj_area(points: list[list[float]]) -> tuple[float, float]:
    area, perimeter = GEOD.polygon_area_perimeter([p[0] for p in points], [p[1] for p in points])
    return abs(area), perimeter


def _pyproj_length(points: list[list[float]]) -> float:
    return GEOD.line_length([p[0] for p in points], [p[1] for p in points])


@pytest.fixture(scope="module")
def centre(http) -> tuple[float, float]:
    layers = {layer["name"]: layer for layer in http.get("/layers").json()}
    w, s, e, n = layers["buildings"]["bbox"]
    return (w + e) / 2, (s + n) / 2


@pytest.fixture(scope="module")
def tower(db_url, sample) -> tuple[str, float, float, float, float]:
    """A tall building of the sample standing on the ground: (id, height, base_height, lon, lat of an inner point)."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT id, height, coalesce(base_height, 0), ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM layers.buildings WHERE height > 100 ORDER BY fid LIMIT 1"
        ).fetchone()


@pytest.mark.browser
def test_measured_lengths_and_areas_match_karney(server, centre):
    lon, lat = centre
    line_2km = _ring(lon, lat, [(63.0, 2000.0)])
    line_10km = _ring(lon - 0.05, lat - 0.02, [(80.0, 4000.0), (20.0, 3500.0), (95.0, 2600.0)])
    parcel = _ring(lon, lat, [(12.0, 62.0), (102.0, 41.5), (192.0, 58.0), (285.0, 44.0)])  # ~2,500 m², about 3.8 亩
    district = _ring(lon - 0.04, lat - 0.02, [(85.0, 7400.0), (10.0, 5200.0), (290.0, 4300.0), (235.0, 4100.0)])
    spanning = _ring(lon - 0.05, lat - 0.04, [(90.0, 10200.0), (0.0, 9800.0), (270.0, 10100.0)])  # ~10 km x 10 km
    cases = {"line_2km": line_2km, "line_10km": line_10km}
    polygons = {"parcel": parcel, "district": district, "spanning": spanning}
    body = """
    const out = {};
    for (const [name, points] of Object.entries(LINES)) out[name] = cimViewer.tools.measure("distance", points);
    for (const [name, points] of Object.entries(POLYGONS)) out[name] = cimViewer.tools.measure("area", points);
    out.readout = document.querySelector(".cim-readout-text").textContent;
    out.overlay = cimViewer.deck.props.layers.filter((l) => l.id.startsWith("measure"))
      .map((l) => [l.id, l.props.visible]);
    out.hash = location.hash;
    """
    report = browse(
        f"{server}/viewer#{_view(lon, lat, 13)}&layers=buildings",
        size=SIZE,
        eval=_script(body, "out", LINES=cases, POLYGONS=polygons),
    )
    _clean(report)
    out = report["eval"]
    for name, points in cases.items():
        expected = _pyproj_length(points)
        got = out[name]["distance_m"]
        assert abs(got - expected) < 1e-3, (name, got, expected)  # Vincenty: well under a millimetre
    assert abs(out["line_2km"]["distance_m"] - 2000.0) < 1e-3
    for name, points in polygons.items():
        area, perimeter = _pyproj_area(points)
        got = out[name]
        assert abs(got["area_m2"] - area) / area < 1e-5, (name, got["area_m2"], area)  # measured: ~2e-7 at most
        assert abs(got["perimeter_m"] - perimeter) < 1e-3, (name, got["perimeter_m"], perimeter)
    assert 2000 < out["parcel"]["area_m2"] < 3000
    assert 40e6 < out["district"]["area_m2"] < 60e6 and 95e6 < out["spanning"]["area_m2"] < 110e6
    # the last one shown: its area in 平方米, 亩 and 公顷, drawn on the map (the overlay, kept out of the URL)
    spanning_area = out["spanning"]["area_m2"]
    readout = out["readout"]
    assert "面积" in readout and "平方米" in readout and "亩" in readout and "公顷" in readout and "周长" in readout
    assert f"{spanning_area / (10000 / 15):,.2f} 亩" in readout and f"{spanning_area / 10000:,.2f} 公顷" in readout
    drawn = dict(out["overlay"])
    assert drawn["measure-fill"] and drawn["measure-line"] and drawn["measure-points"]
    assert any(key.startswith("measure-labels") for key in drawn)
    assert "measure" not in re.search(r"layers=([^&]*)", out["hash"]).group(1)


@pytest.mark.browser
def test_the_scale_bar_follows_the_view(server, centre):
    lon, lat = centre
    views = [(15.0, 0, 0), (17.3, 50, 30), (11.2, 0, 0)]
    body = """
    const out = [];
    for (const [zoom, pitch, bearing] of VIEWS) {
      cimViewer.setView({ longitude: LON, latitude: LAT, zoom, pitch, bearing }, 0);
      await sleep(300);
      const bar = document.querySelector(".cim-scale-bar").getBoundingClientRect();
      const label = document.querySelector(".cim-scale-label").textContent;
      out.push({ ...__cimTools.scale, barWidth: bar.width, label, zoom: cimViewer.viewState.zoom });
    }
    """
    report = browse(
        f"{server}/viewer#{_view(lon, lat, 14)}&layers=streets",
        size=SIZE,
        eval=_script(body, "out", VIEWS=views, LON=lon, LAT=lat),
    )
    _clean(report)
    for (zoom, _, _), scale in zip(views, report["eval"]):
        expected = _mpp(lat, zoom)
        assert abs(scale["metres"] / scale["pixels"] / expected - 1) < 0.002, (zoom, scale, expected)
        assert abs(scale["barWidth"] - scale["pixels"]) < 1.0
        assert 120 / 2.5 <= scale["pixels"] <= 120
        mantissa = scale["metres"] / 10 ** math.floor(math.log10(scale["metres"]))
        assert round(mantissa, 9) in (1, 2, 5), scale
        unit = "千米" if scale["metres"] >= 1000 else "米"
        number = scale["metres"] / 1000 if scale["metres"] >= 1000 else scale["metres"]
        assert scale["label"] == f"{number:g} {unit}"
    assert report["eval"][2]["label"].endswith("千米")


@pytest.mark.browser
def test_the_north_arrow_turns_and_resets_the_bearing(server, centre):
    lon, lat = centre
    body = """
    const arrow = document.querySelector(".cim-north");
    const turned = { bearing: __cimTools.bearing, pitch: __cimTools.pitch,
                     needle: arrow.querySelector(".cim-needle").style.transform, title: arrow.title };
    arrow.click();
    const up = () => Math.abs(cimViewer.viewState.bearing) < 1e-6 && Math.abs(cimViewer.viewState.pitch) < 1e-6;
    await wait(up, "north up");
    await sleep(1000);  // the transition's end
    const after = { view: cimViewer.viewState, bearing: __cimTools.bearing, pitch: __cimTools.pitch,
                    needle: arrow.querySelector(".cim-needle").style.transform };
    """
    report = browse(
        f"{server}/viewer#{_view(lon, lat, 15, 50, 40)}&layers=streets",
        size=SIZE,
        eval=_script(body, "{turned, after}"),
    )
    _clean(report)
    turned, after = report["eval"]["turned"], report["eval"]["after"]
    assert turned["bearing"] == 40 and turned["pitch"] == 50 and turned["needle"] == "rotate(-40deg)"
    assert "40°" in turned["title"] and "50°" in turned["title"]
    assert abs(after["view"]["bearing"]) < 1e-6 and abs(after["view"]["pitch"]) < 1e-6
    assert abs(after["view"]["longitude"] - lon) < 1e-6 and abs(after["view"]["latitude"] - lat) < 1e-6
    assert after["bearing"] == 0 and after["pitch"] == 0 and after["needle"] in ("rotate(0deg)", "rotate(-0deg)")


@pytest.mark.browser
def test_a_measure_by_clicks_is_the_measure_of_its_points(server, centre):
    lon, lat = centre
    body = """
    const passedBefore = __cimTools.passed;
    clickAt(100, 100);  // not measuring: passed on to the other modules
    const passedIdle = __cimTools.passed - passedBefore;
    // distance: three clicks, then a double-click (its two clicks one point) ends it
    document.querySelector(".cim-measure-distance").click();
    const controller = cimViewer.deck.props.controller;
    clickAt(420, 260); clickAt(880, 300); clickAt(860, 560); clickAt(860, 560);
    const during = { ...M(), done: !document.querySelector(".cim-measure-done").hidden };
    const dblclick = new MouseEvent("dblclick", { bubbles: true, clientX: 860, clientY: 560 });
    document.getElementById("map").dispatchEvent(dblclick);
    const distance = M();
    const distanceApi = cimViewer.tools.measure("distance", distance.points);
    // area: four clicks, then 完成
    document.querySelector(".cim-measure-area").click();
    clickAt(400, 250); clickAt(900, 240); clickAt(950, 600); clickAt(380, 620);
    const doneButton = document.querySelector(".cim-measure-done");
    const doneLabel = doneButton.textContent;
    doneButton.click();
    const area = M();
    const readout = document.querySelector(".cim-readout-text").textContent;
    const areaApi = cimViewer.tools.measure("area", area.points);
    // Esc cancels a measure under way
    document.querySelector(".cim-measure-distance").click();
    clickAt(500, 300);
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    const cancelled = { ...M(), readoutHidden: document.querySelector(".cim-readout").hidden };
    const passedMeasuring = __cimTools.passed - passedBefore - passedIdle;
    """
    result = (
        "{passedIdle, passedMeasuring, clicks: __cimTools.clicks, controller, during, distance, distanceApi, "
        "area, areaApi, doneLabel, readout, cancelled, after: cimViewer.deck.props.controller}"
    )
    report = browse(f"{server}/viewer#{_view(lon, lat, 15.5)}&layers=streets", size=SIZE, eval=_script(body, result))
    _clean(report)
    e = report["eval"]
    assert e["passedIdle"] == 1 and e["passedMeasuring"] == 0  # the tool's clicks reached no other module
    assert e["clicks"] == 9  # the double-click's second click among them, one point with the first
    assert e["controller"]["doubleClickZoom"] is False and e["after"] is True  # double-click zoom off while measuring
    assert e["during"]["active"] and len(e["during"]["points"]) == 3 and e["during"]["done"]
    distance, area = e["distance"], e["area"]
    assert not distance["active"] and len(distance["points"]) == 3
    assert distance["distance_m"] == e["distanceApi"]["distance_m"]
    assert abs(distance["distance_m"] - _pyproj_length(distance["points"])) < 1e-3
    # the clicks fell where the view puts them: 460 px across is 460 x the metres per pixel, give or take the bends
    first_leg = GEOD.inv(*distance["points"][0][:2], *distance["points"][1][:2])[2]
    assert abs(first_leg / math.hypot(460, 40) / _mpp(lat, 15.5) - 1) < 0.01
    assert e["doneLabel"] == "完成" and not area["active"] and len(area["points"]) == 4
    assert area["area_m2"] == e["areaApi"]["area_m2"] and area["perimeter_m"] == e["areaApi"]["perimeter_m"]
    expected, _ = _pyproj_area(area["points"])
    assert abs(area["area_m2"] - expected) / expected < 1e-5
    assert "平方米" in e["readout"] and "亩" in e["readout"]
    cancelled = e["cancelled"]
    assert cancelled["mode"] is None and cancelled["points"] == [] and cancelled["readoutHidden"]


@pytest.mark.browser
def test_a_buildings_height_from_its_foot_to_its_roof(server, tower):
    bid, height, base, lon, lat = tower
    roof = base + height  # the model stands on the terrain's height at its import (base_height), over the flat map
    body = """
    const pick = (x, y) => {
      const hit = cimViewer.deck.pickObject({ x, y, unproject3D: true });
      return hit && hit.object ? { id: hit.object.properties.id, z: hit.coordinate[2] } : null;
    };
    // looked down at from a little way off (its wall facing the map's centre in sight, from its roof down to its
    // foot), from a side where no other building hides that wall
    let found = null;
    const [kx, ky] = [111320 * Math.cos((LAT * Math.PI) / 180), 110574];  // metres per degree, near enough
    search: for (const metres of [150, 250]) {
      for (let azimuth = 0; azimuth < 360; azimuth += 45) {
        const a = (azimuth * Math.PI) / 180;
        const view = { longitude: LON + (metres * Math.sin(a)) / kx, latitude: LAT + (metres * Math.cos(a)) / ky };
        cimViewer.setView({ ...view, zoom: 17.5, pitch: 0, bearing: 0 }, 0);
        await sleep(2000);  // the pick layer's tiles
        const [tx, ty] = cimViewer.deck.getViewports()[0].project([LON, LAT, ROOF]);
        const top = pick(tx, ty);
        if (!top || top.id !== ID) continue;
        const [dx, dy] = [640 - tx, 400 - ty].map((d) => d / Math.hypot(640 - tx, 400 - ty));
        let foot = null;
        for (let step = 0; step < 600; step += 1) {
          const x = tx + dx * step, y = ty + dy * step, hit = pick(x, y);
          if (!hit || hit.id !== ID) break;
          foot = { x, y, z: hit.z };
        }
        if (foot && foot.z < BASE) { found = { view, top: { x: tx, y: ty, z: top.z }, foot }; break search; }
      }
    }
    if (!found) return { found };
    document.querySelector(".cim-measure-height").click();
    clickAt(found.foot.x, found.foot.y);
    const footPick = __cimTools.lastPick;
    const hint = document.querySelector(".cim-readout-text").textContent;
    clickAt(found.top.x, found.top.y);
    const topPick = __cimTools.lastPick;
    const measured = M();
    const readout = document.querySelector(".cim-readout-text").textContent;
    const api = cimViewer.tools.measure("height", measured.points);
    """
    report = browse(
        f"{server}/viewer#{_view(lon, lat, 17.5)}&layers=buildings",
        size=SIZE,
        timeout_ms=120_000,
        eval=_script(
            body,
            "{found, footPick, topPick, hint, measured, readout, api}",
            LON=lon,
            LAT=lat,
            ROOF=roof,
            BASE=base,
            ID=bid,
        ),
    )
    _clean(report)
    e = report["eval"]
    assert e["found"], "the tower is hidden from every side"
    # the clicks fell on the tower's pick layer: its roof 0.3 m above the model's, read back from the depth buffer,
    # and its wall below the model's foot
    assert e["topPick"]["layer"] == "buildings__pick" and e["topPick"]["id"] == bid
    assert abs(e["topPick"]["z"] - (roof + 0.3)) < 0.5, e["topPick"]
    assert e["footPick"]["id"] == bid and e["footPick"]["z"] < base
    measured = e["measured"]
    assert not measured["active"] and len(measured["points"]) == 2 and e["hint"] == "单击第二点（高处）"
    foot, top = measured["points"]
    assert foot[2] == pytest.approx(base, abs=1e-9) and top[2] == pytest.approx(roof, abs=1e-9)
    assert abs(measured["height_m"] - height) < 0.5, (measured["height_m"], height)
    assert abs(measured["height_m"] - height) < 1e-6  # kept within the model: from its foot to its roof
    horizontal = GEOD.inv(foot[0], foot[1], top[0], top[1])[2]
    assert abs(measured["horizontal_m"] - horizontal) < 1e-3 and 0 < measured["horizontal_m"] < 100
    assert e["api"]["height_m"] == measured["height_m"]
    assert "高差" in e["readout"] and "水平距离" in e["readout"] and f"{height:.1f} 米" in e["readout"]


@pytest.mark.browser
def test_the_map_exported_as_a_png(server, centre, tmp_path):
    lon, lat = centre
    body = """
    cimViewer.tools.measure("distance", [[LON - 0.004, LAT], [LON + 0.004, LAT + 0.002]]);
    await sleep(500);
    const url = await cimViewer.tools.exportPng();
    const shown = { ...__cimTools.export };
    // the button: the same image, downloaded under its name
    const names = [];
    const click = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function () { names.push(this.download); };
    document.querySelector(".cim-export").click();
    await wait(() => names.length, "the download");
    HTMLAnchorElement.prototype.click = click;
    """
    report = browse(
        f"{server}/viewer#{_view(lon, lat, 15.5, 40, 25)}&layers=buildings,streets",
        size=SIZE,
        eval=_script(body, "{url, shown, names, title: document.title}", LON=lon, LAT=lat),
    )
    _clean(report)
    e = report["eval"]
    head, data = e["url"].split(",", 1)
    assert head == "data:image/png;base64"
    path = tmp_path / "export.png"
    path.write_bytes(base64.b64decode(data))
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    shown = e["shown"]
    assert not shown["blank"] and shown["title"] == e["title"]
    # not blank: the white model's shades over much of the map, right of where the panel would be
    grey = (pixels.min(axis=2) > 120) & (np.ptp(pixels, axis=2) < 30)
    assert grey[:, 340:].mean() > 0.05
    # the scale bar: white where it was drawn, as long as the view's metres per pixel make its length
    bar = shown["scaleBar"]
    row = pixels[bar["y"] + bar["height"] // 2, bar["x"] + 1 : bar["x"] + bar["width"] - 1]
    assert (row >= 250).all(), row
    assert abs(bar["metres"] / bar["width"] / _mpp(lat, 15.5) - 1) < 0.01
    assert (pixels[bar["y"] - 1, bar["x"] + 1 : bar["x"] + bar["width"] - 1] < 80).all()  # its dark edge
    # the north arrow: its red half, turned with the map (bearing 25°: north up and to the left)
    north = shown["north"]
    cx, cy, r = north["x"], north["y"], north["r"]
    tip = (cx - 0.25 * r * math.sin(math.radians(25)), cy - 0.25 * r * math.cos(math.radians(25)))
    red = pixels[round(tip[1]), round(tip[0])]
    assert red[0] > 180 and red[1] < 110 and red[2] < 110, red
    # the title's box, top left: dark, with light text
    box = pixels[14:64, 14:200]
    assert (box.max(axis=2) > 200).any() and np.median(box) < 80
    # the download's name: the time of its own click, which may be the minute after the first export's
    assert re.fullmatch(r"cim-map-\d{8}-\d{4}\.png", shown["filename"]) and len(e["names"]) == 1
    stamps = [datetime.strptime(name, "cim-map-%Y%m%d-%H%M.png") for name in (shown["filename"], e["names"][0])]
    assert timedelta(0) <= stamps[1] - stamps[0] <= timedelta(minutes=1), stamps


@pytest.mark.browser
def test_the_tools_in_english_and_their_layout(server, centre):
    lon, lat = centre
    body = """
    const boxes = () => [...document.querySelectorAll("#slot-top-right .cim-tools > button")].filter((b) => !b.hidden)
      .map((b) => ({ text: b.textContent.trim(), title: b.title, rect: b.getBoundingClientRect().toJSON() }));
    document.querySelector(".cim-measure-distance").click();  // the 完成 button shows
    const zh = boxes();
    cimViewer.setLanguage("en");
    const en = boxes();
    const scale = document.querySelector(".cim-scale-label").textContent;
    const readout = document.querySelector(".cim-readout-text").textContent;
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    cimViewer.setLanguage("zh");
    const back = boxes().map((b) => b.text);
    const scaleBox = document.querySelector(".cim-scale").getBoundingClientRect().toJSON();
    const panel = document.getElementById("panel").getBoundingClientRect().toJSON();
    """
    report = browse(
        f"{server}/viewer#{_view(lon, lat, 15)}&layers=streets",
        size=SIZE,
        eval=_script(body, "{zh, en, scale, readout, back, scaleBox, panel}"),
    )
    _clean(report)
    e = report["eval"]
    zh, en = e["zh"], e["en"]
    assert [b["text"] for b in zh][1:] == ["测距", "测面", "测高", "完成", "导出"]
    assert [b["text"] for b in en][1:] == ["Dist", "Area", "Hgt", "Done", "PNG"]
    assert e["back"] == ["北", "测距", "测面", "测高", "导出"]  # 完成 gone with the measure (Esc)
    assert zh[0]["text"] == "北" and en[0]["text"] == "N"
    assert all(b["title"] for b in zh + en) and zh[1]["title"].startswith("测距") and "distance" in en[1]["title"]
    assert e["scale"].endswith(" m") and "Click to add points" in e["readout"]
    rects = [b["rect"] for b in zh]
    for r in rects:
        assert 36 <= r["width"] <= 40 and 36 <= r["height"] <= 40
        assert r["right"] <= WIDTH and r["bottom"] <= HEIGHT
    for a, b in itertools.pairwise(rects):
        assert b["top"] >= a["bottom"]  # a column: no two overlap
    s, p = e["scaleBox"], e["panel"]
    assert s["top"] >= p["bottom"] and s["bottom"] <= HEIGHT  # under the layer panel
