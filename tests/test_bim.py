"""`cim import bim` with the sample IFC models (data_samples/ifc): counts agree
three ways, the placement matches the file's georeference in metres, the GLBs
validate, CesiumJS loads the tiles, and bad files fail cleanly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.geolocation
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pyproj
import pytest

from cim.geoid import undulation
from tests.conftest import DATA, run_cim
from tests.gltf_read import Glb, tile_transforms, to_ecef
from tests.test_buildings_tiles import validate
from tests.validator import assert_valid_3dtiles

IFC = DATA / "ifc"
MODELS = {  # layer name -> (file, extra options)
    "bim_fzk": ("AC20-FZK-Haus.ifc", []),
    "bim_duplex": ("duplex.ifc", []),
    "bim_openhouse": ("IfcOpenHouse_IFC4.ifc", ["--anchor", "114.0553,22.5333,0,30"]),
    "bim_gk": ("gk_map_conversion.ifc", []),  # made by tests/data/make_ifc.py
}
TO_ECEF = pyproj.Transformer.from_crs(4979, 4978, always_xy=True)
GEOD = pyproj.Geod(ellps="WGS84")


def iterator_count(path: Path) -> int:
    """The products ifcopenshell's own geometry iterator yields (the reference
    count), with the importer's one setting: openings left out."""
    from import_scripts.bim.reader import EXCLUDED_CLASSES

    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    model = ifcopenshell.open(str(path))  # must outlive the iterator, which does not hold it
    iterator = ifcopenshell.geom.iterator(settings, model, 1, exclude=list(EXCLUDED_CLASSES))
    n = 0
    if iterator.initialize():
        while True:
            n += 1
            if not iterator.next():
                break
    return n


@pytest.fixture(scope="module")
def imported(settings, sample) -> dict[str, Path]:
    out = {}
    for i, (name, (file, extra)) in enumerate(MODELS.items()):  # the first as the console script: its smoke test
        run_cim(settings, "import", "bim", str(IFC / file), "--name", name, *extra, check=True, subprocess_=i == 0)
        out[name] = (settings.tilesets_dir / name).resolve()
    return out


def _glbs(folder: Path) -> dict[str, Glb]:
    tileset = json.loads((folder / "tileset.json").read_text())
    return {uri: Glb.read(folder / uri) for uri in tile_transforms(tileset, folder)}


@pytest.mark.parametrize("name", list(MODELS))
def test_features_equal_rows_equal_iterator_products(imported, conn, name):
    expected = iterator_count(IFC / MODELS[name][0])
    rows = conn.execute(f"SELECT count(*), count(DISTINCT global_id) FROM layers.{name}").fetchone()
    fids = []
    for glb in _glbs(imported[name]).values():
        table = glb.property_table()
        fids += table["fid"]
        assert len(set(table["global_id"])) == len(table["global_id"])
    assert rows == (expected, expected)
    assert sorted(fids) == list(range(1, expected + 1))  # every element exactly once


@pytest.mark.parametrize("name", list(MODELS))
def test_every_bim_tileset_passes_the_3d_tiles_validator(imported, name):
    """The CesiumGS validator: tileset.json, the storeys' external tilesets, metadata and instancing."""
    assert_valid_3dtiles(imported[name] / "tileset.json")


def test_every_bim_glb_passes_the_khronos_validator(imported):
    files = [folder / uri for folder in imported.values() for uri in _glbs(folder)]
    reports = validate(files)
    assert len(reports) == len(files) >= 4
    assert all(r["errors"] == 0 and r["warnings"] == 0 for r in reports), [r for r in reports if r["errors"]]


def _gk_points() -> tuple[ifcopenshell.file, np.ndarray]:
    """The generated Gauss-Krüger model and every vertex of its elements' face sets
    in model metres, placed by their IfcLocalPlacement chains (read with
    ifcopenshell.util.placement, not the geometry iterator): the marker's first,
    so that point 0 is its apex."""
    model = ifcopenshell.open(str(IFC / MODELS["bim_gk"][0]))
    points = []
    for element in sorted(model.by_type("IfcElement"), key=lambda e: e.Name != "Geographic Position"):
        matrix = np.array(ifcopenshell.util.placement.get_local_placement(element.ObjectPlacement), dtype=float)
        for representation in element.Representation.Representations:
            for item in representation.Items:
                points.append(np.array(item.Coordinates.CoordList) @ matrix[:3, :3].T + matrix[:3, 3])
    return model, np.concatenate(points) * ifcopenshell.util.unit.calculate_unit_scale(model)


