"""``GET /search`` (layers/search.py) on the imported Futian sample and a BIM model: one hit of
each kind found by its id (and places by their Chinese names), with the id, the box and the
point PostGIS gives the feature; exact matches first; tickets only for the roles that may see
where they are; hidden columns neither shown nor searched; the text's length, the limit and
the kinds checked; LIKE's wildcards taken literally."""

from __future__ import annotations

import dataclasses
import time

import psycopg
import pytest

from cim.config import Settings
from layers.catalogue import LayerInfo
from layers.search import KINDS, MAX_LIMIT, MAX_QUERY, PER_KIND, merge, targets
from tests.conftest import DATA, client_of, run_cim

BIM = "search_bim"
#: where the model stands: the demo's vacant parcel in the CBD (cim.demo.DEMO_BIM_ANCHOR)
ANCHOR = "114.05503,22.53071,0,0"

#: kind -> (layer, id column, a column with its name, or None)
OBJECTS = {
    "street": ("streets", "street_code", "street"),
    "community": ("communities", "community_code", "community"),
    "grid": ("grids", "grid_code", "grid_name"),
    "building": ("buildings", "id", "name"),
    "parcel": ("parcels", "parcel_id", None),
    "component": ("components", "id", None),
    "ticket": ("tickets", "id", None),
    "bim": (BIM, "global_id", "name"),
}


def ensure_bim(settings: Settings, http) -> None:
    """The FZK-Haus imported as ``search_bim`` (once per session: the viewer's tests use it too)."""
    if http.get(f"/layers/{BIM}").status_code != 200:
        ifc = DATA / "ifc" / "AC20-FZK-Haus.ifc"
        run_cim(settings, "import", "bim", str(ifc), "--name", BIM, "--anchor", ANCHOR, check=True)
        time.sleep(1.1)  # the server's catalogue is read at most once a second


def pick(conn, kind: str) -> dict:
    """One object of ``kind`` from PostGIS: its id, name, box and geometry's extent, one whose name
    is unique in its layer (a name search then has one right answer)."""
    layer, key, name = OBJECTS[kind]
    named = f"t.{name}" if name else "NULL"
    unique = f"AND (SELECT count(*) FROM layers.{layer} u WHERE u.{name} = t.{name}) = 1" if name else ""
    row = conn.execute(
        f"""SELECT t.{key}::text, {named}, ST_XMin(t.geom), ST_YMin(t.geom), ST_XMax(t.geom), ST_YMax(t.geom)
            FROM layers.{layer} t WHERE t.{key} IS NOT NULL {unique} ORDER BY t.fid LIMIT 1"""
    ).fetchone()
    assert row is not None, kind
    return {"layer": layer, "key": key, "id": row[0], "name": row[1], "bbox": list(row[2:6])}


@pytest.fixture(scope="module")
def objects(settings, sample, http, db_url) -> dict[str, dict]:
    ensure_bim(settings, http)
    with psycopg.connect(db_url) as conn:
        return {kind: pick(conn, kind) for kind in KINDS}


