"""The 一屏统览 screen mode in headless Chromium: at the wall's, a desk's and a phone's size no two controls
overlap and nothing sticks out of the screen (screenshots kept in test-artefacts/), the wall's type is at least
24 px; the topics' indicators are drawn per area and a click on an area drills down one level; a dashboard on an
allowed origin (the example page viewer/examples/dashboard.html) drives every message and hears the click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import browse
from tests.conftest import REPO

SIZES = {"wall": "3840x2160", "desk": "1920x1080", "phone": "390x844"}
ARTEFACTS = REPO / "test-artefacts"

#: in the page: wait until the screen has its indicators (and the map settled), then measure the chrome
LAYOUT = """(async () => {
  for (const t0 = Date.now(); !(__cimScreen.loads > 0); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > 30000) throw new Error("no indicators: " + JSON.stringify(__cimScreen.errors));
  await new Promise((r) => setTimeout(r, 1500));
  const W = innerWidth, H = innerHeight;
  const shown = (el) => { const s = getComputedStyle(el); const r = el.getBoundingClientRect();
    return s.display !== "none" && s.visibility !== "hidden" && r.width > 0 && r.height > 0; };
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  // the controls: the bar's title, topics, tour and clock; the breadcrumb; the side panel; the alerts;
  // each tool of the map; the scale bar
  const controls = [
    ...document.querySelectorAll("#screen-title, #screen-topics button, #screen-tour, #screen-clock, #screen-crumbs, "
      + "#screen-side, #screen-alerts, #slot-top-right > *, #slot-bottom-left > *")].filter(shown)
    .map((el) => ({ id: el.id || (el.parentElement.id + " " + (el.dataset.topic || el.className || el.tagName)),
                    box: box(el) }));
  // every piece of text on the screen's chrome, and its size
  const texts = [];
  for (const el of document.querySelectorAll("#screen *, #slot-top-right *, #slot-bottom-left *")) {
    if (!shown(el)) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    // the size drawn: the font's size times the zoom of the element and its ancestors (the tools are zoomed)
    let zoom = 1;
    for (let a = el; a; a = a.parentElement) zoom *= parseFloat(getComputedStyle(a).zoom) || 1;
    const px = parseFloat(getComputedStyle(el).fontSize) * zoom;
    if (own) texts.push({ text: el.textContent.trim().slice(0, 30), px });
  }
  const cut = [...document.querySelectorAll("#screen-side, #screen-alerts, #screen-top")]
    .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.id);
  return { W, H, controls, texts, cut, topics: __cimScreen.topics, topic: __cimScreen.topic,
           cards: document.querySelectorAll("#screen-cards .card").length,
           drawn: cimViewer.deck.props.layers.filter((l) => l.id === "screen-areas")
             .map((l) => l.props.data.features.length) };
})()"""


CLICK = """(() => {
  const info = cimViewer.deck.pickObject({ x: cimViewer.deck.width / 2, y: cimViewer.deck.height / 2, radius: 2,
                                          layerIds: ["screen-areas"] });
  cimViewer.deck.props.onClick(info, {});
})()"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5


@pytest.mark.browser
@pytest.mark.parametrize("size", list(SIZES))
def test_the_screen_fits_the_wall_the_desk_and_the_phone(server, sample, size):
    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / f"screen-{size}.png"
    report = browse(f"{server}/viewer?mode=screen", size=SIZES[size], screenshot=shot, eval=LAYOUT, timeout_ms=120_000)
    e = report["eval"]
    assert report["pageErrors"] == [] and report["consoleErrors"] == [], report
    assert e["topic"] == "events" and {"events", "sensing", "video", "buildings"} <= set(e["topics"])
    assert e["cards"] >= 3 and e["drawn"] and e["drawn"][0] >= 5  # the streets, with their figures
    controls = e["controls"]
    assert len(controls) >= 10, controls
    for c in controls:  # nothing outside the screen
        left, top, right, bottom = c["box"]
        assert left >= -0.5 and top >= -0.5 and right <= e["W"] + 0.5 and bottom <= e["H"] + 0.5, c
    for i, a in enumerate(controls):  # no two controls on each other
        for b in controls[i + 1 :]:
            assert not _overlap(a["box"], b["box"]), (size, a, b)
    assert e["cut"] == [], e["cut"]  # no panel wider than its box (cut off at the side)
    if size == "wall":
        small = [t for t in e["texts"] if t["px"] < 24]
        assert e["texts"] and small == [], small
    assert shot.stat().st_size > 10_000


@pytest.mark.browser
def test_a_click_on_a_street_drills_down_to_its_communities(server, sample, conn):
    body = """(async () => {
      const wait = async (test, what) => {
        for (const t0 = Date.now(); !test(); await new Promise((r) => setTimeout(r, 100)))
          if (Date.now() - t0 > 30000) throw new Error("timed out waiting for " + what);
      };
      await wait(() => __cimScreen.loads > 0, "the streets");
      const before = __cimScreen.data.areas.features.map((f) => f.properties.area);
      const street = __cimScreen.data.areas.features.find((f) => f.properties.area === STREET);
      // a click at the street's centre, as deck.gl hands it over (the area's pick)
      cimViewer.deck.props.onClick({ layer: { id: "screen-areas" }, object: street, x: 0, y: 0 }, {});
      await wait(() => __cimScreen.level === "community" && __cimScreen.data, "the communities");
      return { before, level: __cimScreen.level, within: __cimScreen.within,
               areas: __cimScreen.data.areas.features.map((f) => f.properties.area),
               crumbs: [...document.querySelectorAll("#screen-crumbs button")].map((b) => b.textContent) };
    })()"""
    street = conn.execute(
        "SELECT street, count(*) FROM layers.communities GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
    ).fetchone()
    report = browse(
        f"{server}/viewer?mode=screen&topic=sensing",
        eval=body.replace("STREET", json.dumps(street[0])),
        size="1920x1080",
    )
    e = report["eval"]
    assert street[0] in e["before"] and e["level"] == "community" and e["within"] == street[0]
    assert len(e["areas"]) == street[1]  # exactly that street's communities
    assert e["crumbs"] == ["全区", street[0]]


