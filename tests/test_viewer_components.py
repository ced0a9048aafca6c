"""The city-components panel of the viewer (viewer/static/components.js) in headless
Chromium: a small component layer imported with `cim import components` next to one of
the sample's sensors; nothing asked until the layer is switched on; the class tree's
counts are the rows by class; a click on a component opens its file (一物一档) with the
sensor at its foot; a 小类 switched off takes its points off the map (and a whole 大类
its models); the search box finds a component (and says when there is none); a
dashboard selects one by postMessage and is told."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import geopandas as gpd
import numpy as np
import pytest

from cim.components.catalogue import CLASSES
from tests.browser import browse
from tests.conftest import run_cim

NAME = "viewer_components"

#: in the page: wait for a condition (a function), up to 30 s
WAIT = """const wait = async (test, what) => {
  for (const t0 = Date.now(); !test(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > 30000) throw new Error("timed out waiting for " + what);
};
const C = () => __cimComponents;
const shown = () => (C().shown[NAME] || {});
const section = () => document.querySelector(`#components section[data-layer="${NAME}"]`);
const classBox = (code) => section().querySelector(`li.comp-class[data-class="${code}"] input`);
const majorBox = (code) => section().querySelector(`li.comp-major[data-major="${code}"] summary input`);
const layer = (id) => cimViewer.deck.props.layers.find((l) => l.id === id);
const at = (lon, lat) => cimViewer.deck.getViewports()[0].project([lon, lat]);
// the component layer's point under a position, as deck.gl picks it (null: none there)
const pointAt = (lon, lat) => {
  const [x, y] = at(lon, lat);
  const hit = cimViewer.deck.pickObject({ x, y, radius: 2, layerIds: [`components:${NAME}:points`] });
  return hit && hit.object ? hit.object.properties.id : null;
};
const search = async (id) => {
  section().querySelector(".comp-id").value = id;
  section().querySelector(".comp-search").requestSubmit();
};"""


def _script(body: str, result: str, **values: Any) -> str:
    text = f"(async () => {{ {WAIT} {body} return {result}; }})()"
    for name, value in {"NAME": NAME, **values}.items():
        text = text.replace(name, json.dumps(value, ensure_ascii=False))
    return text


def _failed(report: dict, *allowed: str) -> list[str]:
    """The requests that failed, but tiles the camera's flight left behind (aborted) and those allowed."""
    return [
        r for r in report["failedRequests"] if not r.endswith("net::ERR_ABORTED") and not any(a in r for a in allowed)
    ]


@pytest.fixture(scope="module")
def site(settings, sample, db_url, tmp_path_factory) -> dict:
    """48 components of four classes (three 大类) in a square of some 130 m, the first at the foot of one
    of the sample's sensors (so its file names that sensor), imported with `cim import components`."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM layers.sensors ORDER BY fid LIMIT 1").fetchone()
    assert row is not None
    sensor, lon0, lat0 = row
    by_major: dict[str, list[str]] = {}
    for c in CLASSES:
        by_major.setdefault(c.major, []).append(c.code)
    codes = [by_major["01"][0], by_major["01"][4], by_major["02"][0], by_major["04"][0]]
    n = 48
    # a 7 x 7 lattice 20 m apart (less one node), east of the sensor: points far enough apart to be picked one by one
    i = np.arange(n)
    dx, dy = 20.0 * (1 + i % 7), 20.0 * (i // 7 - 3)
    lon = lon0 + dx / (111_320.0 * np.cos(np.radians(lat0)))
    lat = lat0 + dy / 110_574.0
    lon[0], lat[0] = lon0, lat0  # the first stands on the sensor
    classes = [codes[0]] + [codes[k % 4] if k % 5 else codes[0] for k in range(1, n)]
    ids = [f"440304{c}{900000 + k:06d}" for k, c in enumerate(classes)]
    frame = gpd.GeoDataFrame(
        {"id": ids, "class_code": classes, "status": ["完好"] * n, "heading": (i * 37.0) % 360},
        geometry=gpd.points_from_xy(lon, lat),
        crs=4326,
    )
    path = tmp_path_factory.mktemp("viewer-components") / "components.geojson"
    frame.to_file(path)
    run_cim(settings, "import", "components", str(path), "--name", NAME, check=True)
    return {
        "sensor": sensor,
        "frame": frame,
        "codes": codes,
        "rows": dict(Counter(classes)),
        "first": {"id": ids[0], "lon": float(lon[0]), "lat": float(lat[0]), "class": classes[0]},
    }


def _one_of(site: dict, code: str) -> dict:
    row = site["frame"][site["frame"]["class_code"] == code].iloc[0]
    return {"id": row["id"], "lon": float(row.geometry.x), "lat": float(row.geometry.y)}


@pytest.mark.browser
def test_the_tree_counts_the_rows_a_click_opens_the_file_and_classes_hide(server, http, site):
    first, codes = site["first"], site["codes"]
    hidden = _one_of(site, codes[2])  # the only class of its 大类 (02) here
    body = """
    // the API, the layer's tiles and its tilesets (not components.js itself)
    const ours = (path) => path.startsWith("/components") || path.startsWith(`/layers/${NAME}/`)
      || path.startsWith(`/tilesets/${NAME}/`);
    const asked = () => performance.getEntriesByType("resource").filter((r) => ours(new URL(r.name).pathname)).length;
    const before = asked();
    performance.clearResourceTimings();
    performance.setResourceTimingBufferSize(100000);
    // the layer's own entry in the layer list switches it (and its panel) on
    document.querySelector(`#layer-list li[data-key="${NAME}"] .toggle`).click();
    await wait(() => C().ready[NAME] === true && section().querySelector("li.comp-class"), "the class tree");
    const digits = (e) => Number(e.textContent.replace(/[^0-9]/g, ""));
    const tree = Object.fromEntries([...section().querySelectorAll("li.comp-class")]
      .map((li) => [li.dataset.class, digits(li.querySelector(".comp-count"))]));
    const majors = Object.fromEntries([...section().querySelectorAll("li.comp-major")]
      .map((li) => [li.dataset.major, digits(li.querySelector("summary .comp-count"))]));
    const total = section().querySelector(".comp-total").textContent;
    const swatch = section().querySelector(`li.comp-class[data-class="${CODES[0]}"] .swatch`).style.background;
    await wait(() => shown().points === 48, "every point drawn");
    const drawnBefore = { ...shown().byClass };
    const pickedBefore = pointAt(HIDDEN.lon, HIDDEN.lat);
    // a click on the component at the sensor's foot: through the viewer's click handler, with deck.gl's own pick
    const [x, y] = at(FIRST.lon, FIRST.lat);
    // (the first picks after the layers change may find nothing: deck.gl's picking buffer is made then)
    await wait(() => cimViewer.deck.pickObject({ x, y, radius: 3 }), "the component picked");
    const info = cimViewer.deck.pickObject({ x, y, radius: 3 }) || { x, y, layer: null, object: null };
    cimViewer.deck.props.onClick(info, {});
    await wait(() => C().selected && C().selected.id === FIRST.id && !document.getElementById("component-file").hidden,
               "the file");
    const file = document.getElementById("component-file");
    const fileId = file.querySelector(".comp-file-id").textContent;
    const className = file.querySelector(".comp-class-name").textContent;
    const sensors = [...file.querySelectorAll("li[data-sensor]")].map((e) => e.dataset.sensor);
    const highlighted = !!layer(`components:${NAME}:selected`) && layer(`components:${NAME}:selected`).props.visible;
    // a 小类 off: its points go (neither drawn nor picked), the others stay; its 大类 (only it here) loses its models
    classBox(CODES[2]).click();
    await wait(() => !shown().byClass[CODES[2]], "the class hidden");
    const drawnHidden = { ...shown().byClass };
    // drawn again without it (the filter is the GPU's: deck.gl picks what it draws)
    await wait(() => pointAt(HIDDEN.lon, HIDDEN.lat) !== HIDDEN.id, "its point gone from the map");
    const pickedHidden = pointAt(HIDDEN.lon, HIDDEN.lat);
    const models02 = layer(`components:${NAME}:models:02`).props.visible;
    // a whole 大类 off: all its classes' points and its models
    majorBox("01").click();
    await wait(() => !shown().byClass[CODES[0]] && !shown().byClass[CODES[1]], "the 大类 hidden");
    const drawnNo01 = { ...shown().byClass };
    const models01 = layer(`components:${NAME}:models:01`).props.visible;
    const majorsOn = shown().majors;
    majorBox("01").click();
    classBox(CODES[2]).click();
    await wait(() => shown().points === 48, "every point back");
    await wait(() => pointAt(HIDDEN.lon, HIDDEN.lat) === HIDDEN.id, "its point back on the map");
    const pickedAgain = pointAt(HIDDEN.lon, HIDDEN.lat);
    """
    result = """({before, after: asked(), tree, majors, total, swatch, drawnBefore, pickedBefore, fileId, className,
      sensors, highlighted, drawnHidden, pickedHidden, models02, drawnNo01, models01, majorsOn, pickedAgain,
      models04: layer(`components:${NAME}:models:04`).props.visible, errors: C().errors, counts: C().counts[NAME]})"""
    report = browse(
        f"{server}/viewer#view={first['lon'] + 0.0006:.6f},{first['lat']:.6f},17,0,0&layers=",
        eval=_script(body, result, FIRST=first, CODES=codes, HIDDEN=hidden),
    )
    assert report["pageErrors"] == [] and report["consoleErrors"] == [] and _failed(report) == [], report
    assert report["foreignRequests"] == []  # deck.gl, loaders.gl and their workers: all from this server
    e = report["eval"]
    assert e["errors"] == []
    assert e["before"] == 0 and e["after"] >= 3  # nothing asked until the layer was switched on
    # the tree: the rows by class, and by 大类
    rows = site["rows"]
    counted = http.get(f"/components/{NAME}/counts", params={"level": "class"}).json()["counts"]
    by_db = {c["code"]: c["count"] for c in counted}
    assert e["tree"] == rows == by_db == e["counts"]
    assert e["majors"] == {"01": rows[codes[0]] + rows[codes[1]], "02": rows[codes[2]], "04": rows[codes[3]]}
    assert "48" in e["total"]
    colour = next(c.colour for c in CLASSES if c.code == codes[0])
    assert e["swatch"] == f"rgb({colour[0]}, {colour[1]}, {colour[2]})"
    # every point drawn once, by class
    assert e["drawnBefore"] == rows
    assert e["pickedBefore"] == hidden["id"]
    # the file of the clicked component, with the sensor it stands on; highlighted on the map
    assert e["fileId"] == site["first"]["id"] and e["className"] == next(
        c.name_zh for c in CLASSES if c.code == first["class"]
    )
    assert site["sensor"] in e["sensors"]
    assert e["highlighted"] is True
    # a 小类 off: its points gone, the others as they were; its 大类's models off with it (its only class here)
    assert e["drawnHidden"] == {k: v for k, v in rows.items() if k != codes[2]}
    assert e["pickedHidden"] != hidden["id"] and e["pickedAgain"] == hidden["id"]
    assert e["models02"] is False and e["models04"] is True
    # a whole 大类 off
    assert e["drawnNo01"] == {codes[3]: rows[codes[3]]}
    assert e["models01"] is False and e["majorsOn"] == ["04"]


@pytest.mark.browser
def test_search_by_id_opens_the_file_and_says_when_there_is_none(server, site):
    first = site["first"]
    body = """
    await wait(() => C().ready[NAME] === true, "the layer");
    await search("4403049999999999");
    await wait(() => C().message.startsWith("未找到"), "the answer");
    const missing = section().querySelector(".comp-msg").textContent;
    await search(FIRST.id);
    await wait(() => C().selected && C().selected.id === FIRST.id, "the file");
    await new Promise((r) => setTimeout(r, 1800));  // the flight
    const sensors = [...document.querySelectorAll("#component-file li[data-sensor]")].map((e) => e.dataset.sensor);
    cimViewer.setLanguage("en");
    const english = { heading: section().querySelector(".comp-title").textContent,
                      className: document.querySelector("#component-file .comp-class-name").textContent };
    """
    result = "({missing, sensors, english, view: cimViewer.viewState, errors: C().errors})"
    # the layer on by the URL: a link opens the panel
    report = browse(f"{server}/viewer#layers={NAME}", eval=_script(body, result, FIRST=first))
    missing = f"/components/{NAME}/4403049999999999"
    assert report["pageErrors"] == [] and _failed(report, missing) == [], report
    assert all("404 (Not Found)" in c for c in report["consoleErrors"]), report  # the browser's note of that 404
    e = report["eval"]
    assert e["missing"] == "未找到部件 4403049999999999" and e["errors"] == []
    assert site["sensor"] in e["sensors"]
    assert abs(e["view"]["longitude"] - first["lon"]) < 0.001 and abs(e["view"]["latitude"] - first["lat"]) < 0.001
    assert e["view"]["zoom"] > 16
    cls = next(c for c in CLASSES if c.code == first["class"])
    assert e["english"] == {"heading": f"City components · {NAME}", "className": cls.name_en}


@pytest.mark.browser
def test_models_are_drawn_instance_by_instance_and_one_is_picked_as_itself(server, site):
    tree = _one_of(site, site["codes"][3])  # a tree (园林绿化): its crown stands over its point
    body = """
    await wait(() => C().ready[NAME] === true && shown().instances === 48, "every instance");
    await new Promise((r) => setTimeout(r, 1000));  // drawn
    const [x, y] = at(TREE.lon, TREE.lat);
    const info = cimViewer.deck.pickObject({ x, y, radius: 2 });
    const picked = info && { layer: info.layer.id, id: info.instance && info.instance.id };
    cimViewer.deck.props.onClick(info, {});
    await wait(() => C().selected && C().selected.id === TREE.id, "the file");
    """
    result = """({picked, byMajor: shown().byMajor,
      file: document.querySelector("#component-file .comp-file-id").textContent})"""
    report = browse(
        f"{server}/viewer#view={tree['lon']:.7f},{tree['lat']:.7f},20,0,0&layers={NAME}",
        eval=_script(body, result, TREE=tree),
    )
    assert report["pageErrors"] == [] and report["consoleErrors"] == [] and _failed(report) == [], report
    e = report["eval"]
    rows = site["rows"]
    codes = site["codes"]
    # every instance of the tiles on screen is drawn (not one per tile)
    assert e["byMajor"] == {"01": rows[codes[0]] + rows[codes[1]], "02": rows[codes[2]], "04": rows[codes[3]]}
    # the model is picked as the instance it is (its feature's id in the tile's property table), and opens its file
    assert e["picked"] == {"layer": f"components:{NAME}:models:04", "id": tree["id"]}
    assert e["file"] == tree["id"]


#: a dashboard that frames the viewer (?viewer=URL&name=LAYER&id=ID), asks it to select a component once
#: it is ready and reports what came back: window.__cimResult = {ready, selected}
DASHBOARD = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><iframe id="viewer" width="1000" height="700"></iframe><script>
const result = window.__cimResult = { ready: false, selected: null };
const query = new URLSearchParams(location.search);
const viewer = query.get("viewer");
window.addEventListener("message", (event) => {
  const m = event.data || {};
  if (m.type === "cim:ready") {
    result.ready = true;
    document.getElementById("viewer").contentWindow.postMessage(
      { type: "cim:components.select", name: query.get("name"), id: query.get("id") }, new URL(viewer).origin);
  } else if (m.type === "cim:components.selected") {
    result.selected = m;
    window.__cimDone = true;
  }
});
document.getElementById("viewer").src = viewer;
setTimeout(() => { window.__cimDone = true; }, 30000);
</script></body></html>"""


@pytest.mark.browser
def test_a_dashboard_selects_a_component(server, site, tmp_path):
    from tests.conftest import EMBED_PORT
    from tests.static_server import serve

    first = site["first"]
    (tmp_path / "dashboard.html").write_text(DASHBOARD)
    with serve({"/dashboard.html": tmp_path / "dashboard.html"}, host="localhost", port=EMBED_PORT) as base:
        report = browse(f"{base}/dashboard.html?viewer={server}/viewer&name={NAME}&id={first['id']}")
    assert report["result"] == {
        "ready": True,
        "selected": {"type": "cim:components.selected", "name": NAME, "id": first["id"], "class_code": first["class"]},
    }, report
    assert report["consoleErrors"] == [] and report["pageErrors"] == [] and _failed(report) == []


def test_a_component_layer_is_drawn_by_its_panel_only():
    from layers.catalogue import LayerInfo
    from viewer.deck import TilesetRef
    from viewer.page import I18N, viewer_config, viewer_page

    bbox = (114.0, 22.0, 114.1, 22.1)
    layer = LayerInfo("street_furniture", "街道家具", "layers", "street_furniture", "Point", 4326, 3, bbox)
    other = LayerInfo("trees", "行道树", "layers", "trees", "Point", 4326, 3, bbox)
    url = "/tilesets/street_furniture/tileset.json"
    tilesets = [TilesetRef("street_furniture", url, layer="street_furniture", kind="components")]
    config = viewer_config([layer, other], tilesets)
    assert config["components"]["layers"] == ["street_furniture"]
    entry = next(e for e in config["entries"] if e["key"] == "street_furniture")
    drawn = {layer["id"] for layer in config["deck"]["layers"]}
    assert not drawn & set(entry["ids"]) and "trees" in drawn  # the generic layers of a component layer are left out
    assert set(I18N["zh"]) == set(I18N["en"]) and I18N["zh"]["components"] == "城市部件"
    assert I18N["zh"]["compNotFound"].format(id="X") == "未找到部件 X"
    page = viewer_page(config)
    assert '<script src="/viewer/static/components.js"></script>' in page and 'id="component-file"' in page
    assert viewer_config([layer], [])["components"]["layers"] == []  # no component tileset: an ordinary layer