def _hits(client, q: str, **params) -> list[dict]:
    response = client.get("/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _contains(outer: list[float], inner: list[float], eps: float = 1e-9) -> bool:
    return (
        outer[0] <= inner[0] + eps
        and outer[1] <= inner[1] + eps
        and outer[2] >= inner[2] - eps
        and outer[3] >= inner[3] - eps
    )


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_found_by_its_id_with_its_box_and_a_point_on_it(http, conn, objects, kind):
    obj = objects[kind]
    t0 = time.perf_counter()
    hits = _hits(http, obj["id"])
    took = time.perf_counter() - t0
    mine = [h for h in hits if h["kind"] == kind and h["layer"] == obj["layer"] and h["id"] == obj["id"]]
    assert len(mine) == 1, hits
    hit = mine[0]
    assert hit["match"] == "exact" and hit["key"] == obj["key"]
    assert hits[0]["match"] == "exact"  # exact matches first
    # the box is the feature's own (PostGIS's extent, float8 to float8) and holds its geometry
    assert hit["bbox"] == pytest.approx(obj["bbox"], abs=1e-12)
    assert _contains(hit["bbox"], obj["bbox"])
    lon, lat = hit["point"]
    on = conn.execute(
        f"SELECT ST_DWithin(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326), 1e-9) FROM layers.{obj['layer']} "
        f"WHERE {obj['key']}::text = %s",
        (lon, lat, obj["id"]),
    ).fetchone()
    assert on == (True,)
    # the layer's items give the feature by the hit's key and id (what the viewer outlines)
    items = http.get(f"/layers/{hit['layer']}/items", params={hit["key"]: hit["id"]}).json()
    assert [f["properties"][hit["key"]] for f in items["features"]] == [hit["id"]]
    assert hit["label"]
    assert took < 5, took


@pytest.mark.parametrize("kind", ["street", "community", "grid", "building", "bim"])
def test_places_buildings_and_elements_are_found_by_name(http, objects, kind):
    obj = objects[kind]
    hits = _hits(http, obj["name"])
    assert hits[0]["kind"] == kind and hits[0]["id"] == obj["id"] and hits[0]["match"] == "exact", hits
    assert hits[0]["label"] == obj["name"]  # Chinese where the data is
    # a part of the name finds it too, after those that match better
    part = obj["name"][1:]
    assert any(h["id"] == obj["id"] and h["match"] in ("prefix", "contains") for h in _hits(http, part, limit=50))


def test_the_labels_are_chinese(http, objects):
    hit = _hits(http, objects["street"]["id"])[0]
    assert hit["label"].endswith("街道") and hit["title"] == "街道"
    component = next(h for h in _hits(http, objects["component"]["id"]) if h["kind"] == "component")
    assert any("\u4e00" <= c <= "\u9fff" for c in component["label"])  # its class name (上水井盖 ...)


@pytest.mark.parametrize("role", ["viewer", "land_supervisor", None])
def test_a_ticket_is_not_found_by_who_may_not_see_where_it_is(in_process, tokens, objects, conn, role):
    client = client_of(in_process, tokens[role] if role else None)
    ticket = objects["ticket"]
    address = conn.execute("SELECT address FROM layers.tickets WHERE id = %s", (ticket["id"],)).fetchone()[0]
    for q in (ticket["id"], address):
        hits = _hits(client, q, limit=MAX_LIMIT)
        assert not [h for h in hits if h["kind"] == "ticket" or h["layer"] == "tickets"], hits
        assert not [h for h in hits if address in h["label"] or address in h["detail"]], hits


def test_an_operator_finds_the_ticket(in_process, tokens, objects):
    client = client_of(in_process, tokens["operator"])
    hits = _hits(client, objects["ticket"]["id"])
    assert [(h["kind"], h["id"]) for h in hits if h["match"] == "exact"] == [("ticket", objects["ticket"]["id"])]


def test_hidden_columns_are_neither_shown_nor_searched(sample, http):
    """Off the allow-list for everyone; a sensitive one (an address) for those without the right."""
    tickets = LayerInfo(**{**_layer(http, "tickets"), "served": ("id", "category", "status")})
    (target,) = targets([tickets], ["admin"], kinds=["ticket"])
    assert "address" not in (*target.texts, *target.label, *target.detail)
    building = _layer(http, "buildings")
    building["columns"] = {**building["columns"], "address": "text"}
    with_address = LayerInfo(**{**building, "served": None})
    (for_admin,) = targets([with_address], ["admin"])
    (for_viewer,) = targets([with_address], ["viewer"])
    assert "address" in for_admin.texts and "address" in for_admin.detail
    assert "address" not in (*for_viewer.texts, *for_viewer.label, *for_viewer.detail)
    named_off = LayerInfo(**{**building, "served": ("id", "height")})
    (only_ids,) = targets([named_off], ["admin"])
    assert only_ids.texts == () and only_ids.label == ()


def _layer(http, name: str) -> dict:
    """A layer's catalogue entry as a LayerInfo's fields (those /layers gives; the table by its name)."""
    info = http.get(f"/layers/{name}").json()
    fields = {f.name for f in dataclasses.fields(LayerInfo)}
    out = {k: v for k, v in info.items() if k in fields and k not in ("sensitive",)}
    out.update(table_schema="layers", table_name=name, bbox=tuple(info["bbox"]), imported_at=None)
    return out


def test_a_text_too_long_and_bad_parameters_are_refused_with_a_message(http):
    response = http.get("/search", params={"q": "福" * (MAX_QUERY + 1)})
    assert response.status_code == 400 and f"at most {MAX_QUERY}" in response.json()["detail"]
    assert http.get("/search", params={"q": "福" * MAX_QUERY}).status_code == 200
    for params, word in (
        ({"q": "a", "limit": 0}, "limit"),
        ({"q": "a", "limit": MAX_LIMIT + 1}, "limit"),
        ({"q": "a", "kinds": "street,planets"}, "planets"),
        ({"q": "a\x00b"}, "control"),
    ):
        response = http.get("/search", params=params)
        assert response.status_code == 400 and word in response.json()["detail"], (params, response.text)
    assert _hits(http, "   ") == []


def test_wildcards_are_literal(http, conn, objects):
    parcel = objects["parcel"]["id"]  # B103-0001: the dash
    assert [h["id"] for h in _hits(http, parcel) if h["match"] == "exact"] == [parcel]
    for fake in (parcel.replace("-", "_"), parcel.replace("-", "%"), "%", "_", "%%%", "\\", parcel[:3] + "%"):
        assert [h for h in _hits(http, fake) if h["kind"] == "parcel"] == [], fake
    assert _hits(http, "%") == [] and _hits(http, "%_%") == []
    # an id that holds an underscore (a GlobalId) is found as it is
    row = conn.execute(f"SELECT global_id FROM layers.{BIM} WHERE strpos(global_id, '_') > 0 LIMIT 1").fetchone()
    assert row is not None
    assert _hits(http, row[0])[0]["id"] == row[0]
    assert _hits(http, row[0].replace("_", "%")) == []


def test_the_limit_the_kinds_and_the_cap_per_kind(http):
    for limit in (1, 3, 7):
        assert len(_hits(http, "福田", limit=limit)) == limit
    hits = _hits(http, "福田", limit=MAX_LIMIT)
    assert len(hits) <= MAX_LIMIT
    assert all(sum(h["kind"] == k for h in hits) <= PER_KIND for k in KINDS)
    assert {h["kind"] for h in hits} >= {"street", "community", "grid", "building"}
    only = _hits(http, "福田", kinds="community,grid", limit=MAX_LIMIT)
    assert only and {h["kind"] for h in only} <= {"community", "grid"}
    # exact, then prefix, then contains, whatever the kind
    order = ["exact", "prefix", "contains"]
    assert [order.index(h["match"]) for h in hits] == sorted(order.index(h["match"]) for h in hits)


def test_merge_keeps_the_best_of_each_kind():
    from layers.search import Hit

    def hit(kind: str, match: str, n: int) -> Hit:
        return Hit(kind, kind, str(n), "id", str(n), "", match, (0, 0, 1, 1), (0.5, 0.5))

    hits = [hit("grid", "contains", i) for i in range(20)] + [hit("bim", "exact", 99), hit("street", "prefix", 5)]
    merged = merge(hits, 12, per_kind=10)
    assert [(h.kind, h.match) for h in merged[:2]] == [("bim", "exact"), ("street", "prefix")]
    assert len(merged) == 12 and sum(h.kind == "grid" for h in merged) == 10
