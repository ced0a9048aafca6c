"""The land-supervision panel of the viewer (viewer/static/land.js) in headless
Chromium: the checked parcels coloured by verdict, the list and its filters, a
parcel's detail with its findings and the offending buildings highlighted, the
change of a finding's state by a land supervisor (and its refusal for a viewer),
English, a dashboard's command, and a server where nothing was checked."""

from __future__ import annotations

import json
import secrets
from typing import Any

import psycopg
import pytest

from tests.browser import browse, browse_signed_in
from tests.conftest import run_cim

PASSWORD = "land-panel-check-9"
CONFIRMED = "核查属实"
PENDING = "待核查"
FALSE_POSITIVE = "误报"

#: in the page: wait for a condition (a function), up to 20 s
WAIT = """const wait = async (test, what) => {
  for (const t0 = Date.now(); !test(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > 20000) throw new Error("timed out waiting for " + what);
};"""

#: in the page: switch the panel on, wait for the parcels, filter on 违规 and click the parcel PID in the list
OPEN_AND_PICK = """
document.getElementById("land-toggle").click();
await wait(() => __cimLand.checked === true && document.querySelector("#land-list li[data-parcel]"), "the list");
const verdict = document.getElementById("land-verdict");
verdict.value = "违规";
verdict.dispatchEvent(new Event("change"));
const listed = document.querySelectorAll("#land-list li[data-parcel]").length;
document.querySelector('#land-list li[data-parcel="PID"] button').click();
await wait(() => __cimLand.selected === "PID" && !document.getElementById("land-detail").hidden, "the detail");
const detail = document.getElementById("land-detail");
const titles = [...detail.querySelectorAll(".finding:not(.closed) .title")].map((e) => e.textContent);
const highlight = cimViewer.deck.props.layers.find((l) => l.id === "land-buildings");
const highlighted = highlight && highlight.props.visible ? highlight.props.data.features.length : 0;
"""

#: in the page: change the finding FID to 核查属实 with NOTE, wait for the panel's answer in its place
CHANGE_STATE = """
const item = () => document.querySelector('#land-detail li[data-finding="FID"]');
item().querySelector(".state-select").value = "核查属实";
item().querySelector(".note").value = NOTE;
item().querySelector(".save").click();
await wait(() => ["已保存", "需要土地监管角色"].includes(item().querySelector(".msg").textContent), "the answer");
const answer = item().querySelector(".msg").textContent;
const state = item().querySelector(".state").textContent;
"""


def _script(body: str, result: str, **values: Any) -> str:
    for name, value in values.items():
        body = body.replace(name, value if name in ("PID", "FID") else json.dumps(value, ensure_ascii=False))
    return f"(async () => {{ {WAIT} {body} return {result}; }})()"


@pytest.fixture(scope="module")
def checked(settings, sample, http):
    """The sample's parcels checked against its buildings (as the README's example runs it)."""
    run_cim(
        settings,
        "land",
        "check",
        "--parcels",
        "parcels",
        "--buildings",
        "buildings",
        "--as-of",
        "2026-06-30",
        check=True,
    )
    return http.get("/land/parcels", params={"format": "geojson", "limit": 10000}).json()


@pytest.fixture(scope="module")
def people(db_url: str) -> dict[str, str]:
    """A land supervisor and a viewer who sign in with a password (role -> user name)."""
    from cim.auth.store import add_user, ensure_auth_schema

    suffix = secrets.token_hex(3)
    names = {"land_supervisor": f"land.{suffix}", "viewer": f"view.{suffix}"}
    with psycopg.connect(db_url, autocommit=True) as conn:
        ensure_auth_schema(conn)
        for role, name in names.items():
            add_user(conn, name, PASSWORD, [role])
    return names


