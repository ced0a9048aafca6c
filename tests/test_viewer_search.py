"""The viewer's search box (viewer/static/search.js) in headless Chromium: typing finds one object
of each kind (the results grouped under Chinese kind names), choosing one (a click, or Enter) flies
there (the view's centre within a few metres of the hit's box's centre, at most zoom 18) and outlines
it; tickets only for an operator; a dashboard's {type: "cim:search", q}; the box's width on a desktop
and on a phone, in English."""

from __future__ import annotations

import json
import math
import secrets
from typing import Any

import psycopg
import pytest

from layers.search import KINDS
from tests.browser import browse, browse_signed_in
from tests.test_search import BIM, ensure_bim, pick

PASSWORD = "search-box-check-7"
ZH = {"street": "街道", "community": "社区", "grid": "网格", "building": "建筑", "parcel": "宗地",
      "component": "城市部件", "ticket": "工单", "bim": "BIM 构件"}  # fmt: skip

#: in the page: wait for a condition (a function), up to 30 s
WAIT = """const wait = async (test, what) => {
  for (const t0 = Date.now(); !test(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > 30000) throw new Error("timed out waiting for " + what);
};
const S = () => __cimSearch;
const input = () => document.querySelector("#slot-top-center .cim-search-input");
const type = async (q, kind, id) => {
  input().value = q;
  input().dispatchEvent(new Event("input", { bubbles: true }));
  await wait(() => S().query === q && !S().searching && S().results.some((h) => h.kind === kind && h.id === id),
             `the hit ${kind} ${id} of ${q}`);
};
const centre = () => { const v = cimViewer.deck.getViewports()[0]; return [v.longitude, v.latitude, v.zoom]; };
// the flight over: the view at the chosen hit's view (to 1 cm) and outlined
const landed = async (kind, id) => {
  await wait(() => S().chosen && S().chosen.kind === kind && S().chosen.id === id, `${kind} ${id} chosen`);
  await wait(() => { const [x, y] = centre(); const v = S().chosen.view;
                     return Math.abs(x - v.longitude) < 1e-7 && Math.abs(y - v.latitude) < 1e-7; },
             `the flight to ${id}`);
  const drawn = () => cimViewer.deck.props.layers.some((l) => l.id === "search-hit" && l.props.visible);
  await wait(() => S().chosen.outlined && drawn(), `the outline of ${id}`);
  return { kind, id, bbox: S().chosen.bbox, centre: centre(), outlined: S().chosen.outlined };
};
const groups = () => [...document.querySelectorAll(".cim-search-results .cim-search-kind")]
  .map((e) => e.textContent);"""

#: in the page: for each [kind, q, id]: type q, note the groups, choose the hit (the first by Enter, others by a click)
EACH = """
const out = [];
for (const [i, [kind, q, id]] of CASES.entries()) {
  await type(q, kind, id);
  const listed = groups();
  const kinds = [...new Set(S().results.map((h) => h.kind))];
  if (i === 0) {
    const hits = S().results;
    const first = hits[0];
    input().dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    out.push({ ...(await landed(first.kind, first.id)), listed, kinds, enter: true, expected: [kind, id] });
  } else {
    // a BIM element's GlobalId is the same in every copy of a model (other modules import FZK-Haus too): this one's
    const layer = kind === "bim" ? `[data-layer="${BIM_LAYER}"]` : "";
    document.querySelector(`.cim-search-hit[data-kind="${kind}"][data-id="${CSS.escape(id)}"]${layer}`).click();
    out.push({ ...(await landed(kind, id)), listed, kinds });
  }
}
const width = document.querySelector("#slot-top-center .cim-search").getBoundingClientRect().width;
"""


def _script(body: str, result: str, **values: Any) -> str:
    for name, value in values.items():
        body = body.replace(name, json.dumps(value, ensure_ascii=False))
    return f"(async () => {{ {WAIT} {body} return {result}; }})()"


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians((a[1] + b[1]) / 2))
    dy = (a[1] - b[1]) * 110_574
    return math.hypot(dx, dy)


def _clean(report: dict) -> None:
    assert report["pageErrors"] == [] and report["consoleErrors"] == [], report
    assert [r for r in report["failedRequests"] if not r.endswith("net::ERR_ABORTED")] == [], report
    assert report["foreignRequests"] == []


def _check_flights(flights: list[dict]) -> None:
    for f in flights:
        w, s, e, n = f["bbox"]
        lon, lat, zoom = f["centre"]
        assert _metres((lon, lat), ((w + e) / 2, (s + n) / 2)) < 3.0, f
        assert zoom <= 18.0 + 1e-9, f
        assert f["outlined"] == "feature", f


