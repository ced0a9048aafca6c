"""OGC API - Features (Part 1 and Part 2), OGC API - Tiles and TileJSON, as
real clients use them: GDAL's OAPIF driver, MapLibre on another origin, and
the checks of the OGC's abstract test suites written as pytest."""

from __future__ import annotations

import json
import subprocess

import mapbox_vector_tile
import pyogrio
import pyproj
import pytest
import shapely
from openapi_spec_validator import validate

from tests.browser import browse
from tests.conftest import CORS_ORIGIN, CORS_PORT, REPO
from tests.static_server import serve
from tests.test_server import tile_of

CONF = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _rels(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for link in doc["links"]:
        out.setdefault(link["rel"], []).append(link)
    return out


def test_landing_page_links_the_api_conformance_and_data(http):
    r = http.get("/", headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    rels = _rels(r.json())
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"][0]["href"].endswith("/openapi.json")
    page = http.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html") and "/viewer" in page.text
    assert http.get("/?f=json", headers={"Accept": "text/html"}).json()["links"]


def test_the_declared_conformance_classes_are_the_ones_tested_here(http):
    conforms = set(http.get("/conformance").json()["conformsTo"])
    assert {CONF + c for c in ("core", "geojson", "html", "oas30")} <= conforms
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conforms
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conforms


def test_the_api_definition_is_valid_openapi_3_0(http):
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.0.")
    validate(doc)  # openapi-spec-validator: raises on any departure from OpenAPI 3.0
    for path in ("/collections", "/collections/{name}/items", "/collections/{name}/items/{fid}", "/conformance"):
        assert path in doc["paths"], path


def test_every_layer_is_a_collection_with_extent_and_crs(http, conn):
    body = http.get("/collections").json()
    names = {c["id"] for c in body["collections"]}
    assert names == {r[0] for r in conn.execute("SELECT name FROM cim.layers").fetchall()}
    buildings = http.get("/collections/buildings").json()
    assert buildings["itemType"] == "feature" and buildings["storageCrs"] == CRS84
    assert {CRS84, EPSG + "4326", EPSG + "4490", EPSG + "4547"} <= set(buildings["crs"])
    west, south, east, north = buildings["extent"]["spatial"]["bbox"][0]
    assert 113.9 < west < east < 114.2 and 22.4 < south < north < 22.7
    assert {"items", "self"} <= set(_rels(buildings))
    assert http.get("/collections/nope").status_code == 404


def test_paging_with_next_links_returns_every_feature_once(http, conn):
    total = conn.execute("SELECT count(*) FROM layers.buildings").fetchone()[0]
    url, seen, pages = "/collections/buildings/items?limit=700", [], 0
    while url:
        page = http.get(url).json()
        pages += 1
        assert page["numberMatched"] == total and page["numberReturned"] == len(page["features"]) <= 700
        seen += [f["id"] for f in page["features"]]
        nxt = _rels(page).get("next")
        url = nxt[0]["href"] if nxt else None
    assert sorted(seen) == sorted(set(seen)) and len(seen) == total and pages == -(-total // 700)
    first = http.get("/collections/buildings/items").json()
    assert len(first["features"]) == 10  # the standard's default page size
    assert http.get("/collections/buildings/items?limit=0").status_code == 422
    # past the end: an empty page and no next link (offset + limit beyond a 16-bit integer, as bench_items found)
    far = http.get("/collections/buildings/items", params={"limit": 1000, "offset": 32000}).json()
    assert far["numberReturned"] == 0 and "next" not in _rels(far)
    assert http.get("/collections/buildings/items?limit=10001").status_code == 422


def test_one_feature_by_id_and_a_missing_one(http, conn):
    fid, name = conn.execute("SELECT fid, name FROM layers.buildings WHERE name IS NOT NULL LIMIT 1").fetchone()
    feature = http.get(f"/collections/buildings/items/{fid}").json()
    assert feature["type"] == "Feature" and feature["id"] == fid and feature["properties"]["name"] == name
    assert {"self", "collection"} <= set(_rels(feature))
    assert http.get("/collections/buildings/items/999999999").status_code == 404
    assert http.get("/collections/buildings/items/abc").status_code == 422


def test_features_in_cgcs2000_gauss_kruger_are_northing_first_to_the_millimetre(http, conn):
    fid, lon, lat = conn.execute(
        "SELECT fid, ST_X(geom), ST_Y(geom) FROM layers.sensors ORDER BY fid LIMIT 1"
    ).fetchone()
    r = http.get(f"/collections/sensors/items/{fid}", params={"crs": EPSG + "4547"})
    assert r.headers["content-crs"] == f"<{EPSG}4547>"
    northing, easting = r.json()["geometry"]["coordinates"]
    expected_e, expected_n = pyproj.Transformer.from_crs("OGC:CRS84", 4547, always_xy=True).transform(lon, lat)
    assert northing == pytest.approx(expected_n, abs=0.001) and easting == pytest.approx(expected_e, abs=0.001)
    lat_lon = http.get(f"/collections/sensors/items/{fid}", params={"crs": EPSG + "4326"}).json()
    assert lat_lon["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-7)
    crs84 = http.get(f"/collections/sensors/items/{fid}").json()
    assert crs84["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-7)
    assert http.get("/collections/sensors/items", params={"crs": EPSG + "3857"}).status_code == 400


def test_a_bbox_in_another_crs_selects_the_same_features(http):
    w, s, e, n = 114.05, 22.53, 114.06, 22.54
    base = http.get("/collections/buildings/items", params={"bbox": f"{w},{s},{e},{n}", "limit": 10000}).json()
    ids = {f["id"] for f in base["features"]}
    assert ids
    lat_lon = http.get("/collections/buildings/items", params={"bbox": f"{s},{w},{n},{e}", "limit": 10000,
                                                              "bbox-crs": EPSG + "4326"}).json()  # fmt: skip
    assert {f["id"] for f in lat_lon["features"]} == ids
    to_gk = pyproj.Transformer.from_crs("OGC:CRS84", 4547, always_xy=True)
    (e0, n0), (e1, n1) = to_gk.transform(w, s), to_gk.transform(e, n)
    gk = http.get("/collections/buildings/items", params={"bbox": f"{n0},{e0},{n1},{e1}", "limit": 10000,
                                                         "bbox-crs": EPSG + "4547"}).json()  # fmt: skip
    # the projected box's sides are not meridians: it holds the lon/lat box's features and a few more at its edges
    assert ids <= {f["id"] for f in gk["features"]} and len(gk["features"]) <= len(ids) * 1.2 + 5


def test_datetime_selects_by_the_layers_time(http, conn):
    day = conn.execute(
        "SELECT (created_at AT TIME ZONE 'UTC')::date FROM layers.tickets ORDER BY fid LIMIT 1"
    ).fetchone()[0]
    expected = conn.execute(
        "SELECT count(*) FROM layers.tickets WHERE created_at >= %s::date AT TIME ZONE 'UTC' "
        "AND created_at < (%s::date + 1) AT TIME ZONE 'UTC'", (day, day)).fetchone()[0]  # fmt: skip
    got = http.get("/collections/tickets/items", params={"datetime": day.isoformat(), "limit": 1}).json()
    assert got["numberMatched"] == expected > 0
    after = http.get("/collections/tickets/items", params={"datetime": f"{day.isoformat()}T00:00:00Z/..", "limit": 1})
    before = http.get("/collections/tickets/items", params={"datetime": f"../{day.isoformat()}T00:00:00Z", "limit": 1})
    total = conn.execute("SELECT count(*) FROM layers.tickets").fetchone()[0]
    assert after.json()["numberMatched"] + before.json()["numberMatched"] >= total
    assert http.get("/collections/tickets/items", params={"datetime": "yesterday"}).status_code == 400
    assert http.get("/collections/streets/items", params={"datetime": "2024-01-01"}).status_code == 400


def test_html_pages_for_a_browser(http):
    accept = {"Accept": "text/html"}
    for path in ("/collections", "/collections/buildings", "/collections/buildings/items?limit=5", "/conformance"):
        r = http.get(path, headers=accept)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
    assert "建筑" in http.get("/collections", headers=accept).text


def test_gdal_lists_the_collections_and_copies_all_buildings_with_their_chinese(server, conn, tmp_path):
    listing = subprocess.run(["ogrinfo", "-ro", "-q", f"OAPIF:{server}/"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    names = {r[0] for r in conn.execute("SELECT name FROM cim.layers").fetchall()}
    assert all(f": {name} " in listing.stdout or listing.stdout.count(name) for name in names), listing.stdout
    out = tmp_path / "buildings.gpkg"
    copy = subprocess.run(["ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{server}/collections/buildings", "buildings",
                           "-oo", "PAGE_SIZE=1000"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert copy.returncode == 0, copy.stderr
    frame = pyogrio.read_dataframe(out, fid_as_index=True)  # GDAL keeps each feature's id as its FID
    rows = conn.execute("SELECT fid, name, street, ST_AsBinary(geom) FROM layers.buildings ORDER BY fid").fetchall()
    assert len(frame) == len(rows)
    by_id = dict(zip(frame.index, frame.itertuples()))
    for fid, name, street, wkb in rows[:: max(1, len(rows) // 200)]:
        got = by_id[fid]
        assert got.name == name and got.street == street
        assert shapely.equals_exact(got.geometry, shapely.from_wkb(bytes(wkb)), tolerance=1e-7)
    assert any("街道" in (s or "") for s in frame["street"])


def test_tilejson_describes_the_tiles_and_its_template_serves_them(http):
    tj = http.get("/layers/buildings/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["vector_layers"][0]["id"] == "buildings"
    assert tj["vector_layers"][0]["fields"]["height"] == "Number" and tj["minzoom"] == 0
    x, y = tile_of(114.055, 22.537, 15)  # the CBD
    tile = http.get(tj["tiles"][0].format(z=15, x=x, y=y))
    assert tile.status_code == 200 and mapbox_vector_tile.decode(tile.content)["buildings"]["features"]
    combined = http.get("/tiles/tilejson.json", params={"layers": "buildings,streets"}).json()
    assert [v["id"] for v in combined["vector_layers"]] == ["buildings", "streets"]
    both = mapbox_vector_tile.decode(http.get(combined["tiles"][0].format(z=15, x=x, y=y)).content)
    assert set(both) == {"buildings", "streets"}
    ogc = http.get(f"/collections/buildings/tiles/WebMercatorQuad/15/{y}/{x}")
    assert ogc.status_code == 200 and ogc.content == tile.content
    tileset = http.get("/collections/buildings/tiles/WebMercatorQuad").json()
    assert any(link.get("templated") and "{tileMatrix}" in link["href"] for link in tileset["links"])
    tms = http.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["tileMatrices"][15]["matrixWidth"] == 2**15


def test_cors_lets_the_configured_origin_in_and_no_other(http):
    allowed = http.get("/layers/buildings/tilejson.json", headers={"Origin": CORS_ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == CORS_ORIGIN
    other = http.get("/layers/buildings/tilejson.json", headers={"Origin": "http://127.0.0.1:9"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.browser
def test_maplibre_on_an_allowed_origin_draws_tiles_and_another_origin_is_refused(server):
    page = {"/page.html": REPO / "tests" / "pages" / "maplibre_tilejson.html",
            "/maplibre": REPO / "node_modules" / "maplibre-gl" / "dist"}  # fmt: skip
    query = f"tilejson={server}/layers/buildings/tilejson.json&layer=buildings&lon=114.055&lat=22.537&zoom=15"
    with serve(page, host="localhost", port=CORS_PORT) as base:
        ok = browse(f"{base}/page.html?{query}")
    assert ok["result"]["errors"] == [] and ok["result"]["features"] > 10, ok
    with serve(page) as base:  # 127.0.0.1 at another port: not in CIM_CORS_ORIGINS
        refused = browse(f"{base}/page.html?{query}")
    assert refused["result"]["features"] <= 0 and refused["result"]["errors"], refused
    assert json.dumps(refused).count("tilejson.json") >= 1