@pytest.fixture(scope="module")
def violation(http, checked) -> dict:
    """A 违规 parcel whose open findings are all 待核查 and name buildings: the parcel in full,
    its open findings, the first of them, and how many buildings they name."""
    listed = http.get("/land/parcels", params={"verdict": "违规", "limit": 1000}).json()
    assert listed["numberMatched"] > 0
    for summary in listed["parcels"]:
        parcel = http.get(f"/land/parcels/{summary['parcel_id']}").json()
        opened = [f for f in parcel["findings"] if f["closed_at"] is None and f["state"] != FALSE_POSITIVE]
        named = {(b["layer"], b["fid"]) for f in opened for b in (f["evidence"] or {}).get("buildings") or []}
        if named and all(f["state"] == PENDING for f in opened):
            drawn = {(b["layer"], b["fid"]) for b in parcel["buildings"] if b["geometry"]}
            assert named <= drawn  # every building the evidence names has its footprint in the detail
            return {"parcel": parcel, "finding": opened[0], "named": len(named), "open": opened}
    pytest.fail("no 违规 parcel whose open findings name buildings")


@pytest.fixture
def restore(http, violation):
    """The findings the tests change are 待核查 again afterwards."""
    yield
    for finding in violation["open"]:
        http.post(f"/land/findings/{finding['id']}", json={"state": PENDING, "note": ""})


def _failed(report: dict) -> list[str]:
    """The requests that failed, but those of tiles the camera's flight left behind (aborted)."""
    return [r for r in report["failedRequests"] if not r.endswith("net::ERR_ABORTED")]


def _finding(http, parcel_id: str, finding_id: int) -> dict:
    parcel = http.get(f"/land/parcels/{parcel_id}").json()
    return next(f for f in parcel["findings"] if f["id"] == finding_id)


@pytest.mark.browser
def test_a_land_supervisor_picks_a_violation_and_confirms_a_finding(server, http, people, violation, restore):
    parcel, finding = violation["parcel"], violation["finding"]
    pid, fid = parcel["parcel_id"], str(finding["id"])
    note = f"现场核查属实 {secrets.token_hex(2)}"
    centre = json.dumps(parcel["centre"])
    result = (
        "({listed, titles, highlighted, answer, state, view: cimViewer.viewState, land: __cimLand, "
        "hash: location.hash, colour: __colour, picked: __picked})"
    )
    body = (
        OPEN_AND_PICK
        + f"""
        await new Promise((r) => setTimeout(r, 1800));  // the flight to the parcel
        const [x, y] = cimViewer.deck.getViewports()[0].project({centre});
        const hit = cimViewer.deck.pickObject({{ x, y, layerIds: ["land-parcels"] }});
        const __picked = hit && hit.object.properties.parcel_id;
        const parcels = cimViewer.deck.props.layers.find((l) => l.id === "land-parcels");
        const feature = parcels.props.data.features.find((f) => f.properties.parcel_id === "PID");
        const __colour = parcels.props.getFillColor(feature);
        """
        + CHANGE_STATE
    )
    report = browse_signed_in(
        server,
        people["land_supervisor"],
        PASSWORD,
        f"{server}/viewer#layers=buildings",
        eval=_script(body, result, PID=pid, FID=fid, NOTE=note),
    )
    assert report["me"]["roles"] == ["land_supervisor"]
    assert report["pageErrors"] == [] and report["consoleErrors"] == [] and _failed(report) == [], report
    assert report["foreignRequests"] == []
    e = report["eval"]
    assert e["land"]["errors"] == [] and e["land"]["checked"] is True
    assert e["listed"] == sum(f["properties"]["verdict"] == "违规" for f in http.get(
        "/land/parcels", params={"format": "geojson", "limit": 10000}).json()["features"])  # fmt: skip
    # the detail names its open findings by their Chinese titles; its offending buildings are highlighted
    assert sorted(e["titles"]) == sorted(f["title"] for f in violation["open"])
    assert e["highlighted"] == violation["named"] == e["land"]["highlighted"] > 0
    assert e["colour"][:3] == [235, 60, 50]  # red: 违规
    assert e["picked"] == pid  # on the map, where the camera flew
    west, south, east, north = parcel["bbox"]
    view = e["view"]
    assert west - 0.002 < view["longitude"] < east + 0.002 and south - 0.002 < view["latitude"] < north + 0.002
    assert "land" in e["hash"]  # the panel is on in the URL: a link reopens it
    # the change went through: the panel says so, and the API reports it
    assert e["answer"] == "已保存" and e["state"] == CONFIRMED
    after = _finding(http, pid, finding["id"])
    assert after["state"] == CONFIRMED and after["note"] == note and after["state_by"] == people["land_supervisor"]
    assert after["history"][-1]["state"] == CONFIRMED