@pytest.fixture(scope="module")
def objects(settings, sample, http, db_url) -> dict[str, dict]:
    ensure_bim(settings, http)
    with psycopg.connect(db_url) as conn:
        return {kind: pick(conn, kind) for kind in KINDS}


@pytest.fixture(scope="module")
def operator(db_url: str) -> str:
    from cim.auth.store import add_user, ensure_auth_schema

    name = f"search.{secrets.token_hex(3)}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        ensure_auth_schema(conn)
        add_user(conn, name, PASSWORD, ["operator"])
    return name


@pytest.mark.browser
def test_each_kind_is_found_listed_in_chinese_and_flown_to(server, objects):
    # places and elements by their Chinese (or model's) names, the others by id; the first chosen by Enter
    cases = [
        [kind, objects[kind]["name"] if kind in ("street", "grid", "bim") else objects[kind]["id"], objects[kind]["id"]]
        for kind in KINDS
        if kind != "ticket"
    ]
    ticket = objects["ticket"]["id"]
    body = (
        EACH
        + """
        input().value = TICKET;
        input().dispatchEvent(new Event("input", { bubbles: true }));
        await wait(() => S().query === TICKET && !S().searching, "the ticket's search");
        const ticketHits = S().results.filter((h) => h.kind === "ticket").length;
        const lang = document.documentElement.lang;
        """
    )
    report = browse(
        f"{server}/viewer#layers=streets",  # one light layer: others' imports stay off
        eval=_script(
            body, "{ out, width, ticketHits, lang, errors: S().errors }", CASES=cases, TICKET=ticket, BIM_LAYER=BIM
        ),
    )
    _clean(report)
    e = report["eval"]
    assert e["errors"] == [] and e["lang"] == "zh-CN"
    flights = e["out"]
    assert [(f["kind"], f["id"]) for f in flights] == [(k, i) for k, _, i in cases]
    assert flights[0]["enter"] and flights[0]["expected"] == [cases[0][0], cases[0][2]]
    for f, (kind, _, _) in zip(flights, cases, strict=True):
        assert ZH[kind] in f["listed"], f  # grouped under its Chinese kind name
        assert f["listed"] == [ZH[k] for k in f["kinds"]]
    _check_flights(flights)
    assert e["ticketHits"] == 0  # not signed in: no ticket is found
    assert e["width"] <= 360


@pytest.mark.browser
def test_an_operator_finds_a_ticket_and_a_dashboard_searches(server, objects, operator):
    ticket, parcel = objects["ticket"]["id"], objects["parcel"]["id"]
    body = """
    await type(TICKET, "ticket", TICKET);
    const listed = groups();
    document.querySelector(`.cim-search-hit[data-kind="ticket"]`).click();
    const flights = [await landed("ticket", TICKET)];
    // a dashboard's message (the page is its own parent here: the same origin, accepted)
    window.postMessage({ type: "cim:search", q: PARCEL }, location.origin);
    flights.push(await landed("parcel", PARCEL));
    """
    report = browse_signed_in(
        server,
        operator,
        PASSWORD,
        f"{server}/viewer#layers=streets",  # one light layer: others' imports stay off
        eval=_script(
            body, "{ listed, flights, value: input().value, errors: S().errors }", TICKET=ticket, PARCEL=parcel
        ),
    )
    _clean(report)
    assert report["me"]["roles"] == ["operator"]
    e = report["eval"]
    assert e["errors"] == [] and ZH["ticket"] in e["listed"]
    assert e["value"] == parcel
    _check_flights(e["flights"])


@pytest.mark.browser
def test_on_a_phone_the_box_fits_and_speaks_english(server, objects):
    street = objects["street"]
    body = """
    await type(Q, "street", ID);
    const listed = groups();
    const rect = document.querySelector("#slot-top-center .cim-search").getBoundingClientRect();
    const placeholder = input().placeholder;
    """
    report = browse(
        f"{server}/viewer#lang=en",
        size="400x760",
        eval=_script(
            body,
            "{ listed, left: rect.left, right: rect.right, width: rect.width, placeholder, vw: innerWidth }",
            Q=street["id"],
            ID=street["id"],
        ),
    )
    _clean(report)
    e = report["eval"]
    assert e["vw"] == 400
    assert e["listed"][0] == "Streets" and e["placeholder"].startswith("Search")
    assert e["width"] <= 400 - 24 + 0.5 and e["left"] >= 11.5 and e["right"] <= 400 - 11.5