def _positions(glb: Glb) -> np.ndarray:
    """Every vertex of every primitive of a tile (one primitive per surface colour);
    none is an instance of shared geometry (checked), so these are all its vertices."""
    assert not any("EXT_mesh_gpu_instancing" in node.get("extensions", {}) for node in glb.json["nodes"])
    return np.concatenate(
        [glb.accessor(p["attributes"]["POSITION"]) for mesh in glb.json["meshes"] for p in mesh["primitives"]]
    )


def test_map_conversion_placement_within_5_cm(imported):
    """gk: every vertex of every element, put through the file's IfcMapConversion
    (metres, Scale read as a unit conversion) and EPSG:31467, has a tile vertex
    within 5 cm, and every tile vertex has such a vertex within 5 cm."""
    from import_scripts.bim.georef import from_map_conversion

    model, points = _gk_points()
    conversion = model.by_type("IfcMapConversion")[0]
    # the file is in millimetres and its Scale is that unit factor upside down (as in the bSI 4.3 sample): said so
    assert ifcopenshell.util.unit.calculate_unit_scale(model) == 0.001 and conversion.Scale == 1000
    notes = from_map_conversion(model, "gk").notes
    assert notes == [
        "IfcMapConversion.Scale 1000 is the inverse of the model-to-map unit factor 0.001; used as a unit conversion"
    ]
    assert len(points) > 60 and not points[0].any()  # point 0: the marker's apex, at the model's origin
    e, n, h = zip(
        *(
            ifcopenshell.util.geolocation.xyz2enh(
                x,
                y,
                z,
                conversion.Eastings,
                conversion.Northings,
                conversion.OrthogonalHeight,
                conversion.XAxisAbscissa,
                conversion.XAxisOrdinate,
                1.0,
            )
            for x, y, z in points
        )
    )
    lon, lat = pyproj.Transformer.from_crs(31467, 4326, always_xy=True).transform(np.array(e), np.array(n))
    # OrthogonalHeight is orthometric (the default): raised by the geoid's N at the model's origin
    origin = pyproj.Transformer.from_crs(31467, 4326, always_xy=True).transform(
        conversion.Eastings, conversion.Northings
    )
    expected = np.column_stack(TO_ECEF.transform(lon, lat, np.array(h) + undulation(*origin)[0]))
    tileset = json.loads((imported["bim_gk"] / "tileset.json").read_text())
    got = np.concatenate(
        [
            to_ecef(_positions(glb), tile_transforms(tileset, imported["bim_gk"])[uri])
            for uri, glb in _glbs(imported["bim_gk"]).items()
        ]
    )
    d = np.linalg.norm(expected[:, None, :] - got[None, :, :], axis=2)
    assert d.min(axis=1).max() < 0.05 and d.min(axis=0).max() < 0.05
    # the apex stands on the conversion's origin, 113.7 m up
    assert math.hypot(lon[0] - 8.4337, lat[0] - 49.0955) < 0.001 and h[0] == pytest.approx(113.7)


def test_the_gk_model_is_what_its_generator_makes():
    """data_samples/ifc/gk_map_conversion.ifc is tests/data/make_ifc.py's output
    (compared entity by entity, as this ifcopenshell prints them)."""
    from tests.data.make_ifc import OUT, build

    assert IFC / MODELS["bim_gk"][0] == OUT
    assert sorted(map(str, ifcopenshell.open(str(OUT)))) == sorted(map(str, build()))


def test_fzk_haus_lands_at_its_site_latitude_and_longitude(imported, conn):
    site = ifcopenshell.open(str(IFC / MODELS["bim_fzk"][0])).by_type("IfcSite")[0]
    lat = ifcopenshell.util.geolocation.dms2dd(*site.RefLatitude)
    lon = ifcopenshell.util.geolocation.dms2dd(*site.RefLongitude)
    x, y = conn.execute(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c FROM layers.bim_fzk_outline) q "
    ).fetchone()
    assert GEOD.inv(lon, lat, x, y)[2] < 25  # the house (about 12 x 10 m, terrain around it) is at the site point
    walls = conn.execute(
        "SELECT count(*), min(z_min), max(z_max) FROM layers.bim_fzk WHERE ifc_class LIKE 'IfcWall%%'"
    ).fetchone()
    # on RefElevation 110 m (orthometric), two storeys; made ellipsoidal with the geoid (N about +48 m there)
    n = float(undulation(lon, lat)[0])
    assert 45 < n < 50
    assert walls[0] > 10 and 108 + n < walls[1] < 112 + n and walls[2] - walls[1] > 5