@pytest.mark.browser
def test_a_viewer_may_not_change_a_state_and_is_told_so(server, http, people, violation):
    parcel, finding = violation["parcel"], violation["finding"]
    pid, fid = parcel["parcel_id"], str(finding["id"])
    before = _finding(http, pid, finding["id"])
    body = (
        OPEN_AND_PICK
        + CHANGE_STATE
        + """
        const who = document.querySelector("#land-detail .who").textContent;
        cimViewer.setLanguage("en");
        const english = [...document.querySelectorAll("#land-detail .finding:not(.closed) .title")]
          .map((e) => e.textContent);
        const heading = document.getElementById("land-title").textContent;
        """
    )
    result = "({titles, highlighted, answer, who, english, heading, refused: __cimLand.refused})"
    report = browse_signed_in(
        server, people["viewer"], PASSWORD, f"{server}/viewer", eval=_script(body, result, PID=pid, FID=fid, NOTE="x")
    )
    assert report["me"]["roles"] == ["viewer"]
    e = report["eval"]
    assert e["highlighted"] == violation["named"] and sorted(e["titles"]) == sorted(
        f["title"] for f in violation["open"]
    )
    assert e["refused"] == 403 and e["answer"] == "需要土地监管角色"
    assert "需要土地监管角色" in e["who"]  # said before trying, too
    assert [r for r in _failed(report) if "/land/findings/" not in r] == [] and report["pageErrors"] == []
    after = _finding(http, pid, finding["id"])
    assert (after["state"], after["note"], after["state_at"]) == (before["state"], before["note"], before["state_at"])
    # English: the kinds' English titles, the panel's own
    from viewer.page import KIND_TITLES_EN

    assert sorted(e["english"]) == sorted(KIND_TITLES_EN[f["kind"]] for f in violation["open"])
    assert e["heading"] == "Land supervision"


@pytest.mark.browser
def test_calling_every_finding_a_false_positive_turns_the_parcel_green(server, http, people, violation, restore):
    pid = violation["parcel"]["parcel_id"]
    body = (
        OPEN_AND_PICK
        + """
        const parcels = () => cimViewer.deck.props.layers.find((l) => l.id === "land-parcels");
        const colour = () => parcels().props.getFillColor(
          parcels().props.data.features.find((f) => f.properties.parcel_id === "PID"));
        verdict.value = "";  // every parcel listed and drawn again
        verdict.dispatchEvent(new Event("change"));
        const before = colour();
        for (let open; (open = document.querySelector("#land-detail .finding:not(.closed)[data-state='open']")); ) {
          const id = open.dataset.finding;
          open.querySelector(".state-select").value = "误报";
          open.querySelector(".save").click();
          const msg = () => document.querySelector(`#land-detail li[data-finding="${id}"] .msg`);
          await wait(() => msg()?.textContent === "已保存", "the change");
        }
        const after = colour();
        const badge = document.querySelector("#land-detail h1 .verdict").textContent;
        const inList = document.querySelector('#land-list li[data-parcel="PID"] .verdict').textContent;
        """
    )
    result = "({before, after, badge, inList, highlighted: __cimLand.highlighted})"
    e = browse_signed_in(
        server, people["land_supervisor"], PASSWORD, f"{server}/viewer", eval=_script(body, result, PID=pid)
    )["eval"]
    assert e["before"][:3] == [235, 60, 50] and e["after"][:3] == [60, 200, 120]  # red, then green
    assert e["badge"] == e["inList"] == "合规" and e["highlighted"] == 0  # nothing left to point at
    parcel = http.get(f"/land/parcels/{pid}").json()
    assert parcel["verdict"] == "合规" and parcel["findings"] and {f["state"] for f in parcel["findings"]} >= {"误报"}


