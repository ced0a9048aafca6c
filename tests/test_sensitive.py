"""Personal and sensitive data (layers.sensitive): a ticket's address and
exact location are for operators and admins; viewers, land supervisors and
visitors not signed in get the tickets without addresses and snapped to
their grid cells' centroids, in items, tiles, the live snapshot and the
live stream alike."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time

import mapbox_vector_tile
import pytest

from layers.catalogue import LayerInfo
from layers.sensitive import FALLBACK_DEGREES, hidden_columns, mask_for, sensitive_by_name, snaps_points
from tests.conftest import client_of
from tests.test_server import tile_of

TOL = 1.5e-7  # degrees: GeoJSON and the snapshot carry 7 decimals

#: each ticket of the layer: its exact point, its address, and the point a viewer gets (its grid cell's centroid)
EXPECTED_SQL = """
    SELECT t.fid, ST_X(t.geom), ST_Y(t.geom), t.address,
           coalesce(ST_X(c.centre), round(ST_X(t.geom)::numeric, 2)::float8),
           coalesce(ST_Y(c.centre), round(ST_Y(t.geom)::numeric, 2)::float8)
    FROM layers.tickets t
    LEFT JOIN LATERAL (SELECT ST_Centroid(g.geom) AS centre FROM layers.grids g
                       WHERE g.grid_code = t.grid ORDER BY g.fid LIMIT 1) c ON true"""


def _expected(conn) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in conn.execute(EXPECTED_SQL).fetchall()}


def _layer(name: str, columns: dict[str, str], geometry_type: str = "Point") -> LayerInfo:
    return LayerInfo(name, name, "layers", name, geometry_type, 4326, 0, (0, 0, 1, 1), columns)


def test_the_rule_by_column_name_layer_and_role():
    tickets = _layer("tickets", {"id": "text", "address": "text", "grid": "text", "联系电话": "text"})
    parks = _layer("parks", {"name": "text", "Contact_Phone": "text"}, "MultiPolygon")
    for roles in ({"viewer"}, {"land_supervisor"}, set(), {"device"}):
        assert hidden_columns(tickets, roles) == {"address", "联系电话"}
        assert hidden_columns(parks, roles) == {"Contact_Phone"}
        assert snaps_points(tickets, roles) and not snaps_points(parks, roles)
    for roles in ({"operator"}, {"admin"}, {"viewer", "operator"}):
        assert hidden_columns(tickets, roles) == set() and not snaps_points(tickets, roles)
        assert mask_for(tickets, roles).full
    for name in ("owner_phone", "Reporter-Name", "详细地址", "业主联系电话", "ADDR"):
        assert sensitive_by_name(name), name
    for name in ("contacted_at", "hotel", "category", "addressed"):
        assert not sensitive_by_name(name), name
    grids = _layer("grids", {"grid_code": "text"}, "MultiPolygon")
    assert mask_for(tickets, {"viewer"}, grids).grids == ("layers", "grids")
    assert mask_for(tickets, {"viewer"}).grids is None  # no grid layer: rounded only


@pytest.fixture(scope="module")
def clients(in_process, tokens):
    return {
        "viewer": client_of(in_process, tokens["viewer"]),
        "land_supervisor": client_of(in_process, tokens["land_supervisor"]),
        "anonymous": client_of(in_process),
        "operator": client_of(in_process, tokens["operator"]),
        "admin": client_of(in_process, tokens["admin"]),
    }


def _features(client, path: str) -> list[dict]:
    response = client.get(path, params={"limit": 10_000})
    assert response.status_code == 200, response.text
    return response.json()["features"]


@pytest.mark.parametrize("path", ["/collections/tickets/items", "/layers/tickets/items"])
def test_items_of_tickets_are_snapped_and_without_address_for_readers_without_the_right(clients, conn, path):
    expected = _expected(conn)
    assert sum(1 for e in expected.values() if e[2]) == len(expected) > 1000  # every sample ticket has an address
    for who in ("viewer", "land_supervisor", "anonymous"):
        features = _features(clients[who], path)
        assert len(features) == len(expected)
        for f in features:
            assert "address" not in f["properties"] and "grid" in f["properties"]
            _, _, _, slon, slat = expected[f["id"]]
            lon, lat = f["geometry"]["coordinates"]
            assert abs(lon - slon) < TOL and abs(lat - slat) < TOL, (who, f["id"])
    for who in ("operator", "admin"):
        for f in _features(clients[who], path):
            lon, lat = f["geometry"]["coordinates"]
            xlon, xlat, address, _, _ = expected[f["id"]]
            assert f["properties"]["address"] == address
            assert abs(lon - xlon) < TOL and abs(lat - xlat) < TOL


def test_one_ticket_a_filter_and_a_box_tell_a_viewer_nothing_exact(clients, conn):
    fid, lon, lat, address, slon, slat = conn.execute(EXPECTED_SQL + " ORDER BY t.fid LIMIT 1").fetchone()
    assert abs(lon - slon) > 1e-5 or abs(lat - slat) > 1e-5  # the exact point is not its cell's centre
    one = clients["viewer"].get(f"/collections/tickets/items/{fid}").json()
    assert "address" not in one["properties"] and one["geometry"]["coordinates"] == pytest.approx([slon, slat])
    full = clients["operator"].get(f"/collections/tickets/items/{fid}").json()
    assert full["properties"]["address"] == address
    # a hidden column cannot be filtered on (its values would show through the answers)
    assert clients["viewer"].get("/collections/tickets/items", params={"address": address}).status_code == 400
    assert clients["operator"].get("/collections/tickets/items", params={"address": address}).json()["features"]
    # a tiny box around the exact point finds the ticket for an operator only
    box = f"{lon - 1e-7},{lat - 1e-7},{lon + 1e-7},{lat + 1e-7}"
    ids = {f["id"] for f in clients["operator"].get("/layers/tickets/items", params={"bbox": box}).json()["features"]}
    assert fid in ids
    assert fid not in {
        f["id"] for f in clients["viewer"].get("/layers/tickets/items", params={"bbox": box}).json()["features"]
    }


def _tile(conn) -> tuple[int, int, int]:
    """A zoom-15 tile around the grid cell with the most tickets."""
    lon, lat = conn.execute(
        """SELECT ST_X(ST_Centroid(g.geom)), ST_Y(ST_Centroid(g.geom)) FROM layers.grids g
           JOIN layers.tickets t ON t.grid = g.grid_code GROUP BY g.fid, g.geom ORDER BY count(*) DESC LIMIT 1"""
    ).fetchone()
    return (15, *tile_of(lon, lat, 15))


def _tile_points(conn, z: int, x: int, y: int, point_sql: str) -> dict[int, tuple[float, float]]:
    """Every ticket's ``point_sql`` (over tickets t and centres c) in the tile's coordinates (y down)."""
    rows = conn.execute(
        f"""SELECT t.fid, ST_X(p), ST_Y(p) FROM layers.tickets t
            LEFT JOIN LATERAL (SELECT ST_Centroid(g.geom) AS centre FROM layers.grids g
                               WHERE g.grid_code = t.grid ORDER BY g.fid LIMIT 1) c ON true,
            ST_AsMVTGeom(ST_Transform({point_sql}, 3857), ST_TileEnvelope(%s, %s, %s), 4096, 64, true) p
            WHERE p IS NOT NULL""",
        (z, x, y),
    ).fetchall()
    return {fid: (px, py) for fid, px, py in rows}


def _decoded(response) -> list[dict]:
    assert response.status_code == 200, response.status_code
    return mapbox_vector_tile.decode(response.content, default_options={"y_coord_down": True})["tickets"]["features"]


@pytest.mark.parametrize(
    "url", ["/layers/tickets/tiles/{z}/{x}/{y}.mvt", "/collections/tickets/tiles/WebMercatorQuad/{z}/{y}/{x}"]
)
def test_vector_tiles_of_tickets_are_snapped_for_viewers_and_their_etags_differ(clients, conn, url):
    z, x, y = _tile(conn)
    path = url.format(z=z, x=x, y=y)
    snapped = _tile_points(conn, z, x, y, f"coalesce(c.centre, ST_SnapToGrid(t.geom, {FALLBACK_DEGREES}))")
    exact = _tile_points(conn, z, x, y, "t.geom")
    addresses = dict(conn.execute("SELECT fid, address FROM layers.tickets").fetchall())
    etags = {}
    for who in ("viewer", "anonymous", "operator"):
        response = clients[who].get(path)
        assert "Authorization" in response.headers["Vary"] and "Cookie" in response.headers["Vary"]
        etags[who] = response.headers["ETag"]
        features = _decoded(response)
        points = exact if who == "operator" else snapped
        assert len(features) == len(points) > 5
        for f in features:
            px, py = f["geometry"]["coordinates"]
            ex, ey = points[f["id"]]
            assert abs(px - ex) <= 1 and abs(py - ey) <= 1, (who, f["id"])
            if who == "operator":
                assert f["properties"]["address"] == addresses[f["id"]]
            else:
                assert "address" not in f["properties"]
        # the client's ETag is its variant's: a 304 for it, the tile for the other variant
        assert clients[who].get(path, headers={"If-None-Match": etags[who]}).status_code == 304
    assert etags["viewer"] == etags["anonymous"] != etags["operator"]
    assert clients["viewer"].get(path, headers={"If-None-Match": etags["operator"]}).status_code == 200
    assert clients["operator"].get(path).headers["Cache-Control"].startswith("private")
    # the same for several layers in one tile
    both = clients["viewer"].get(f"/tiles/{z}/{x}/{y}.mvt", params={"layers": "tickets,grids"})
    assert {f["id"] for f in _decoded(both)} == set(snapped)
    assert (
        both.headers["ETag"] != clients["operator"].get(f"/tiles/{z}/{x}/{y}.mvt?layers=tickets,grids").headers["ETag"]
    )


LIVE_EXPECTED_SQL = """
    SELECT r.id, ST_X(r.geom), ST_Y(r.geom),
           coalesce(ST_X(c.centre), round(ST_X(r.geom)::numeric, 2)::float8),
           coalesce(ST_Y(c.centre), round(ST_Y(r.geom)::numeric, 2)::float8)
    FROM live.ticket_records r
    LEFT JOIN LATERAL (SELECT ST_Centroid(g.geom) AS centre FROM layers.grids g
                       WHERE g.grid_code = r.grid ORDER BY g.fid LIMIT 1) c ON true"""


def test_the_live_ticket_snapshot_is_snapped_for_viewers(clients, conn):
    expected = {r[0]: r[1:] for r in conn.execute(LIVE_EXPECTED_SQL).fetchall()}
    for who in ("viewer", "anonymous", "operator"):
        snap = clients[who].get("/live/snapshot/tickets").json()
        assert snap["count"] > 10 and "address" not in snap
        for tid, lon, lat in zip(snap["id"], snap["lon"], snap["lat"]):
            xlon, xlat, slon, slat = expected[tid]
            want = (xlon, xlat) if who == "operator" else (slon, slat)
            assert abs(lon - want[0]) < TOL and abs(lat - want[1]) < TOL, (who, tid)


def _ws(server: str, token: str | None):
    from websockets.sync.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else None
    return connect(server.replace("http://", "ws://") + "/live/stream", open_timeout=10, additional_headers=headers)


def _ticket_delta(ws, ticket_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            raise AssertionError(f"no delta with ticket {ticket_id}") from None
        for t in message.get("tickets", []):
            if t["id"] == ticket_id:
                return t


def test_a_live_ticket_reaches_viewers_snapped_and_operators_exact(server, tokens, http, conn):
    lon, lat = 114.05617, 22.53391
    with contextlib.ExitStack() as stack:
        sockets = {
            who: stack.enter_context(_ws(server, tokens.get(who))) for who in ("viewer", "operator", "anonymous")
        }
        for ws in sockets.values():
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
            ws.send(json.dumps({"subscribe": {"layers": ["tickets"]}}))
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        created = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
        ticket = {"id": "T-SENSITIVE-1", "channel": "12345热线", "category": "噪音扰民", "lon": lon, "lat": lat}
        response = http.post("/live/tickets", json={**ticket, "created_at": created.isoformat()})
        assert response.status_code == 200, response.text
        deltas = {who: _ticket_delta(ws, "T-SENSITIVE-1") for who, ws in sockets.items()}
    _, _, slon, slat = next(r[1:] for r in conn.execute(LIVE_EXPECTED_SQL).fetchall() if r[0] == "T-SENSITIVE-1")
    assert abs(slon - lon) > 1e-5 or abs(slat - lat) > 1e-5
    assert (deltas["operator"]["lon"], deltas["operator"]["lat"]) == (lon, lat)
    for who in ("viewer", "anonymous"):
        assert abs(deltas[who]["lon"] - slon) < TOL and abs(deltas[who]["lat"] - slat) < TOL, who
        assert deltas[who]["stage"] == deltas["operator"]["stage"]