def test_anchor_places_a_model_without_georeference(imported, conn):
    x, y = conn.execute(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c FROM layers.bim_openhouse_outline) q"
    ).fetchone()
    assert GEOD.inv(114.0553, 22.5333, x, y)[2] < 20
    placed = conn.execute("SELECT count(*) FROM layers.bim_openhouse WHERE grid IS NOT NULL").fetchone()[0]
    assert placed > 0  # on a Futian parcel, it is placed in its grid


def test_element_rows_carry_storey_class_and_properties(imported, conn):
    rows = conn.execute("SELECT storey, ifc_class, properties FROM layers.bim_duplex").fetchall()
    storeys = {r[0] for r in rows}
    assert {"Level 1", "Level 2"} <= storeys
    assert any(r[1] == "IfcDoor" for r in rows)
    with_psets = [r for r in rows if r[2]]
    assert len(with_psets) > 100 and isinstance(with_psets[0][2], dict)
    tileset = json.loads((imported["bim_duplex"] / "tileset.json").read_text())
    storeys = {t["extras"]["storey"] for t in tileset["root"]["children"]}
    assert storeys >= {"Level 1", "Level 2"}  # one external tileset per storey, listed in the extras too
    assert [s["name"] for s in tileset["asset"]["extras"]["storeys"]] == [
        t["extras"]["storey"] for t in tileset["root"]["children"]
    ]


@pytest.mark.browser
def test_cesiumjs_loads_a_bim_tileset(imported):
    from tests.browser import load_in_cesium

    report = load_in_cesium(imported["bim_duplex"])
    result = report["result"]
    assert result["error"] is None and result["failed"] == [] and report["consoleErrors"] == [], report
    assert report["foreignRequests"] == [] and result["features"] == iterator_count(IFC / "duplex.ifc")


