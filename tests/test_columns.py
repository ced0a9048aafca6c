"""A layer serves an allow-list of its columns (``cim layers columns NAME
--serve ...``), and an admin may mark more of them sensitive (``--sensitive``):
a column off the list is in no answer for anyone (items, tiles, /layers,
queryables, filters); a marked one is for operators and admins only; a
re-import keeps the list and serves no new column until it is added."""

from __future__ import annotations

import json
import time

import mapbox_vector_tile
import pytest

from tests.conftest import client_of, run_cim
from tests.test_server import tile_of

NAME = "column_policy"


def _geojson(path, extra: dict | None = None) -> None:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [114.05 + i * 0.001, 22.53]},
            "properties": {"name": f"井盖 {i}", "owner": f"业主 {i}", "internal_code": f"X-{i}", **(extra or {})},
        }
        for i in range(3)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))


@pytest.fixture(scope="module")
def policy_layer(settings, tmp_path_factory, in_process):
    source = tmp_path_factory.mktemp("columns") / "covers.geojson"
    _geojson(source)
    run_cim(settings, "import", "layer", str(source), "--name", NAME, "--no-grid-join", check=True)
    out = run_cim(
        settings, "layers", "columns", NAME, "--serve", "-internal_code", "--sensitive", "owner", check=True
    ).stdout
    assert "2 of 3 columns served" in out
    time.sleep(1.1)  # the server's catalogue is read at most once a second
    return source


@pytest.fixture(scope="module")
def clients(in_process, tokens):
    return {role: client_of(in_process, tokens[role]) for role in ("viewer", "operator", "admin")}


def _properties(client) -> list[dict]:
    response = client.get(f"/collections/{NAME}/items")
    assert response.status_code == 200, response.text
    return [f["properties"] for f in response.json()["features"]]


def test_a_column_off_the_list_is_served_to_nobody_and_a_marked_one_to_operators_only(policy_layer, clients):
    assert [set(p) for p in _properties(clients["viewer"])] == [{"name"}] * 3
    for role in ("operator", "admin"):
        properties = _properties(clients[role])
        assert [set(p) for p in properties] == [{"name", "owner"}] * 3
        assert sorted(p["owner"] for p in properties) == ["业主 0", "业主 1", "业主 2"]
    layer = clients["viewer"].get(f"/layers/{NAME}").json()
    assert set(layer["columns"]) == {"name", "owner"} and layer["sensitive"] == ["owner"]
    queryables = clients["admin"].get(f"/collections/{NAME}/queryables").json()
    assert "internal_code" not in json.dumps(queryables)


def test_a_filter_on_a_column_off_the_list_tells_nothing(policy_layer, clients):
    for role, client in clients.items():
        response = client.get(f"/collections/{NAME}/items", params={"internal_code": "X-1"})
        # not a property: refused, or ignored (all three), never the one feature it would select
        assert response.status_code == 400 or response.json()["numberMatched"] == 3, role


def test_tiles_carry_only_the_served_columns(policy_layer, clients):
    z = 12
    x, y = tile_of(114.051, 22.53, z)
    for role, keys in (("viewer", {"name"}), ("operator", {"name", "owner"})):
        response = clients[role].get(f"/layers/{NAME}/tiles/{z}/{x}/{y}.mvt")
        assert response.status_code == 200, response.text
        features = mapbox_vector_tile.decode(response.content)[NAME]["features"]
        assert len(features) == 3 and all(set(f["properties"]) == keys for f in features), role


def test_a_reimport_keeps_the_list_and_says_what_it_does_not_serve(settings, policy_layer, clients):
    _geojson(policy_layer, {"inspector_phone": "13800000000", "material": "铸铁"})
    out = run_cim(settings, "import", "layer", str(policy_layer), "--name", NAME, "--no-grid-join", check=True).stdout
    assert "not served" in out and "internal_code" in out and "material" in out
    time.sleep(1.1)
    assert [set(p) for p in _properties(clients["operator"])] == [{"name", "owner"}] * 3
    run_cim(settings, "layers", "columns", NAME, "--serve", "+material,+inspector_phone", check=True)
    time.sleep(1.1)
    # inspector_phone is sensitive by its name: served, to operators only
    assert [set(p) for p in _properties(clients["viewer"])] == [{"name", "material"}] * 3
    assert [set(p) for p in _properties(clients["operator"])] == [{"name", "owner", "material", "inspector_phone"}] * 3


def test_an_unknown_column_is_one_clear_line(settings, policy_layer):
    out = run_cim(settings, "layers", "columns", NAME, "--serve", "name,colour")
    assert out.returncode != 0
    error = out.stderr + out.stdout
    assert "--serve" in error and "'colour'" in error and "its columns:" in error
