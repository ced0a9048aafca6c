"""The viewer in a real browser (headless Debian Chromium): offline, without
errors, drawing the buildings, picking one building, keeping its state in
the URL; the same deck from Python for Jupyter; and the viewer file that
gives named layers their look and the view its home."""

from __future__ import annotations

import base64
import io
import json
import logging

import numpy as np
import psycopg
import pydeck
import pytest
from PIL import Image

import viewer
from tests.browser import browse


@pytest.fixture(scope="module")
def tower(db_url, sample):
    """A tall building of the sample: (id, height, lon, lat) of its footprint's inner point."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT id, height, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM layers.buildings WHERE height > 100 ORDER BY fid LIMIT 1"
        ).fetchone()


@pytest.fixture(scope="module")
def default_view(server):
    return browse(f"{server}/viewer")


@pytest.mark.browser
def test_the_page_is_offline_and_error_free(default_view):
    report = default_view
    assert report.get("error") is None, report
    assert report["foreignRequests"] == []  # every script, style, worker and tile came from this server
    assert report["consoleErrors"] == [] and report["pageErrors"] == [] and report["failedRequests"] == []
    assert report["result"]["errors"] == []
    assert report["requests"] > 20  # page, vendor bundles, the MVT worker, tiles, the tileset
    drawn = report["result"]["layers"]
    assert "tileset:buildings" in drawn and "buildings__pick" in drawn
    assert {"streets", "parcels", "forest", "farmland", "eco_redline", "futian_boundary"} <= set(drawn)
    assert "sensors" not in drawn  # off until switched on


def _bright_pixels(path) -> int:
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    stage = img[:, 340:]  # right of the layer panel
    grey = (stage.min(axis=2) > 120) & (stage.max(axis=2) - stage.min(axis=2) < 30)  # the white model's shades
    return int(grey.sum())


@pytest.mark.browser
@pytest.mark.slow
def test_buildings_are_drawn(server, tower, tmp_path):
    _, _, lon, lat = tower
    view = f"view={lon:.6f},{lat:.6f},15.5,50,20"
    # the layers named: other test modules import layers (and models) of their own into this session's database
    shown = "layers=buildings,streets,futian_boundary"
    with_buildings = browse(f"{server}/viewer#{view}&{shown}", screenshot=tmp_path / "with.png")
    without = browse(f"{server}/viewer#{view}&layers=streets,futian_boundary", screenshot=tmp_path / "without.png")
    assert with_buildings["result"]["errors"] == [] and without["result"]["errors"] == []
    lit, dark = _bright_pixels(tmp_path / "with.png"), _bright_pixels(tmp_path / "without.png")
    total = 800 * (1280 - 340)
    assert lit > 0.05 * total, f"only {lit} building pixels"
    assert dark < 0.01 * total and lit > 10 * max(dark, 1)


@pytest.mark.browser
def test_one_building_is_picked_and_described_in_chinese(server, tower):
    bid, height, lon, lat = tower
    # only the buildings on: other tests import layers that may lie over the tower
    report = browse(
        f"{server}/viewer#view={lon:.7f},{lat:.7f},17.5,0,0&layers=buildings",
        hover="640,400",
        eval="({tip: document.querySelector('.cim-tooltip')?.innerText, "
        "pick: (o => o && {layer: o.layer.id, id: o.object.properties.id})"
        "(cimViewer.deck.pickObject({x: 640, y: 400})), lang: document.documentElement.lang, "
        "frame: (cimViewer.deck.redraw(true), cimViewer.deck.getCanvas().toDataURL())})",
    )
    result = report["eval"]
    # the building under the pointer outlined in the highlight colour (255, 200, 0, 200 over the white model)
    frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["frame"].split(",")[1]))).convert("RGB"))
    red, green, blue = (int(v) for v in frame[400, 640])
    assert red > 200 and 160 < green < 215 and blue < 80, (red, green, blue)
    assert result["pick"] == {"layer": "buildings__pick", "id": bid}
    assert result["lang"] == "zh-CN"
    tip = result["tip"]
    assert tip.startswith("建筑") and bid in tip and "高度 (米)" in tip and f"{height:.2f}" in tip and "网格" in tip


@pytest.mark.browser
def test_url_state_reopens_the_same_view_in_english(server):
    report = browse(
        f"{server}/viewer#view=114.050000,22.540000,14.25,30.0,15.0&layers=streets,parcels&lang=en",
        eval="({view: cimViewer.viewState, lang: document.documentElement.lang, "
        "title: document.title, panel: document.getElementById('layers-title').textContent, "
        "hash: location.hash})",
    )
    assert report["result"]["layers"] == ["parcels", "streets"]
    e = report["eval"]
    assert e["lang"] == "en" and e["title"].startswith("City information model") and e["panel"] == "Layers"
    view = e["view"]
    assert (round(view["longitude"], 4), round(view["latitude"], 4), view["zoom"], view["pitch"], view["bearing"]) == (
        114.05,
        22.54,
        14.25,
        30.0,
        15.0,
    )
    assert "layers=streets%2Cparcels" in e["hash"] or "layers=parcels%2Cstreets" in e["hash"]


@pytest.mark.browser
def test_fly_to_a_layers_extent(server, conn):
    # only the parcels on (other modules' layers would load too), and the hash awaited: it follows the camera
    # 300 ms after it stops, later under load
    report = browse(
        f"{server}/viewer#layers=parcels",
        eval="""(async () => {
        document.querySelector('li[data-key="parcels"] .fly').click();
        await new Promise((r) => setTimeout(r, 1500));
        const now = () => cimViewer.viewState.longitude.toFixed(4).slice(0, 7);
        for (let i = 0; i < 100 && !location.hash.includes(now()); i++) await new Promise((r) => setTimeout(r, 100));
        return {view: cimViewer.viewState, hash: location.hash};
    })()""",
    )
    west, south, east, north = conn.execute("SELECT bbox FROM cim.layers WHERE name = 'parcels'").fetchone()[0]
    view = report["eval"]["view"]
    assert abs(view["longitude"] - (west + east) / 2) < 0.002 and abs(view["latitude"] - (south + north) / 2) < 0.002
    assert view["zoom"] > 13  # closer than the district view
    assert f"{view['longitude']:.4f}"[:7] in report["eval"]["hash"]


def test_the_same_deck_for_jupyter(sample, conn):
    from layers.catalogue import list_layers
    from viewer.deck import TilesetRef

    layers = list_layers(conn)
    d = viewer.deck(layers, [TilesetRef("buildings", "/tilesets/buildings/tileset.json", layer="buildings")])
    assert isinstance(d, pydeck.Deck)
    spec = json.loads(d.to_json())
    types = [layer["@@type"] for layer in spec["layers"]]
    assert types.count("Tile3DLayer") == 1 and types.count("MVTLayer") == len(layers)
    assert "@@=pixels" not in d.to_json() and "@@=circle" not in d.to_json()  # literal strings stay literal
    assert all(layer.get("loadOptions") for layer in spec["layers"])  # no loader may fetch its worker from a CDN


def test_the_sample_looks_as_its_viewer_file_says(http, settings, conn):
    from cim.demo import SAMPLE_VIEWER_CONFIG

    assert settings.viewer_config_file.read_bytes() == SAMPLE_VIEWER_CONFIG.read_bytes()  # copied by import_sample
    config = http.get("/viewer/config.json").json()
    entries = {entry["key"]: entry for entry in config["entries"]}
    assert entries["futian_boundary"]["title"]["en"] == "District" and entries["streets"]["title"]["en"] == "Streets"
    assert entries["communities"]["visible"] is False and entries["parcels"]["color"] == [250, 190, 80, 220]
    west, south, east, north = conn.execute("SELECT bbox FROM cim.layers WHERE name = 'futian_boundary'").fetchone()[0]
    view = config["deck"]["initialViewState"]
    assert view["longitude"] == pytest.approx((west + east) / 2) and view["latitude"] == pytest.approx(
        (south + north) / 2
    )


def _layer(name: str, bbox: tuple[float, float, float, float], geometry_type: str = "MultiPolygon"):
    from layers.catalogue import LayerInfo

    return LayerInfo(
        name=name,
        title=name,
        table_schema="layers",
        table_name=name,
        geometry_type=geometry_type,
        srid=4326,
        feature_count=1,
        bbox=bbox,
    )


DISTRICT = (114.0, 22.5, 114.2, 22.7)  # centre 114.1, 22.6
POIS = (113.0, 22.0, 113.1, 22.1)  # all layers together: centre 113.6, 22.35


def test_a_viewer_file_styles_its_layers_and_opens_on_home(tmp_path, caplog):
    from viewer.page import viewer_config
    from viewer.styles import OBLIQUE_FOOTPRINTS, ViewerStyles, default_style

    path = tmp_path / "viewer.json"
    path.write_text(
        json.dumps(
            {
                "home": "district",
                "styles": {
                    "district": {
                        "fill": [1, 2, 3, 4],
                        "line": [5, 6, 7],
                        "line_width_px": 2.5,
                        "order": 90,
                        "en": "District",
                    },
                    "pois": {"visible": True},
                },
                "fields": {"ward": {"zh": "区", "en": "Ward"}},
            }
        )
    )
    with caplog.at_level(logging.WARNING, logger="viewer.styles"):
        styles = ViewerStyles.load(path)
    assert caplog.records == []
    assert styles.home == "district"
    district = styles.style_of("district", "MultiPolygon")
    assert (district.fill, district.line, district.line_width_px, district.visible, district.order, district.en) == (
        (1, 2, 3, 4),
        (5, 6, 7, 255),
        2.5,
        True,
        90,
        "District",
    )
    assert styles.style_of("pois", "Point").visible is True  # points are hidden unless the file shows them
    assert styles.style_of("other", "Point") == default_style("Point") and default_style("Point").visible is False
    assert styles.style_of("district", "MultiPolygon", kind="oblique") == OBLIQUE_FOOTPRINTS

    config = viewer_config([_layer("pois", POIS, "Point"), _layer("district", DISTRICT)], styles=styles)
    drawn = {layer["id"]: layer for layer in config["deck"]["layers"]}
    assert drawn["district"]["getFillColor"] == [1, 2, 3, 4] and drawn["district"]["getLineWidth"] == 2.5
    assert drawn["pois"]["visible"] is True
    entries = {entry["key"]: entry for entry in config["entries"]}
    assert entries["district"]["title"] == {"zh": "district", "en": "District"}
    assert config["fields"]["ward"] == {"zh": "区", "en": "Ward"} and config["fields"]["name"] == {
        "zh": "名称",
        "en": "Name",
    }
    view = config["deck"]["initialViewState"]
    assert view["longitude"] == pytest.approx(114.1) and view["latitude"] == pytest.approx(22.6)

    # the same home from Jupyter's viewer.deck(...)
    view = viewer.deck([_layer("pois", POIS, "Point"), _layer("district", DISTRICT)], styles=styles).initial_view_state
    assert view.longitude == pytest.approx(114.1) and view.latitude == pytest.approx(22.6)


def test_no_viewer_file_means_the_defaults(tmp_path, caplog):
    from viewer.page import viewer_config
    from viewer.styles import ViewerStyles, default_style

    with caplog.at_level(logging.WARNING, logger="viewer.styles"):
        styles = ViewerStyles.load(tmp_path / "absent.json")
    assert caplog.records == []  # no file is no problem
    assert styles == ViewerStyles() and styles.home is None
    assert styles.style_of("district", "MultiPolygon") == default_style("MultiPolygon")
    layers = [_layer("pois", POIS, "Point"), _layer("district", DISTRICT)]
    for config in (viewer_config(layers, styles=styles), viewer_config(layers)):
        view = config["deck"]["initialViewState"]  # every layer's extent
        assert view["longitude"] == pytest.approx(113.6) and view["latitude"] == pytest.approx(22.35)
        assert {e["key"]: e["title"]["en"] for e in config["entries"]} == {"pois": "pois", "district": "district"}
    view = viewer.deck(layers).initial_view_state
    assert view.longitude == pytest.approx(113.6) and view.latitude == pytest.approx(22.35)


@pytest.mark.parametrize(
    "text, problem",
    [
        (b'{"home": "district", "styles": {', "not JSON"),
        (b"\xff\xfe not utf-8", "cannot be read"),
        (b"[]", "expected an object"),
        (b'{"home": 3}', "home"),
        (b'{"styles": {"district": {"fill": "red"}}}', "styles.district.fill"),
        (b'{"styles": {"district": {"fill": [1, 2, 3, 999]}}}', "styles.district.fill"),
        (b'{"styles": {"district": {"colour": [1, 2, 3]}}}', "colour"),
        (b'{"styles": {"district": {"visible": "yes"}}}', "styles.district.visible"),
        (b'{"styles": {"district": {"line_width_px": NaN}}}', "line_width_px"),
        (b'{"fields": {"ward": {"zh": "ward"}}}', "fields.ward"),
        (b'{"home": "district", "colours": {}}', "colours"),
    ],
)
def test_a_malformed_viewer_file_gives_the_defaults_and_a_warning(tmp_path, caplog, text, problem):
    from viewer.page import viewer_config, viewer_page
    from viewer.styles import ViewerStyles

    path = tmp_path / "viewer.json"
    path.write_bytes(text)
    with caplog.at_level(logging.WARNING, logger="viewer.styles"):
        styles = ViewerStyles.load(path)
    assert styles == ViewerStyles()
    [record] = caplog.records
    assert record.levelno == logging.WARNING and str(path) in record.getMessage() and problem in record.getMessage()
    layers = [_layer("pois", POIS, "Point"), _layer("district", DISTRICT)]
    view = viewer_config(layers, styles=styles)["deck"]["initialViewState"]
    assert view["longitude"] == pytest.approx(113.6) and view["latitude"] == pytest.approx(22.35)
    assert "cim-config" in viewer_page(viewer_config(layers, styles=styles))


def test_the_sample_viewer_file_is_valid(caplog):
    from cim.demo import SAMPLE_LAYERS, SAMPLE_VIEWER_CONFIG
    from viewer.styles import ViewerStyles

    with caplog.at_level(logging.WARNING, logger="viewer.styles"):
        styles = ViewerStyles.load(SAMPLE_VIEWER_CONFIG)
    assert caplog.records == []
    assert styles.home == "futian_boundary"
    assert set(styles.styles) == {"futian_boundary", *(layer.name for layer in SAMPLE_LAYERS)}


def test_a_hostile_title_cannot_break_the_page_script():
    from layers.catalogue import LayerInfo
    from viewer.page import viewer_config, viewer_page

    layer = LayerInfo(
        name="x",
        title="<!--<script></script>&",
        table_schema="layers",
        table_name="x",
        geometry_type="MultiPolygon",
        srid=4326,
        feature_count=1,
        bbox=(114.0, 22.5, 114.1, 22.6),
    )
    page = viewer_page(viewer_config([layer]))
    block = page.split('<script id="cim-config" type="application/json">')[1].split("</script>")[0]
    assert "<" not in block and ">" not in block and "&" not in block
    assert json.loads(block)["entries"][0]["title"]["zh"] == "<!--<script></script>&"


# the layer tree, its legend and the panel's layout, read in the page
TREE = """(() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const groups = [...document.querySelectorAll("#layer-list li.group")].map((g) => ({
    group: g.dataset.group, collapsed: g.classList.contains("collapsed"),
    title: g.querySelector(".group-name").textContent, count: g.querySelector(".group-count").textContent,
    keys: [...g.querySelectorAll("li[data-key]")].map((li) => li.dataset.key)}));
  const heads = [...document.querySelectorAll("#layer-list li[data-key] .head")].filter((h) => h.offsetParent)
    .map((h) => ({key: h.parentElement.dataset.key, label: box(h.querySelector("label")),
                  count: box(h.querySelector(".count")), panel: box(document.getElementById("panel"))}));
  const legend = [...document.querySelectorAll("#legend li")].map((li) => ({
    key: li.dataset.key, symbol: li.querySelector("svg").dataset.symbol, text: li.textContent}));
  return {groups, heads, legend, hash: location.hash};
})()"""


def _apart(a: list[float], b: list[float]) -> bool:
    return a[2] <= b[0] + 0.5 or b[2] <= a[0] + 0.5 or a[3] <= b[1] + 0.5 or b[3] <= a[1] + 0.5


@pytest.mark.browser
def test_the_layer_tree_groups_folds_and_shows_a_legend(server, sample):
    report = browse(
        f"{server}/viewer#view=114.3,22.3,12,0,0&layers=buildings,streets,parcels,futian_boundary", eval=TREE
    )
    e = report["eval"]
    groups = {g["group"]: g for g in e["groups"]}
    assert [g["group"] for g in e["groups"]][:3] == ["base", "planning", "models"]
    assert groups["base"]["title"] == "基础底图" and groups["models"]["title"] == "三维模型"
    assert {"futian_boundary", "streets", "communities", "grids"} <= set(groups["base"]["keys"])
    assert {"parcels", "farmland", "forest", "eco_redline"} <= set(groups["planning"]["keys"])
    assert "buildings" in groups["models"]["keys"] and "sensors" in groups["operations"]["keys"]
    # a group shows how many of its layers are on; one with none on starts folded, the others open
    assert groups["base"]["count"] == f"2/{len(groups['base']['keys'])}" and not groups["base"]["collapsed"]
    assert groups["operations"]["collapsed"] and not groups["models"]["collapsed"]
    assert "fold=operations" in e["hash"]
    # the legend: the layers on, each by its own kind of symbol
    legend = {row["key"]: row for row in e["legend"]}
    assert set(legend) == {"buildings", "streets", "parcels", "futian_boundary"}
    assert legend["buildings"]["symbol"] == "model" and legend["parcels"]["symbol"] == "polygon"
    assert legend["parcels"]["text"] == "已批宗地"
    # no name runs into its count, nothing sticks out of the panel
    assert e["heads"], e
    for head in e["heads"]:
        assert _apart(head["label"], head["count"]), head
        assert head["count"][2] <= head["panel"][2] and head["label"][0] >= head["panel"][0], head
    # the URL keeps the fold: planning folded, operations open
    report = browse(f"{server}/viewer#view=114.3,22.3,12,0,0&layers=streets&fold=planning", eval=TREE)
    groups = {g["group"]: g for g in report["eval"]["groups"]}
    assert groups["planning"]["collapsed"] and not groups["operations"]["collapsed"]
    assert not any(h["key"] == "parcels" for h in report["eval"]["heads"])  # folded away