#: a dashboard that frames the viewer (?viewer=URL&parcel=ID), asks it to select a parcel once it is
#: ready and reports what came back: window.__cimResult = {ready, selected}
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
      { type: "cim:land.select", parcel_id: query.get("parcel") }, new URL(viewer).origin);
  } else if (m.type === "cim:land.selected") {
    result.selected = m;
    window.__cimDone = true;
  }
});
document.getElementById("viewer").src = viewer;
setTimeout(() => { window.__cimDone = true; }, 30000);
</script></body></html>"""


@pytest.mark.browser
def test_a_dashboard_selects_a_parcel(server, violation, tmp_path):
    from tests.conftest import EMBED_PORT
    from tests.static_server import serve

    pid = violation["parcel"]["parcel_id"]
    (tmp_path / "dashboard.html").write_text(DASHBOARD)
    with serve({"/dashboard.html": tmp_path / "dashboard.html"}, host="localhost", port=EMBED_PORT) as base:
        report = browse(f"{base}/dashboard.html?viewer={server}/viewer&parcel={pid}")
    assert report["result"] == {
        "ready": True,
        "selected": {"type": "cim:land.selected", "parcel_id": pid, "verdict": "违规"},
    }, report
    assert report["consoleErrors"] == [] and report["pageErrors"] == [] and _failed(report) == []


@pytest.mark.browser
def test_the_panel_asks_nothing_until_it_is_on(server, checked):
    body = """
    const asked = () => performance.getEntriesByType("resource").filter((r) => r.name.includes("/land/")).length;
    const before = asked();  // (a request at opening would come first, before the tiles fill the buffer)
    performance.clearResourceTimings();  // the buffer holds 250 entries: tiles fill it
    performance.setResourceTimingBufferSize(100000);
    document.getElementById("land-toggle").click();
    await wait(() => __cimLand.checked === true, "the parcels");
    """
    result = """({before, after: asked(), hash: location.hash,
        drawn: cimViewer.deck.props.layers.filter((l) => l.id === "land-parcels" && l.props.visible)
          .map((l) => l.props.data.features.length)})"""
    e = browse(f"{server}/viewer", eval=_script(body, result))["eval"]
    assert e["before"] == 0 and e["after"] >= 1  # a server where nothing was checked is not asked on opening
    assert e["drawn"] == [len(checked["features"])] and "land" in e["hash"]


@pytest.mark.browser
def test_a_server_where_nothing_was_checked_says_so(server, checked):
    # as that server answers: 404 (here the page's fetch stands in for it)
    body = """
    const real = window.fetch;
    window.fetch = (url, options) => String(url).startsWith("/land/parcels")
      ? Promise.resolve(new Response('{"detail": "no parcels have been checked yet"}', { status: 404 }))
      : real(url, options);
    document.getElementById("land-toggle").click();
    await wait(() => __cimLand.checked === false, "the answer");
    """
    result = """({status: document.getElementById("land-status").textContent,
        tools: document.getElementById("land-tools").hidden, errors: __cimLand.errors,
        drawn: cimViewer.deck.props.layers.filter((l) => l.id.startsWith("land-") && l.props.visible)
          .map((l) => l.props.data.features.length)})"""
    e = browse(f"{server}/viewer", eval=_script(body, result))["eval"]
    assert e["status"] == "尚未核查（请先运行 cim land check）" and e["tools"] is True and e["errors"] == []
    assert e["drawn"] in ([], [0])


def test_the_panel_speaks_both_languages_and_knows_the_rules():
    from layers.land.rules import KINDS, State, Verdict
    from viewer.page import I18N, viewer_config, viewer_page

    config = viewer_config([])
    assert config["land"]["kinds"] == list(KINDS) and set(config["land"]["states"]) == {s.value for s in State}
    assert set(config["land"]["verdicts"]) == {v.value for v in Verdict}
    assert set(config["land"]["editors"]) == {"land_supervisor", "admin"}
    assert set(I18N["zh"]) == set(I18N["en"])
    for kind, (_, title) in KINDS.items():
        assert I18N["zh"][f"kind_{kind}"] == title and I18N["en"][f"kind_{kind}"]
    for key in (*config["land"]["verdicts"].values(), *config["land"]["states"].values()):
        assert any(k.endswith(key) for k in I18N["en"])
    page = viewer_page(config)
    assert '<script src="/viewer/static/land.js"></script>' in page and 'id="land-detail"' in page
