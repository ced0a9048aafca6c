"""`cim serve` over real HTTP: catalogue, vector tiles, GeoJSON items."""

from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
import shapely

MVT = "application/vnd.mapbox-vector-tile"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_layers_lists_the_sample(http):
    body = http.get("/layers").json()
    by_name = {layer["name"]: layer for layer in body}
    assert by_name["grids"]["feature_count"] == 1646
    assert by_name["streets"]["title"] == "街道"
    assert by_name["sensors"]["geometry_type"] == "Point"
    assert by_name["buildings"]["geometry_type"] == "MultiPolygon"
    west, south, east, north = by_name["futian_boundary"]["bbox"]
    assert 113.98 < west < 114.0 and 114.09 < east < 114.11 and 22.49 < south < 22.51 and 22.58 < north < 22.60


def test_healthz_and_docs(http):
    assert http.get("/healthz").json()["status"] == "ok"
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert "/layers/{name}/tiles/{z}/{x}/{y}.mvt" in paths and "/layers/{name}/items" in paths


def test_a_buildings_tile_holds_exactly_the_buildings_it_touches(http, conn):
    x, y = tile_of(114.055, 22.537, 15)  # the CBD
    r = http.get(f"/layers/buildings/tiles/15/{x}/{y}.mvt")
    assert r.status_code == 200 and r.headers["content-type"] == MVT
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    layer = mapbox_vector_tile.decode(r.content)["buildings"]
    ids = {f["id"] for f in layer["features"]}
    expected = {
        row[0]
        for row in conn.execute(
            "SELECT fid FROM layers.buildings "
            "WHERE ST_Intersects(geom, ST_Transform(ST_TileEnvelope(15, %s, %s), 4326))",
            (x, y),
        ).fetchall()
    }
    assert expected and expected <= ids  # all that intersect, plus at most the buffer's neighbours
    buffered = {
        row[0]
        for row in conn.execute(
            "SELECT fid FROM layers.buildings WHERE ST_Intersects(geom, "
            "ST_Transform(ST_TileEnvelope(15, %s, %s, margin => 64.0/4096), 4326))",
            (x, y),
        ).fetchall()
    }
    assert ids <= buffered
    props = layer["features"][0]["properties"]
    assert {"height", "floors", "use", "street", "community", "grid"} <= set(props)
    # geometry in tile coordinates stays within the buffered extent
    for f in layer["features"]:
        coords = shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))
        assert coords.min() >= -64 - 1 and coords.max() <= 4096 + 64 + 1


def test_points_tile_and_properties(http, conn):
    x, y = tile_of(114.05, 22.54, 13)
    layer = mapbox_vector_tile.decode(http.get(f"/layers/sensors/tiles/13/{x}/{y}.mvt").content)["sensors"]
    n = conn.execute(
        "SELECT count(*) FROM layers.sensors WHERE geom && ST_Transform(ST_TileEnvelope(13, %s, %s, "
        "margin => 64.0/4096), 4326)",
        (x, y),
    ).fetchone()[0]
    assert len(layer["features"]) == n > 100
    assert {"category", "street", "grid"} <= set(layer["features"][0]["properties"])


def test_empty_tile_is_204_and_etag_gives_304(http):
    r = http.get("/layers/buildings/tiles/12/0/0.mvt")
    assert r.status_code == 204 and r.content == b""
    x, y = tile_of(114.05, 22.54, 14)
    first = http.get(f"/layers/buildings/tiles/14/{x}/{y}.mvt")
    again = http.get(f"/layers/buildings/tiles/14/{x}/{y}.mvt", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_low_zoom_tiles_are_simplified(http):
    x, y = tile_of(114.05, 22.54, 10)
    coarse = mapbox_vector_tile.decode(http.get(f"/layers/futian_boundary/tiles/10/{x}/{y}.mvt").content)
    n_coarse = len(
        shapely.get_coordinates(shapely.geometry.shape(coarse["futian_boundary"]["features"][0]["geometry"]))
    )
    assert n_coarse < 686  # the published ring has 686 vertices


def test_items_bbox_paging_and_filters(http, conn):
    bbox = (114.04, 22.53, 114.07, 22.55)
    page1 = http.get("/layers/buildings/items", params={"bbox": ",".join(map(str, bbox)), "limit": 5}).json()
    total = conn.execute(
        "SELECT count(*) FROM layers.buildings WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))", bbox
    ).fetchone()[0]
    assert page1["type"] == "FeatureCollection" and page1["numberMatched"] == total > 5
    assert page1["numberReturned"] == len(page1["features"]) == 5
    page2 = http.get(
        "/layers/buildings/items", params={"bbox": ",".join(map(str, bbox)), "limit": 5, "offset": 5}
    ).json()
    ids1 = [f["id"] for f in page1["features"]]
    ids2 = [f["id"] for f in page2["features"]]
    assert not set(ids1) & set(ids2) and ids1 == sorted(ids1)
    feature = page1["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon" and "fid" not in feature["properties"]
    assert shapely.geometry.shape(feature["geometry"]).intersects(shapely.box(*bbox))

    use = feature["properties"]["use"]
    filtered = http.get("/layers/buildings/items", params={"use": use, "limit": 10000}).json()
    n_use = conn.execute("SELECT count(*) FROM layers.buildings WHERE use = %s", (use,)).fetchone()[0]
    assert filtered["numberMatched"] == n_use and all(f["properties"]["use"] == use for f in filtered["features"])
    floors = http.get("/layers/buildings/items", params={"floors": 7, "limit": 1}).json()
    assert all(f["properties"]["floors"] == 7 for f in floors["features"])


@pytest.mark.parametrize(
    "path, status",
    [
        ("/layers/nope/items", 404),
        ("/layers/nope/tiles/1/0/0.mvt", 404),
        ("/layers/buildings/tiles/3/9/0.mvt", 404),
        ("/layers/buildings/items?bbox=1,2,3", 400),
        ("/layers/buildings/items?limit=-1", 422),
        ("/layers/buildings/items?nocolumn=1", 400),
        ("/layers/buildings%22%3B%20DROP%20TABLE%20cim.layers%3B--/items", 404),
        ("/layers/buildings/items?use%22%3Bdrop=1", 400),
        ("/layers/buildings/items?floors=abc", 400),
        ("/layers/buildings/items?bbox=114.1,22.5,114.0,22.6", 400),
        ("/live/snapshot/cameras?bbox=1,2,3", 400),
        ("/live/snapshot/tickets?bbox=200,0,210,10", 400),
        ("/live/snapshot/sensors?bbox=nan,0,1,1", 400),
        ("/live/sensors/nope", 404),
        ("/live/tickets/nope", 404),
        ("/live/counts?level=planet", 400),
        ("/live/alarms?since=yesterday", 400),
        ("/bim/buildings", 404),
        ("/viewer/vendor/nope.js", 404),
    ],
)
def test_bad_requests_get_clear_statuses_and_touch_no_sql(http, path, status):
    r = http.get(path)
    assert r.status_code == status
    if status != 422:  # FastAPI's own validation answers a list; ours one line for people
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail
    assert http.get("/layers/buildings/items?limit=1").status_code == 200  # still there