def test_bad_ifc_files_fail_cleanly_and_keep_the_previous_version(settings, imported, conn, tmp_path):
    before = (
        conn.execute("SELECT version FROM cim.layers WHERE name = 'bim_gk'").fetchone()[0],
        (settings.tilesets_dir / "bim_gk").resolve(),
    )
    text = (IFC / MODELS["bim_gk"][0]).read_text()
    truncated = tmp_path / "truncated.ifc"
    truncated.write_text(text[: len(text) // 2])
    unknown = tmp_path / "unknown.ifc"
    unknown.write_text(text.replace("IFC4X3_ADD2", "IFC9_TOMORROW"))
    empty = tmp_path / "empty.ifc"
    model = ifcopenshell.open(str(IFC / MODELS["bim_gk"][0]))
    for element in model.by_type("IfcElement"):  # every element gone; the project, site and storeys stay
        model.remove(element)
    model.write(str(empty))
    for path, problem in (
        (truncated, "is truncated"),
        (unknown, "is not a readable IFC file"),
        (empty, "holds no element with geometry"),
    ):
        out = run_cim(settings, "import", "bim", str(path), "--name", "bim_gk")
        assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert path.name in out.stderr and problem in out.stderr, out.stderr
    after = (
        conn.execute("SELECT version FROM cim.layers WHERE name = 'bim_gk'").fetchone()[0],
        (settings.tilesets_dir / "bim_gk").resolve(),
    )
    assert after == before


def test_an_element_whose_geometry_fails_is_skipped_and_named(settings, conn, tmp_path):
    gk = IFC / MODELS["bim_gk"][0]
    model = ifcopenshell.open(str(gk))
    ground = next(s for s in model.by_type("IfcBuildingStorey") if s.Name == "Ground floor")
    body = next(c for c in model.by_type("IfcGeometricRepresentationSubContext") if c.ContextIdentifier == "Body")
    broken_faces = model.createIfcTriangulatedFaceSet(
        Coordinates=model.createIfcCartesianPointList3D(
            CoordList=((0.0, 0.0, 0.0), (1000.0, 0.0, 0.0), (0.0, 1000.0, 0.0))
        ),
        Closed=True,
        CoordIndex=((1, 2, 99),),  # a vertex that is not there
    )
    broken = model.createIfcBuildingElementProxy(
        GlobalId="1BrokenGeometry000000",
        Name="Broken",
        ObjectPlacement=model.createIfcLocalPlacement(
            PlacementRelTo=ground.ObjectPlacement,
            RelativePlacement=model.createIfcAxis2Placement3D(Location=model.createIfcCartesianPoint((0.0, 0.0, 0.0))),
        ),
        Representation=model.createIfcProductDefinitionShape(
            Representations=[model.createIfcShapeRepresentation(body, "Body", "Tessellation", [broken_faces])]
        ),
    )
    containment = ground.ContainsElements[0]
    containment.RelatedElements = [*containment.RelatedElements, broken]
    path = tmp_path / "broken.ifc"
    model.write(str(path))
    out = run_cim(settings, "import", "bim", str(path), "--name", "bim_broken", check=True)
    flat = " ".join(out.stdout.split())
    assert "1 elements failed to triangulate and were skipped: IfcBuildingElementProxy 1BrokenGeometry000000" in flat
    rows = [r[0] for r in conn.execute("SELECT global_id FROM layers.bim_broken").fetchall()]
    # every other element, and only those
    assert len(rows) == iterator_count(gk) and "1BrokenGeometry000000" not in rows


def test_bim_api_lists_storeys_and_classes_and_finds_elements(imported, http, conn):
    models = {m["name"]: m for m in http.get("/bim").json()}
    assert set(MODELS) <= set(models)
    info = http.get("/bim/bim_duplex").json()
    storeys = dict(
        conn.execute("SELECT coalesce(storey, '(无楼层)'), count(*) FROM layers.bim_duplex GROUP BY 1").fetchall()
    )
    assert {s["name"]: s["elements"] for s in info["storeys"]} == storeys
    assert all(s["tileset"] and s["tileset"].startswith("/tilesets/bim_duplex/storeys/") for s in info["storeys"])
    assert http.get(info["storeys"][0]["tileset"]).json()["asset"]["version"] == "1.1"  # each storey loads alone
    classes = {c["ifc_class"]: c["elements"] for c in info["classes"]}
    assert (
        classes["IfcDoor"]
        == conn.execute("SELECT count(*) FROM layers.bim_duplex WHERE ifc_class = 'IfcDoor'").fetchone()[0]
    )
    assert "IfcOpeningElement" not in classes  # voids are not drawn
    door_gid = conn.execute("SELECT global_id FROM layers.bim_duplex WHERE ifc_class = 'IfcDoor' LIMIT 1").fetchone()[0]
    exact = http.get("/bim/bim_duplex/search", params={"q": door_gid}).json()
    assert exact[0]["global_id"] == door_gid and exact[0]["ifc_class"] == "IfcDoor"
    by_name = http.get("/bim/bim_duplex/search", params={"q": "door", "limit": 50}).json()
    assert by_name and all("door" in ((r["name"] or "") + r["ifc_class"]).lower() for r in by_name)
    assert http.get("/bim/streets").status_code == 404  # not an element layer
    assert http.get("/bim/bim_duplex/search", params={"q": "%_\\"}).json() == []  # LIKE wildcards are literal


@pytest.mark.browser
def test_viewer_hides_a_storey_and_flies_to_a_found_element(imported, server, conn):
    from tests.browser import browse

    door = conn.execute(
        "SELECT global_id, ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM layers.bim_duplex "
        "WHERE ifc_class = 'IfcDoor' ORDER BY fid LIMIT 1"
    ).fetchone()
    report = browse(
        f"{server}/viewer#view=-87.63935,41.87432,19,55,30&layers=bim_duplex",
        eval=f"""new Promise((done) => {{
        const model = document.querySelector('li[data-key="bim_duplex"]');
        const level2 = model.querySelector('.storeys li[data-storey="Level 2"] input');
        level2.click();
        const find = model.querySelector('.find');
        find.value = '{door[0]}';
        find.dispatchEvent(new Event('input'));
        setTimeout(() => {{
            model.querySelector('.results button').click();
            setTimeout(() => done({{
                visible: cimViewer.deck.props.layers.filter((l) => l.props.visible).map((l) => l.id),
                view: cimViewer.viewState, found: window.__cimResult.found, hash: location.hash,
                storeys: [...model.querySelectorAll('.storeys li')].map((li) => li.dataset.storey)}}), 2500);
        }}, 1500);
    }})""",
    )
    assert report["consoleErrors"] == [] and report["foreignRequests"] == []
    e = report["eval"]
    storeys = e["storeys"]
    hidden = f"tileset:bim_duplex:storey{storeys.index('Level 2')}"
    assert hidden not in e["visible"] and f"tileset:bim_duplex:storey{storeys.index('Level 1')}" in e["visible"]
    assert "hide=" in e["hash"] and "search-highlight" in e["visible"] and e["found"] == door[0]
    assert abs(e["view"]["longitude"] - door[1]) < 0.0005 and abs(e["view"]["latitude"] - door[2]) < 0.0005


def _rotation(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_repeated_geometry_is_instanced_and_lands_where_its_elements_are(imported, conn):
    """duplex repeats furniture, doors and windows: those become EXT_mesh_gpu_instancing
    instances (a feature each), and every instance, traced back to lon/lat/height,
    spans exactly its element's height range and footprint (1 cm)."""
    folder = imported["bim_duplex"]
    transforms = tile_transforms(json.loads((folder / "tileset.json").read_text()), folder)
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT fid, z_min, z_max, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) "
            "FROM layers.bim_duplex"
        )
    }
    to_llh = pyproj.Transformer.from_crs(4978, 4979, always_xy=True)
    instances, worst = 0, 0.0
    for uri, glb in _glbs(folder).items():
        fids = glb.property_table()["fid"]
        for node in glb.json["nodes"]:
            ext = node.get("extensions", {}).get("EXT_mesh_gpu_instancing")
            if not ext:
                continue
            assert node["extensions"]["EXT_instance_features"]["featureIds"][0]["propertyTable"] == 0
            mesh = glb.json["meshes"][node["mesh"]]["primitives"]
            local = np.concatenate([glb.accessor(p["attributes"]["POSITION"]) for p in mesh]).astype(float)
            attrs = ext["attributes"]
            for t, q, f in zip(
                glb.accessor(attrs["TRANSLATION"]),
                glb.accessor(attrs["ROTATION"]),
                glb.accessor(attrs["_FEATURE_ID_0"]),
            ):
                ecef = to_ecef(local @ _rotation(q.astype(float)).T + t, transforms[uri])
                lon, lat, h = to_llh.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
                z_min, z_max, west, south, east, north = rows[fids[int(f)]]
                metres = [
                    abs(h.min() - z_min),
                    abs(h.max() - z_max),
                    abs(lon.min() - west) * 83_000,
                    abs(lon.max() - east) * 83_000,
                    abs(lat.min() - south) * 111_000,
                    abs(lat.max() - north) * 111_000,
                ]
                worst = max(worst, *metres)
                instances += 1
    assert instances > 50 and worst < 0.01, (instances, worst)


def test_quaternions_of_half_turns_keep_their_signs():
    from tiles.bim import quaternion

    for axis in ((1, -1, 0), (0, 0, 1), (1, 0, 0), (0, 1, 1)):
        a = np.array(axis, float) / np.linalg.norm(axis)
        k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
        for angle in (math.pi, math.pi / 2, 0.3):
            r = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
            assert np.abs(_rotation(quaternion(r)) - r).max() < 1e-12


def test_feature_counts_per_primitive_and_spaces_keep_their_storey(imported, conn):
    for glb in _glbs(imported["bim_duplex"]).values():
        for mesh in glb.json["meshes"]:
            for prim in mesh["primitives"]:
                ext = prim.get("extensions", {}).get("EXT_mesh_features")
                if ext:
                    ids = glb.accessor(prim["attributes"]["_FEATURE_ID_0"])
                    assert ext["featureIds"][0]["featureCount"] == len(np.unique(ids))
    spaces = conn.execute(
        "SELECT count(*), count(storey) FROM layers.bim_duplex WHERE ifc_class = 'IfcSpace'"
    ).fetchone()
    assert spaces[0] > 10 and spaces[1] == spaces[0]  # aggregated by their storey, not contained