@pytest.mark.browser
def test_a_dashboard_drives_every_message_and_hears_the_click(server, sample, conn, tmp_path):
    from tests.conftest import EMBED_PORT
    from tests.static_server import serve

    street = conn.execute("SELECT street FROM layers.communities GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[
        0
    ]
    ids = [r[0] for r in conn.execute("SELECT id FROM layers.buildings ORDER BY fid LIMIT 2")]
    page = REPO / "viewer" / "examples" / "dashboard.html"
    viewer = f"{server}/viewer?mode=screen"
    url = f"/dashboard.html?auto=1&viewer={viewer}&street={street}&layer=buildings&ids={','.join(ids)}"
    with serve({"/dashboard.html": page}, host="localhost", port=EMBED_PORT) as base:
        # then, in the viewer, a click in the middle of the map (a street), as deck.gl hands a click over (headless
        # Chromium's software WebGL is too slow here for deck's tap recogniser to see a mouse click as one)
        report = browse(
            f"{base}{url}", size="1600x900", frame_eval=CLICK, timeout_ms=150_000, eval="window.__cimResult"
        )
    result = report["eval"]
    assert result.get("error") is None, result
    last = result["last"]
    assert last["cim:screen.topicChanged"]["topic"] == "sensing"
    assert last["cim:screen.focused"]["id"] == ids[0] and len(last["cim:screen.focused"]["position"]) == 2
    assert last["cim:screen.highlighted"]["ids"] == ids
    assert "cim:screen.tourChanged" in result["received"]
    clicked = last["cim:clicked"]
    assert clicked["layer"] == "areas:street" and isinstance(clicked["id"], str) and "alarms" in clicked["attributes"]
    assert result["received"].index("cim:ready") == 0


def test_the_example_dashboard_sends_to_the_viewer_origin_only():
    page = (Path(REPO) / "viewer" / "examples" / "dashboard.html").read_text()
    assert "postMessage(message, origin)" in page and '"*"' not in page


@pytest.mark.browser
def test_what_was_clicked_is_told_with_its_id(server, sample, conn):
    """A building and a live sensor clicked (as deck.gl hands the clicks over): the layer, the id, attributes."""
    bid, lon, lat = conn.execute(
        "SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM layers.buildings "
        "WHERE height > 100 ORDER BY fid LIMIT 1"
    ).fetchone()
    body = """(async () => {
      const at = (ids) => cimViewer.deck.pickObject({ x: 640, y: 400, radius: 3, layerIds: ids });
      cimViewer.deck.props.onClick(at(["buildings__pick"]), {});
      const building = __cimResult.clicked;
      cimViewer.setLayerVisible("sensors", true);
      const t0 = Date.now();
      while (!__cimLive.ready && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 1000));
      const i = 0;  // the first sensor of the snapshot
      const ids = cimViewer.deck.props.layers.map((l) => l.id);
      cimViewer.deck.props.onClick({ layer: { id: "live-sensors" }, index: i, object: undefined, x: 0, y: 0 }, {});
      return { building, sensor: __cimResult.clicked, ids };
    })()"""
    report = browse(f"{server}/viewer#view={lon:.7f},{lat:.7f},17.5,0,0&layers=buildings", eval=body)
    e = report["eval"]
    assert e["building"]["layer"] == "buildings" and e["building"]["id"] == bid
    assert e["building"]["attributes"]["height"] > 100 and "geom" not in e["building"]["attributes"]
    first = conn.execute("SELECT id FROM live.sensor_registry ORDER BY id LIMIT 1").fetchone()
    assert e["sensor"]["layer"] == "sensors" and e["sensor"]["id"] == first[0], e
    assert e["sensor"]["attributes"]["category"]


#: the planner's viewer: the panel, the search, each tool button, the scale bar
PLANNER = """(async () => {
  await new Promise((r) => setTimeout(r, 1000));
  const W = innerWidth, H = innerHeight;
  const shown = (el) => { const s = getComputedStyle(el); const r = el.getBoundingClientRect();
    return s.display !== "none" && s.visibility !== "hidden" && r.width > 0 && r.height > 0; };
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const controls = [...document.querySelectorAll("#panel, #slot-top-center > *, #slot-top-right button, "
    + "#slot-bottom-left > *")].filter(shown).map((el) => ({ id: el.id || el.className || el.tagName, box: box(el) }));
  return { W, H, controls };
})()"""


@pytest.mark.browser
@pytest.mark.parametrize("size", ["desk", "phone"])
def test_the_planners_viewer_fits_the_desk_and_the_phone(server, sample, size):
    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / f"viewer-{size}.png"
    url = f"{server}/viewer#view=114.3,22.3,12,0,0&layers=streets"
    e = browse(url, size=SIZES[size], screenshot=shot, eval=PLANNER)["eval"]
    controls = e["controls"]
    assert len(controls) >= 6, controls
    for c in controls:
        left, top, right, bottom = c["box"]
        assert left >= -0.5 and top >= -0.5 and right <= e["W"] + 0.5 and bottom <= e["H"] + 0.5, c
    for i, a in enumerate(controls):
        for b in controls[i + 1 :]:
            assert not _overlap(a["box"], b["box"]), (size, a, b)
