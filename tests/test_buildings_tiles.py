"""`cim import buildings`: the white model as 3D Tiles 1.1, checked with the
Khronos validator, traced back to lon/lat/height in metres, and its metadata
compared with PostGIS."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pyproj
import pytest
import shapely

from tests.conftest import REPO, run_cim
from tests.gltf_read import Glb, tile_transforms, to_ecef
from tests.validator import assert_valid_3dtiles

TO_LLH = pyproj.Transformer.from_crs(4978, 4979, always_xy=True)
TO_METRIC = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)


@pytest.fixture(scope="module")
def tileset_dir(settings, sample) -> Path:
    """The demo imported the sample buildings as a layer and a tileset."""
    path = settings.tilesets_dir / "buildings"
    assert (path / "tileset.json").is_file()
    return path


@pytest.fixture(scope="module")
def tileset(tileset_dir) -> dict:
    return json.loads((tileset_dir / "tileset.json").read_text())


@pytest.fixture(scope="module")
def glbs(tileset, tileset_dir) -> dict[str, Glb]:
    return {uri: Glb.read(tileset_dir / uri) for uri in tile_transforms(tileset)}


def validate(paths: list[Path]) -> list[dict]:
    out = subprocess.run(
        ["node", str(REPO / "tools" / "validate_gltf.mjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_every_glb_passes_the_khronos_validator(tileset_dir, glbs):
    reports = validate([tileset_dir / uri for uri in glbs])
    assert len(reports) == len(glbs) > 1
    for r in reports:
        assert r["errors"] == 0 and r["warnings"] == 0, r


def test_tileset_is_3d_tiles_1_1_with_content_derived_errors(tileset, tileset_dir):
    assert tileset["asset"]["version"] == "1.1"
    assert tileset["geometricError"] > 100  # the tallest sample tower
    errors = []

    def walk(tile, parent_error):
        assert tile["refine"] == "ADD" and tile["geometricError"] <= parent_error
        if "content" in tile:
            assert (tileset_dir / tile["content"]["uri"]).is_file()
        if not tile.get("children"):
            assert tile["geometricError"] == 0  # a leaf misses nothing
        errors.append(tile["geometricError"])
        for child in tile.get("children", []):
            walk(child, tile["geometricError"])

    walk(tileset["root"], tileset["geometricError"])
    assert max(errors) > 0


def test_each_building_is_one_feature_and_its_metadata_matches_postgis(glbs, conn):
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT fid, id, height, floors, use, street, community, grid FROM layers.buildings"
        ).fetchall()
    }
    seen = []
    for glb in glbs.values():
        table = glb.property_table()
        ids = glb.attribute("_FEATURE_ID_0")
        count = glb.json["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["count"]
        ext = glb.primitive["extensions"]["EXT_mesh_features"]["featureIds"][0]
        assert ext["featureCount"] == count and ext["propertyTable"] == 0
        assert set(np.unique(ids).astype(int)) == set(range(count))  # every feature has geometry
        for k in range(count):
            fid = table["fid"][k]
            bid, height, floors, use, street, community, grid = rows[fid]
            assert table["id"][k] == bid and table["use"][k] == use and table["floors"][k] == floors
            assert table["height"][k] == pytest.approx(height, abs=1e-3)
            assert (table["street"][k], table["community"][k], table["grid"][k]) == (street, community, grid)
            assert street and grid
            seen.append(fid)
    assert sorted(seen) == sorted(rows)  # each building exactly once


def test_vertices_lie_within_5_cm_of_their_footprint_and_height(glbs, tileset, conn):
    transforms = tile_transforms(tileset)
    db = {
        r[0]: (shapely.from_wkb(r[1]), r[2], r[3])
        for r in conn.execute(
            "SELECT fid, ST_AsBinary(geom), height, coalesce((to_jsonb(b) ->> 'base_height')::float8, 0) "
            "FROM layers.buildings b"
        ).fetchall()
    }
    checked = 0
    for uri, glb in glbs.items():
        fids = np.array(glb.property_table()["fid"])
        ecef = to_ecef(glb.attribute("POSITION"), transforms[uri])
        lon, lat, h = TO_LLH.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
        x, y = TO_METRIC.transform(lon, lat)
        feature = glb.attribute("_FEATURE_ID_0").astype(int)
        for k in np.unique(feature)[::7]:  # every 7th building of each tile
            footprint, height, base = db[int(fids[k])]  # base: the DEM's height under it (0 without a DEM)
            mask = feature == k
            outline = shapely.transform(
                footprint.boundary, lambda c: np.column_stack(TO_METRIC.transform(c[:, 0], c[:, 1]))
            )
            d = shapely.distance(shapely.points(x[mask], y[mask]), outline)
            assert d.max() < 0.05, f"fid {fids[k]}: a vertex {d.max():.3f} m off its footprint"
            hk = h[mask] - base
            assert np.minimum(np.abs(hk), np.abs(hk - height)).max() < 0.05  # on the ground or on the roof
            assert np.abs(hk - height).min() < 0.05 and np.abs(hk).min() < 0.05
            # every footprint corner is in the mesh
            corners = shapely.get_coordinates(outline)
            near = np.hypot(corners[:, None, 0] - x[mask][None], corners[:, None, 1] - y[mask][None]).min(axis=1)
            assert near.max() < 0.05
            checked += 1
    assert checked > 200


def test_flat_shading_and_outward_winding(glbs):
    for glb in list(glbs.values())[:3]:
        p = glb.attribute("POSITION").astype(np.float64)
        n = glb.attribute("NORMAL").astype(np.float64)
        tri = glb.indices().reshape(-1, 3)
        a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
        face = np.cross(b - a, c - a)
        area = np.linalg.norm(face, axis=1)
        assert area.min() > 1e-6  # no degenerate triangles
        face /= area[:, None]
        for corner in range(3):  # the three vertices of a face carry the face's own normal
            assert np.einsum("ij,ij->i", face, n[tri[:, corner]]).min() > 0.999


def _footprints(tmp_path: Path, heights, geoms) -> Path:
    path = tmp_path / "b.gpkg"
    gpd.GeoDataFrame({"id": [f"B{i}" for i in range(len(geoms))], "height": heights}, geometry=geoms, crs=4326).to_file(
        path
    )
    return path


def test_missing_heights_get_the_stated_default_and_are_counted(settings, conn, tmp_path):
    d = 0.0002
    geoms = [shapely.box(114.05 + i * 0.001, 22.54, 114.05 + i * 0.001 + d, 22.54 + d) for i in range(4)]
    path = _footprints(tmp_path, [30.0, None, -5.0, 12.0], geoms)
    out = run_cim(
        settings, "import", "buildings", str(path), "--name", "b_defaults", "--default-height", "7.5", check=True
    )
    assert "2 buildings had no usable height and got the default 7.5 m: record 2, record 3" in " ".join(
        out.stdout.split()
    )
    heights = [r[0] for r in conn.execute("SELECT height FROM layers.b_defaults ORDER BY fid").fetchall()]
    assert heights == [30.0, 7.5, 7.5, 12.0]


def test_an_unrepairable_footprint_is_skipped_and_named(settings, conn, tmp_path):
    d = 0.0002
    flat = shapely.Polygon([(114.06, 22.54), (114.061, 22.54), (114.062, 22.54), (114.06, 22.54)])  # no area
    geoms = [
        shapely.box(114.05, 22.54, 114.05 + d, 22.54 + d),
        flat,
        shapely.box(114.052, 22.54, 114.052 + d, 22.54 + d),
    ]
    path = _footprints(tmp_path, [10.0, 10.0, 10.0], geoms)
    out = run_cim(settings, "import", "buildings", str(path), "--name", "b_skip", check=True)
    assert "record 2: invalid geometry that cannot be repaired" in out.stdout
    assert conn.execute("SELECT count(*) FROM layers.b_skip").fetchone()[0] == 2


def test_a_failed_import_leaves_layer_and_tileset_as_they_were(settings, conn, tmp_path):
    d = 0.0002
    path = _footprints(tmp_path, [10.0], [shapely.box(114.05, 22.54, 114.05 + d, 22.54 + d)])
    run_cim(settings, "import", "buildings", str(path), "--name", "b_keep", check=True)
    before = (settings.tilesets_dir / "b_keep").resolve()
    points = tmp_path / "points.gpkg"
    gpd.GeoDataFrame({"h": [1.0]}, geometry=[shapely.Point(114.05, 22.54)], crs=4326).to_file(points)
    out = run_cim(settings, "import", "buildings", str(points), "--name", "b_keep", subprocess_=True)  # smoke test
    assert out.returncode != 0 and "buildings need polygon footprints" in out.stderr
    assert (settings.tilesets_dir / "b_keep").resolve() == before and (before / "tileset.json").is_file()
    assert conn.execute("SELECT version FROM cim.layers WHERE name = 'b_keep'").fetchone()[0] == 1
    leftovers = [p for p in (settings.tilesets_dir / ".versions").iterdir() if p.name.startswith("b_keep-")]
    assert leftovers == [before]


@pytest.fixture(scope="module")
def sparse_tileset_dir(settings, tileset_dir, db_url, tmp_path_factory) -> Path:
    """Buildings whose attributes are all empty in some tiles: a group in the
    sample's grids and one 20 km away, outside every grid (street, community,
    grid empty there, floors all missing), no name field, no use anywhere."""
    d = 0.0002
    inside = [shapely.box(114.05 + i * 0.001, 22.54, 114.05 + i * 0.001 + d, 22.54 + d) for i in range(3)]
    outside = [shapely.box(113.90 + i * 0.001, 22.70, 113.90 + i * 0.001 + d, 22.70 + d) for i in range(3)]
    with psycopg.connect(db_url, autocommit=True) as conn:  # what the test stands on
        for geom, in_grid in [(inside[0], True), (outside[0], False)]:
            sql = "SELECT count(*) FROM layers.grids WHERE ST_Intersects(geom, ST_GeomFromText(%s, 4326))"
            assert (conn.execute(sql, (geom.wkt,)).fetchone()[0] > 0) == in_grid
    path = tmp_path_factory.mktemp("sparse") / "sparse.gpkg"
    gpd.GeoDataFrame(
        {
            "id": [f"S{i}" for i in range(6)],
            "height": [12.0, 15.0, 18.0, 21.0, 24.0, 27.0],
            "floors": [4, 5, 6, None, None, None],
            "use": [None] * 6,
        },
        geometry=inside + outside,
        crs=4326,
    ).to_file(path)
    run_cim(settings, "import", "buildings", str(path), "--name", "b_sparse", check=True)
    return settings.tilesets_dir / "b_sparse"


def _no_value(glb: Glb, name: str) -> bool:
    """The tile has no value of ``name``: left out of its table, or every value its ``noData``."""
    table = glb.property_table()
    if name not in table:
        return True
    no_data = glb.metadata_class()[name].get("noData")
    return no_data is not None and all(v == no_data for v in table[name])


def test_a_property_without_values_in_a_tile_is_left_out_of_its_table(sparse_tileset_dir, glbs):
    tileset = json.loads((sparse_tileset_dir / "tileset.json").read_text())
    tiles = {uri: Glb.read(sparse_tileset_dir / uri) for uri in tile_transforms(tileset)}
    assert len(tiles) >= 2  # 20 km apart: the two groups are in different tiles
    in_grids = outside = 0
    for uri, glb in {**tiles, **glbs}.items():
        assert glb.property_table_problems() == [], uri
    for glb in tiles.values():
        table, cls = glb.property_table(), glb.metadata_class()
        assert {"fid", "id", "height", "floors", "use", "street", "community", "grid"} <= set(cls)
        assert "name" not in cls  # the source has no name field
        assert not any(d.get("required") for d in cls.values())  # a property may be absent from a table
        assert _no_value(glb, "use")
        ids = table["id"]
        if all(i in ("S0", "S1", "S2") for i in ids):
            assert all(table["street"]) and all(table["community"]) and all(table["grid"])
            assert dict(zip(ids, table["floors"])) == {i: {"S0": 4, "S1": 5, "S2": 6}[i] for i in ids}
            in_grids += 1
        else:
            assert set(ids) <= {"S3", "S4", "S5"}
            for name in ("street", "community", "grid", "floors"):
                assert _no_value(glb, name), name
            outside += 1
    assert in_grids >= 1 and outside >= 1


def test_tilesets_pass_the_cesium_3d_tiles_validator(tileset_dir, sparse_tileset_dir):
    assert_valid_3dtiles(tileset_dir / "tileset.json")
    assert_valid_3dtiles(sparse_tileset_dir / "tileset.json")


@pytest.mark.browser
def test_cesiumjs_loads_the_tileset_in_headless_chromium(tileset_dir, conn):
    from tests.browser import load_in_cesium

    report = load_in_cesium(tileset_dir)
    result = report["result"]
    assert report.get("error") is None and result["error"] is None, report
    assert result["failed"] == [] and report["pageErrors"] == [] and report["consoleErrors"] == [], report
    assert report["foreignRequests"] == []  # nothing leaves the machine
    assert result["loaded"] >= 1 and result["features"] > 100
    sample = result["sample"]
    row = conn.execute("SELECT id, height, street FROM layers.buildings WHERE fid = %s", (sample["fid"],)).fetchone()
    assert (sample["id"], sample["street"]) == (row[0], row[2])
    assert sample["height"] == pytest.approx(row[1], abs=1e-3)
