"""City components (城市部件): `cim import components` -> a PostGIS layer and an
instanced 3D Tiles tileset. Every instance traced back through its tile
transform and instancing attributes stands within 5 cm of its point with its
heading; instances = rows = input points; the validator passes; CesiumJS
reads an instance's properties; bad input is named and leaves the previous
version; the file (一物一档) and counts routes answer with numbers."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from cim.components.catalogue import CLASSES, MAJORS
from cim.demo import SAMPLE_DIR
from tests.gltf_read import Y_UP_TO_Z_UP, Glb, tile_transforms
from tests.validator import assert_valid_3dtiles

SOURCE = SAMPLE_DIR / "components.gpkg"
MODELS = SAMPLE_DIR / "component_models"
_TO_LLH = pyproj.Transformer.from_crs(4978, 4979, always_xy=True)
_GEOD = pyproj.Geod(ellps="WGS84")


def _quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector v by unit quaternions q (n, 4: x y z w)."""
    u, w = q[:, :3], q[:, 3:4]
    t = 2 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def instances_of(folder: Path) -> dict[str, np.ndarray]:
    """Every instance of the tileset in ``folder``: fid, lon, lat, h, heading (from its
    rotation: the model's front, glTF -z, turned to ECEF, measured against the local north)."""
    tileset = json.loads((folder / "tileset.json").read_text())
    out: dict[str, list] = {"fid": [], "id": [], "class_code": [], "ecef": [], "front": []}
    for uri, transform in tile_transforms(tileset, folder).items():
        glb = Glb.read(folder / uri)
        table = glb.property_table()
        m = transform @ Y_UP_TO_Z_UP
        for node in glb.json["nodes"]:
            attrs = node["extensions"]["EXT_mesh_gpu_instancing"]["attributes"]
            t = glb.accessor(attrs["TRANSLATION"]).astype(np.float64)
            q = glb.accessor(attrs["ROTATION"]).astype(np.float64)
            ids = glb.accessor(attrs["_FEATURE_ID_0"]).astype(int)
            out["ecef"].append((np.column_stack([t, np.ones(len(t))]) @ m.T)[:, :3])
            out["front"].append(_quat_rotate(q, np.tile([0.0, 0.0, -1.0], (len(q), 1))) @ m[:3, :3].T)
            for key in ("fid", "id", "class_code"):
                out[key] += [table[key][i] for i in ids]
    ecef, front = np.vstack(out.pop("ecef")), np.vstack(out.pop("front"))
    lon, lat, h = _TO_LLH.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    lam, phi = np.radians(lon), np.radians(lat)
    east = np.column_stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)])
    north = np.column_stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)])
    out |= {"lon": lon, "lat": lat, "h": h}
    out["heading"] = np.degrees(np.arctan2((front * east).sum(1), (front * north).sum(1))) % 360
    return {k: np.array(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def components(sample, settings):
    """The sample's components as `cim demo` imports them (the session's sample)."""
    assert "components" in sample, "the sample import has no components layer"
    return settings.tilesets_dir / "components"


def test_every_instance_stands_on_its_point_with_its_heading(components, conn):
    found = instances_of(components)
    source = gpd.read_file(SOURCE)
    rows = conn.execute(
        "SELECT fid, id, class_code, ST_X(geom), ST_Y(geom), heading FROM layers.components ORDER BY fid"
    ).fetchall()
    assert len(found["fid"]) == len(rows) == len(source) == 10_000  # instances = rows = input points
    assert len(set(found["fid"].tolist())) == len(rows)  # each once
    by_fid = {r[0]: r for r in rows}
    expected = np.array([by_fid[f] for f in found["fid"]], dtype=object)
    assert found["id"].tolist() == expected[:, 1].tolist()
    assert found["class_code"].tolist() == expected[:, 2].tolist()
    _, _, dist = _GEOD.inv(found["lon"], found["lat"], expected[:, 3].astype(float), expected[:, 4].astype(float))
    assert dist.max() < 0.05, f"an instance stands {dist.max():.3f} m from its point"
    assert np.abs(found["h"]).max() < 0.05  # at ellipsoidal height 0 (no height field)
    turn = (found["heading"] - expected[:, 5].astype(float) + 180) % 360 - 180
    assert np.abs(turn).max() < 0.1, f"an instance is turned {np.abs(turn).max():.3f}° from its heading"
    # and the rows are the source's points, heading included
    src = source.set_index("id")
    src_xy = shapely.get_coordinates(src.loc[expected[:, 1], "geometry"].to_numpy())
    assert np.abs(src_xy - expected[:, 3:5].astype(float)).max() < 1e-9
    assert np.abs(src.loc[expected[:, 1], "heading"].to_numpy() - expected[:, 5].astype(float)).max() < 0.01


def test_tileset_layout_groups_and_metadata(components):
    tileset = json.loads((components / "tileset.json").read_text())
    groups = {c["content"]["uri"] for c in tileset["root"]["children"]}
    assert groups == {f"groups/{m.code}/tileset.json" for m in MAJORS}  # one external tileset per 大类
    assert tileset["asset"]["version"] == "1.1" and tileset["asset"]["extras"]["instances"] == 10_000
    glb = Glb.read(next(components.glob("groups/*/tiles/*.glb")))
    assert "EXT_mesh_gpu_instancing" in glb.json["extensionsRequired"]
    assert {"EXT_instance_features", "EXT_structural_metadata"} <= set(glb.json["extensionsUsed"])
    assert glb.property_table_problems() == []
    assert {"fid", "id", "class_code", "class_name", "status", "grid"} <= set(glb.property_table())
    # interior tiles carry no content: far away the client draws the points
    group = json.loads((components / "groups" / "01" / "tileset.json").read_text())
    assert "content" not in group["root"] or group["root"]["geometricError"] > 0


def test_the_component_tileset_passes_the_3d_tiles_validator(components):
    assert_valid_3dtiles(components / "tileset.json")


@pytest.fixture(scope="module")
def small_site(settings, tmp_path_factory):
    """40 components of four classes in a 60 m square, with headings and scales,
    one class from a model file (an OBJ in centimetres), imported as `site_components`."""
    from tests.conftest import run_cim

    folder = tmp_path_factory.mktemp("site")
    rng = np.random.default_rng(7)
    codes = np.array([CLASSES[0].code, CLASSES[20].code, CLASSES[50].code, CLASSES[80].code])
    n = 40
    frame = gpd.GeoDataFrame(
        {
            "id": [f"S{i:03d}" for i in range(n)],
            "bjdm": codes[np.arange(n) % 4],
            "heading": np.round(rng.uniform(0, 360, n), 1),
            "size": np.where(np.arange(n) % 5 == 0, 2.0, 1.0),
            "elev": np.full(n, 5.0),
        },
        geometry=gpd.points_from_xy(114.0550 + rng.uniform(0, 6e-4, n), 22.5400 + rng.uniform(0, 5e-4, n)),
        crs=4326,
    )
    path = folder / "site.geojson"
    frame.to_file(path)
    models = folder / "models"
    models.mkdir()
    (models / f"{codes[1]}.obj").write_text(
        "v -50 0 -50\nv 50 0 -50\nv 50 0 50\nv -50 0 50\nv 0 300 0\n"  # a pyramid 1 m wide, 3 m tall (cm, y up)
        "f 1 2 5\nf 2 3 5\nf 3 4 5\nf 4 1 5\nf 1 4 3\nf 1 3 2\n"
    )
    result = run_cim(
        settings, "import", "components", str(path), "--name", "site_components", "--models", str(models),
        "--scale-field", "size", "--height-field", "elev", check=True,
    )  # fmt: skip
    return {"path": path, "frame": frame, "folder": settings.tilesets_dir / "site_components", "out": result.stdout}


def test_a_small_import_with_scales_heights_and_a_model_file(small_site, conn):
    found = instances_of(small_site["folder"])
    frame = small_site["frame"].set_index("id")
    src = frame.loc[found["id"]]
    _, _, dist = _GEOD.inv(found["lon"], found["lat"], src.geometry.x.to_numpy(), src.geometry.y.to_numpy())
    assert len(found["id"]) == 40 and dist.max() < 0.05
    assert np.abs(found["h"] - 5.0).max() < 0.05  # the height field
    turn = (found["heading"] - src["heading"].to_numpy() + 180) % 360 - 180
    assert np.abs(turn).max() < 0.1
    assert "from" in small_site["out"] and "pyramid" not in small_site["out"]
    # the OBJ's class is drawn with the file's model: 1 m wide, 3 m tall after the centimetre rule
    code = small_site["frame"]["bjdm"].iloc[1]
    for glb_path in small_site["folder"].glob("groups/*/tiles/*.glb"):
        glb = Glb.read(glb_path)
        table = glb.property_table()
        for node in glb.json["nodes"]:
            ids = glb.accessor(node["extensions"]["EXT_mesh_gpu_instancing"]["attributes"]["_FEATURE_ID_0"])
            if table["class_code"][int(ids[0])] != code:
                continue
            prim = glb.json["meshes"][node["mesh"]]["primitives"][0]
            pos = glb.accessor(prim["attributes"]["POSITION"])
            assert np.allclose(np.ptp(pos, axis=0), [1.0, 3.0, 1.0], atol=1e-3)
    scaled = conn.execute("SELECT count(*) FROM layers.site_components WHERE size = 2").fetchone()[0]
    assert scaled == 8


@pytest.mark.browser
def test_cesiumjs_loads_the_instanced_tileset_and_reads_an_instance(small_site):
    from tests.browser import load_in_cesium

    report = load_in_cesium(small_site["folder"])
    result = report["result"]
    assert result["error"] is None and result["failed"] == [] and report["consoleErrors"] == [], report
    assert report["foreignRequests"] == []
    assert result["features"] == 40
    assert result["sample"]["id"] in set(small_site["frame"]["id"]) and result["sample"]["fid"] >= 1


def test_the_small_tileset_passes_the_validator(small_site):
    assert_valid_3dtiles(small_site["folder"] / "tileset.json")


def _points(tmp_path: Path, codes: list, name: str = "bad.geojson", geometry=None) -> Path:
    n = len(codes)
    frame = gpd.GeoDataFrame(
        {"id": [f"B{i}" for i in range(n)], "class_code": codes},
        geometry=geometry if geometry is not None else gpd.points_from_xy(114.06 + np.arange(n) * 1e-4, [22.54] * n),
        crs=4326,
    )
    path = tmp_path / name
    frame.to_file(path)
    return path


def test_unknown_classes_are_named_or_unclassified(settings, conn, tmp_path):
    from tests.conftest import run_cim

    codes = [CLASSES[0].code, "0999", CLASSES[1].code, "0999", "abc", CLASSES[1].name_zh]
    path = _points(tmp_path, codes)
    out = run_cim(settings, "import", "components", str(path), "--name", "odd_components", check=True)
    text = out.stdout.replace("\n", " ")
    assert "3 components of unknown classes left out" in text and "'0999' (2)" in text and "'abc' (1)" in text
    rows = conn.execute("SELECT class_code FROM layers.odd_components ORDER BY fid").fetchall()
    assert [r[0] for r in rows] == [CLASSES[0].code, CLASSES[1].code, CLASSES[1].code]  # a name is read as its code
    run_cim(settings, "import", "components", str(path), "--name", "odd_components", "--unclassified", check=True)
    rows = conn.execute("SELECT class_code, count(*) FROM layers.odd_components GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("0000", 3), (CLASSES[0].code, 1), (CLASSES[1].code, 2)]


def test_bad_input_fails_in_one_line_and_keeps_the_previous_version(settings, conn, tmp_path, small_site):
    from tests.conftest import run_cim

    before = (
        conn.execute("SELECT version FROM cim.layers WHERE name = 'site_components'").fetchone()[0],
        (small_site["folder"]).resolve(),
    )
    models = tmp_path / "models"
    models.mkdir()
    (models / f"{CLASSES[0].code}.glb").write_bytes(b"glTF\x02\x00\x00\x00" + b"\x00" * 10)  # truncated
    polygons = _points(
        tmp_path, [CLASSES[0].code], "polygons.geojson", geometry=[shapely.box(114.06, 22.54, 114.061, 22.541)]
    )
    all_unknown = _points(tmp_path, ["0999", "0998"], "unknown.geojson")
    for args, problem in (
        ([str(small_site["path"]), "--models", str(models)], f"{CLASSES[0].code}.glb"),
        ([str(polygons)], "components are points"),
        ([str(all_unknown)], "no component has a known class"),
        ([str(small_site["path"]), "--class-field", "nope"], "has no class field 'nope'"),
    ):
        out = run_cim(settings, "import", "components", *args, "--name", "site_components")
        assert out.returncode != 0, args
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        assert problem in lines[0], out.stderr
    after = (
        conn.execute("SELECT version FROM cim.layers WHERE name = 'site_components'").fetchone()[0],
        (small_site["folder"]).resolve(),
    )
    assert after == before


def test_a_point_without_geometry_is_skipped_and_named(settings, conn, tmp_path):
    from tests.conftest import run_cim

    path = tmp_path / "holes.geojson"
    features = [
        {"type": "Feature", "properties": {"id": "H1", "class_code": CLASSES[0].code},
         "geometry": {"type": "Point", "coordinates": [114.06, 22.54]}},
        {"type": "Feature", "properties": {"id": "H2", "class_code": CLASSES[0].code}, "geometry": None},
        {"type": "Feature", "properties": {"id": "H3", "class_code": CLASSES[2].code},
         "geometry": {"type": "Point", "coordinates": [114.0601, 22.54]}},
    ]  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    out = run_cim(settings, "import", "components", str(path), "--name", "hole_components", check=True)
    assert "record 2: no geometry" in out.stdout
    assert conn.execute("SELECT count(*) FROM layers.hole_components").fetchone()[0] == 2


def test_routes_list_classes_count_and_open_a_file(http, sample, conn):
    layers = http.get("/components").json()["layers"]
    entry = next(x for x in layers if x["name"] == "components")
    assert entry["count"] == 10_000 and sum(m["count"] for m in entry["majors"]) == 10_000
    assert {m["code"] for m in entry["majors"]} == {m.code for m in MAJORS}
    classes = http.get("/components/classes").json()
    assert len([c for c in classes["classes"] if c["builtin"]]) == 103 and len(classes["majors"]) >= 6
    by_class = http.get("/components/components/counts", params={"level": "class"}).json()
    db = dict(conn.execute("SELECT class_code, count(*) FROM layers.components GROUP BY 1").fetchall())
    assert {c["code"]: c["count"] for c in by_class["counts"]} == db and by_class["total"] == 10_000
    streets = http.get("/components/components/counts", params={"level": "street"}).json()
    assert sum(a["total"] for a in streets["areas"]) == 10_000 and len(streets["areas"]) >= 10
    assert http.get("/components/components/counts", params={"level": "nope"}).status_code == 422
    # a component a sensor is linked to: the sensor is in its file, at 0 m
    cid, sid = conn.execute(
        "SELECT component_id, id FROM layers.sensors WHERE component_id IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()
    file = http.get(f"/components/components/{cid}").json()
    assert file["id"] == cid and file["class"]["code"] == cid[6:10]
    sensor = next(s for s in file["sensors"] if s["id"] == sid)
    assert sensor["linked"] is True and sensor["distance_m"] < 0.05
    assert all(s["distance_m"] <= file["radius_m"] or s["linked"] for s in file["sensors"])
    assert file["street"] and file["grid"]
    # a ticket about a component: in its file, with its history
    tid, tcid = conn.execute(
        "SELECT id, component_id FROM layers.tickets WHERE component_id IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()
    file = http.get(f"/components/components/{tcid}").json()
    ticket = next(t for t in file["tickets"] if t["id"] == tid)
    assert ticket["linked"] is True and ticket["history"][0]["stage"] == "created"
    missing = http.get("/components/components/4403049999999999")
    assert missing.status_code == 404 and "no component" in missing.json()["detail"]
    assert http.get("/components/parcels/1").status_code == 404  # not a component layer


def test_a_file_without_links_lists_what_stands_near(conn, sample):
    """Sensors and tickets layers without a component_id column: only nearby rows, and no error."""
    import dataclasses

    from cim.live.store import ensure_live_schema
    from layers.catalogue import get_layer
    from layers.components.queries import sensors_query, tickets_query

    layers = {name: get_layer(conn, name) for name in ("sensors", "tickets")}
    unlinked = {
        name: dataclasses.replace(
            layers[name], columns={c: t for c, t in layers[name].columns.items() if c != "component_id"}
        )
        for name in ("sensors", "tickets")
    }
    lon, lat, sid = conn.execute("SELECT ST_X(geom), ST_Y(geom), id FROM layers.sensors ORDER BY id LIMIT 1").fetchone()
    params = {"id": "nothing", "lon": lon, "lat": lat}
    ensure_live_schema(conn)  # as the server's hub does: the live tables are read where they are
    conn.commit()
    for live in (False, True):
        rows = [r[0] for r in conn.execute(sensors_query(unlinked["sensors"], 30.0, live), params).fetchall()]
        assert rows and rows[0]["id"] == sid and rows[0]["distance_m"] == 0 and not rows[0]["linked"]
        assert all(r["distance_m"] <= 30 for r in rows)
        conn.execute(tickets_query(unlinked["tickets"], 30.0, live, nearby=True), params).fetchall()
