"""`cim import oblique` with the sample ContextCapture production: the
pyramid is the production's (checked against osgconv's own reading), every
vertex lands within 1 cm of osgconv's OBJ output placed through the WKT's
parameters (not its lying AUTHORITY code), JPEGs are the file's own bytes
with the right UVs, the GLBs validate, CesiumJS loads the tileset, a killed
import resumes to the same result, and bad input fails cleanly."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psycopg
import pyproj
import pytest
from PIL import Image

from cim.geoid import undulation
from tests.conftest import CIM, DATA, cli_env, run_cim
from tests.gltf_read import Glb, tile_transforms, to_ecef
from tests.test_buildings_tiles import validate
from tests.validator import assert_valid_3dtiles

PRODUCTION = DATA / "oblique" / "Production_5_part"
FOLDERS = ["Tile_+000_+012", "Tile_+000_+013"]
SRS_ORIGIN = np.array([501027.524, 2488718.808, 0.0])
# the sample's WKT written as its parameters say (central meridian 113.37, false northing 90), independently of cim.crs
SAMPLE_TM = pyproj.CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=113.37 +k=1 +x_0=500000 +y_0=90 +ellps=GRS80 +units=m")
TO_ECEF = pyproj.Transformer.from_crs(SAMPLE_TM.geodetic_crs.to_3d(), "EPSG:4978", always_xy=True)
TM_TO_LONLAT = pyproj.Transformer.from_crs(SAMPLE_TM, SAMPLE_TM.geodetic_crs, always_xy=True)


def osgconv(source: Path, out: Path) -> Path:
    subprocess.run(["osgconv", str(source), str(out)], check=True, capture_output=True, timeout=120)
    return out


def sample_to_ecef(xyz: np.ndarray) -> np.ndarray:
    """The sample's vertices placed as metadata.xml says, heights made ellipsoidal by the geoid's N
    at the production's origin (its SRSOrigin heights are orthometric: the import's default)."""
    p = xyz + SRS_ORIGIN
    lon, lat = TM_TO_LONLAT.transform(p[:, 0], p[:, 1])
    lon0, lat0 = TM_TO_LONLAT.transform(SRS_ORIGIN[0], SRS_ORIGIN[1])
    return np.column_stack(TO_ECEF.transform(lon, lat, p[:, 2] + undulation(lon0, lat0)[0]))


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    text = path.read_text()
    v = np.array(re.findall(r"^v (\S+) (\S+) (\S+)", text, re.M), dtype=float)
    vt = np.array(re.findall(r"^vt (\S+) (\S+)", text, re.M), dtype=float)
    return v, vt


def pyramid(folder: Path, tmp: Path) -> tuple[int, int, list[str]]:
    """The production's own pyramid, read by osgconv: (levels of existing
    files from the root down, tiles it makes, child files named but absent)."""
    levels, nodes, absent = 0, 0, []
    frontier, depth = [f"{folder.name}.osgb"], 0
    while frontier:
        depth += 1
        nxt = []
        for name in frontier:
            if not (folder / name).exists():
                absent.append(name)
                continue
            levels = depth
            text = osgconv(folder / name, tmp / (name + ".osgt")).read_text()
            # a tile per PagedLOD node; a file of plain geometry (one L19 file of the sample) is one tile
            nodes += text.count("osg::PagedLOD {") or int("osg::Geometry {" in text)
            nxt += re.findall(r'^\s*"([^"]+\.osgb)"\s*$', text, re.M)
        frontier = nxt
    return levels, nodes, absent


@pytest.fixture(scope="module")
def imported(settings, sample) -> dict:
    result = run_cim(
        settings, "import", "oblique", str(PRODUCTION), "--name", "oblique_sample", check=True, subprocess_=True
    )  # the console script's smoke test
    folder = (settings.tilesets_dir / "oblique_sample").resolve()
    tileset = json.loads((folder / "tileset.json").read_text())
    return {
        "folder": folder,
        "tileset": tileset,
        "out": " ".join(result.stdout.split()),
        "transforms": tile_transforms(tileset, folder),
    }


def test_the_sample_lands_near_113_38_e_22_50_n(imported, conn):
    kind, west, south, east, north = conn.execute(
        "SELECT kind, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM layers.oblique_sample "
        "WHERE kind = 'production'"
    ).fetchone()
    assert kind == "production"
    assert 113.375 < west < east < 113.385 and 22.50 < south < north < 22.51
    # a tool that trusted the AUTHORITY code (EPSG:4547, central meridian 114) would put it ~65 km east
    assert east < 113.5
    extras = imported["tileset"]["asset"]["extras"]
    assert extras["kind"] == "oblique" and extras["levels"] == 6


def test_the_pyramid_is_the_productions(imported, tmp_path):
    out = imported["out"]
    total_nodes, total_absent = 0, []
    for name in FOLDERS:
        levels, nodes, absent = pyramid(PRODUCTION / "Data" / name, tmp_path)
        total_nodes += nodes
        total_absent += absent
        sub = json.loads((imported["folder"] / "tiles" / name / "tileset.json").read_text())

        def depth(tile: dict) -> int:
            return (1 if "content" in tile else 0) + max((depth(c) for c in tile.get("children", [])), default=0)

        assert depth(sub["root"]) == levels == 6
        assert sub["root"]["refine"] == "REPLACE"
    assert len(imported["transforms"]) == total_nodes  # a tile per PagedLOD node
    assert f"{len(total_absent)} child tiles are named but absent" in out and len(total_absent) > 0


def test_geometric_errors_fall_to_zero_at_the_leaves(imported):
    folder = imported["folder"]

    def walk(tile: dict, parent: float) -> int:
        error = tile["geometricError"]
        assert error <= parent + 1e-9
        children = tile.get("children", [])
        if not children:
            assert error == 0
        return 1 + sum(walk(c, error) for c in children)

    for name in FOLDERS:
        sub = json.loads((folder / "tiles" / name / "tileset.json").read_text())
        assert sub["root"]["geometricError"] > 30  # the coarsest level: tens of metres
        assert walk(sub["root"], sub["geometricError"]) > 10


def _node_glb(imported, folder: str, stem: str) -> tuple[Glb, np.ndarray]:
    uri = f"tiles/{folder}/{stem}_0.glb"
    return Glb.read(imported["folder"] / uri), imported["transforms"][uri]


@pytest.mark.parametrize(
    "folder,stem", [("Tile_+000_+013", "Tile_+000_+013_L17_0uuu"), ("Tile_+000_+012", "Tile_+000_+012")]
)
def test_vertices_match_osgconv_plus_srs_origin_within_1_cm(imported, tmp_path, folder, stem):
    obj, obj_uv = read_obj(osgconv(PRODUCTION / "Data" / folder / f"{stem}.osgb", tmp_path / "t.obj"))
    glb, transform = _node_glb(imported, folder, stem)
    ours = to_ecef(glb.attribute("POSITION"), transform)
    expected = sample_to_ecef(obj)
    assert ours.shape == expected.shape and len(ours) > 1000
    error = np.linalg.norm(ours - expected, axis=1)
    assert error.max() < 0.01, f"worst vertex off by {error.max():.4f} m"
    # texture coordinates: glTF's v runs down the image, OpenGL's t up
    uv = glb.attribute("TEXCOORD_0")
    assert np.allclose(uv[:, 0], obj_uv[:, 0], atol=1e-6) and np.allclose(uv[:, 1], 1 - obj_uv[:, 1], atol=1e-6)


def test_jpegs_are_the_files_own_bytes_and_uvs_pick_the_same_colours(imported, tmp_path):
    folder, stem = "Tile_+000_+013", "Tile_+000_+013_L15_0u"
    glb, _ = _node_glb(imported, folder, stem)
    image = glb.json["images"][0]
    assert image["mimeType"] == "image/jpeg"
    jpeg = glb.view(image["bufferView"])
    assert jpeg in (PRODUCTION / "Data" / folder / f"{stem}.osgb").read_bytes()  # passed through, not re-encoded
    # osgconv's own decoding of that texture (raw pixels in .osgt, bottom row first) against ours at the same UVs
    text = osgconv(PRODUCTION / "Data" / folder / f"{stem}.osgb", tmp_path / "t.osgt").read_text()
    w, h = map(int, re.search(r"Size (\d+) (\d+) 1", text).groups())
    data = re.search(r'Data 1 \{\s*"([^"]+)"', text).group(1)
    osg_pixels = np.frombuffer(base64.b64decode(re.sub(r"\s", "", data)), np.uint8)[: w * h * 3].reshape(h, w, 3)
    ours = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    assert ours.shape == (h, w, 3)
    uv = glb.attribute("TEXCOORD_0")[::50]
    cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    rows_gltf = np.clip((uv[:, 1] * h).astype(int), 0, h - 1)
    rows_osg = np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1)  # OpenGL: row 0 at the bottom
    difference = np.abs(ours[rows_gltf, cols].astype(int) - osg_pixels[rows_osg, cols].astype(int))
    assert np.median(difference) <= 3  # the same texels (JPEG decoders differ by a level or two)
    flipped = np.abs(ours[h - 1 - rows_gltf, cols].astype(int) - osg_pixels[rows_osg, cols].astype(int))
    assert np.median(flipped) > np.median(difference) + 5  # and a flipped v would pick other texels


def test_the_oblique_tileset_passes_the_3d_tiles_validator(imported):
    """The CesiumGS validator: the root, every folder's external tileset, every GLB."""
    assert_valid_3dtiles(imported["folder"] / "tileset.json")


def test_every_oblique_glb_passes_the_khronos_validator(imported):
    paths = [imported["folder"] / uri for uri in imported["transforms"]]
    reports = validate(paths)
    assert len(reports) == len(paths) > 50
    for r in reports:
        assert r["errors"] == 0 and r["warnings"] == 0, r


def test_footprints_and_extent_in_the_catalogue(imported, conn):
    rows = conn.execute(
        "SELECT kind, name, levels, ST_Area(geom::geography) FROM layers.oblique_sample ORDER BY fid"
    ).fetchall()
    assert [r[0] for r in rows] == ["production", "folder", "folder"]
    assert [r[1] for r in rows[1:]] == FOLDERS and all(r[2] == 6 for r in rows)
    for _, _, _, area in rows[1:]:
        assert 5_000 < area < 20_000  # a 100 m folder tile
    assert rows[0][3] >= max(r[3] for r in rows[1:])
    catalogued = conn.execute("SELECT feature_count FROM cim.layers WHERE name = 'oblique_sample'").fetchone()
    assert catalogued == (3,)


@pytest.mark.browser
def test_cesiumjs_loads_the_oblique_tileset(imported):
    from tests.browser import load_in_cesium

    report = load_in_cesium(imported["folder"])
    result = report["result"]
    assert result["error"] is None and result["failed"] == [] and report["consoleErrors"] == [], report
    assert report["foreignRequests"] == [] and result["loaded"] >= 5


@pytest.mark.browser
@pytest.mark.slow
def test_the_viewer_draws_the_oblique_tileset(imported, server, http, tmp_path):
    from tests.browser import browse

    config = http.get("/viewer/config.json").json()
    entry = next(e for e in config["entries"] if e["key"] == "oblique_sample")
    assert entry["ids"] == ["oblique_sample", "tileset:oblique_sample"] and entry["tileset"]
    view = "view=113.38047,22.50688,18.3,40,0"
    on = browse(f"{server}/viewer#{view}&layers=oblique_sample", screenshot=tmp_path / "on.png")
    off = browse(f"{server}/viewer#{view}&layers=streets", screenshot=tmp_path / "off.png")
    for report in (on, off):
        assert report["result"]["errors"] == [] and report["consoleErrors"] == [] and report["foreignRequests"] == []
    assert (
        "tileset:oblique_sample" in on["result"]["layers"] and "tileset:oblique_sample" not in off["result"]["layers"]
    )

    def coloured(path: Path) -> int:
        img = np.asarray(Image.open(path).convert("RGB")).astype(int)[:, 340:]
        return int(((img.max(axis=2) - img.min(axis=2)) > 12).sum() + (img.min(axis=2) > 40).sum())

    total = 800 * (1280 - 340)
    assert coloured(tmp_path / "on.png") > 0.2 * total > coloured(tmp_path / "off.png")


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_killed_import_resumes_to_the_same_result(settings, imported, tmp_path):
    partial = settings.tilesets_dir / ".versions" / "oblique_resumed-partial"
    proc = subprocess.Popen(
        [CIM, "import", "oblique", str(PRODUCTION), "--name", "oblique_resumed", "--jobs", "1"],
        env=cli_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(list(partial.glob("tiles/*/*.json"))) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(partial.glob("tiles/*/*.json")))
    assert 6 <= done_before < 22, "the import was not stopped midway"
    assert not (settings.tilesets_dir / "oblique_resumed").exists()
    rerun = run_cim(settings, "import", "oblique", str(PRODUCTION), "--name", "oblique_resumed", check=True)
    assert f"{22 - done_before} converted, {done_before} reused" in " ".join(rerun.stdout.split())
    resumed = _tree_digest((settings.tilesets_dir / "oblique_resumed").resolve())
    assert resumed == _tree_digest(imported["folder"])  # byte for byte what an uninterrupted run wrote


def _copy_production(tmp_path: Path) -> Path:
    copy = tmp_path / "production"
    shutil.copytree(PRODUCTION, copy)
    for p in copy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return copy


def test_an_unreadable_child_is_skipped_and_named(settings, tmp_path, conn):
    copy = _copy_production(tmp_path)
    child = copy / "Data" / "Tile_+000_+013" / "Tile_+000_+013_L19_0uuuu2.osgb"
    child.write_bytes(child.read_bytes()[:5000])
    result = run_cim(settings, "import", "oblique", str(copy), "--name", "oblique_damaged")
    out = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stderr
    assert "Tile_+000_+013_L19_0uuuu2.osgb" in out
    tileset = json.loads((settings.tilesets_dir / "oblique_damaged" / "tileset.json").read_text())
    uris = tile_transforms(tileset, (settings.tilesets_dir / "oblique_damaged").resolve())
    assert not any("+013_L19_0uuuu2_" in u for u in uris) and any("+013_L19_0uuuu3_" in u for u in uris)


def test_bad_input_fails_in_one_line_and_keeps_the_previous_tileset(settings, imported, conn, tmp_path):
    before = (
        (settings.tilesets_dir / "oblique_sample").resolve(),
        conn.execute("SELECT version FROM cim.layers WHERE name = 'oblique_sample'").fetchone(),
    )
    no_metadata = tmp_path / "no_metadata"
    shutil.copytree(PRODUCTION / "Data", no_metadata / "Data")
    empty = tmp_path / "empty"
    empty.mkdir()
    truncated = _copy_production(tmp_path)
    root = truncated / "Data" / "Tile_+000_+012" / "Tile_+000_+012.osgb"
    root.write_bytes(root.read_bytes()[:3000])
    cases = [(no_metadata, "--srs"), (empty, "holds no tiles"), (truncated, "Tile_+000_+012.osgb")]
    for source, words in cases:
        result = run_cim(settings, "import", "oblique", str(source), "--name", "oblique_sample")
        assert result.returncode != 0, (source, result.stdout)
        message = " ".join(result.stderr.split())
        assert message.startswith("error:") and words in message and "Traceback" not in result.stderr, message
        assert (
            (settings.tilesets_dir / "oblique_sample").resolve(),
            conn.execute("SELECT version FROM cim.layers WHERE name = 'oblique_sample'").fetchone(),
        ) == before


def test_obj_tiles_with_png_textures_and_an_enu_srs(settings, imported, tmp_path):
    """A folder of OBJ tiles (osgconv's OBJ of a sample tile, its texture as PNG), placed by --srs ENU:lat,lon."""
    source = PRODUCTION / "Data" / "Tile_+000_+013" / "Tile_+000_+013_L15_0u.osgb"
    folder = tmp_path / "objs" / "Data" / "Tile_A"
    folder.mkdir(parents=True)
    obj = osgconv(source, folder / "Tile_A.obj")
    v, vt = read_obj(obj)
    jpeg = Glb.read(imported["folder"] / "tiles" / "Tile_+000_+013" / "Tile_+000_+013_L15_0u_0.glb")
    Image.open(io.BytesIO(jpeg.view(jpeg.json["images"][0]["bufferView"]))).save(folder / "tex.png")
    (folder / "Tile_A.mtl").write_text("newmtl material_1\nKd 1 1 1\nmap_Kd tex.png\n")
    result = run_cim(
        settings,
        "import",
        "oblique",
        str(tmp_path / "objs"),
        "--name",
        "oblique_obj",
        "--srs",
        "ENU:22.5,114.05",
        "--origin",
        "0,-1300,0",
    )
    assert result.returncode == 0, result.stderr
    out = (settings.tilesets_dir / "oblique_obj").resolve()
    transforms = tile_transforms(json.loads((out / "tileset.json").read_text()), out)
    ((uri, transform),) = transforms.items()
    glb = Glb.read(out / uri)
    assert glb.json["images"][0]["mimeType"] == "image/png"
    ours = to_ecef(glb.attribute("POSITION"), transform)
    # ENU at 22.5 N, 114.05 E (PROJ's topocentric conversion, run backwards), vertices offset by --origin
    n = undulation(114.05, 22.5)[0]  # the origin's height is orthometric (the default): the frame stands at N
    enu = pyproj.Transformer.from_pipeline(f"+proj=topocentric +ellps=WGS84 +lat_0=22.5 +lon_0=114.05 +h_0={n}")
    expected = np.column_stack(enu.transform(*(v + np.array([0, -1300, 0])).T, direction="INVERSE"))
    # OSG's OBJ reader orders vertices its own way: compare (position, texture coordinate) pairs as sorted sets
    ours_pairs = np.column_stack([ours, glb.attribute("TEXCOORD_0")])
    expected_pairs = np.column_stack([expected, vt[:, 0], 1 - vt[:, 1]])  # glTF's v runs down the image
    assert ours_pairs.shape == expected_pairs.shape

    def by_position(a: np.ndarray) -> np.ndarray:
        return a[np.lexsort(np.round(a[:, ::-1], 2).T)]

    difference = np.abs(by_position(ours_pairs) - by_position(expected_pairs))
    assert difference[:, :3].max() < 0.01 and difference[:, 3:].max() < 1e-5
    assert_valid_3dtiles(out / "tileset.json")


def test_a_building_on_the_dem_and_the_oblique_ground_meet_after_the_geoid(imported, own_settings, tmp_path):
    """One vertical datum: the production's heights (orthometric, as metadata.xml's SRSOrigin gives them)
    are made ellipsoidal with the EGM96 geoid; a DEM surveyed in the same orthometric datum is too;
    a white-model building sampled from the DEM then stands on the oblique ground within 0.5 m.
    (Without the geoid on either side they would be N, about 5.4 m here, apart.) In a database of
    its own: the site lies 70 km west of Futian, out of the session's map."""
    import datetime as dt

    import geopandas as gpd
    import rasterio
    import shapely
    from rasterio.transform import from_origin

    from cim.db import database_url
    from import_scripts.buildings import BuildingOptions, BuildingsImporter
    from import_scripts.layer import LayerOptions
    from import_scripts.raster import RasterImporter, RasterOptions

    to_llh = pyproj.Transformer.from_crs(4978, 4979, always_xy=True)
    points = []
    for uri, transform in imported["transforms"].items():
        glb = Glb.read(imported["folder"] / uri)
        for mesh in glb.json["meshes"]:
            for prim in mesh["primitives"]:
                points.append(to_ecef(glb.accessor(prim["attributes"]["POSITION"]), transform))
    lon, lat, h = to_llh.transform(*np.vstack(points).T)
    lon0, lat0 = float(np.median(lon)), float(np.median(lat))
    near = pyproj.Geod(ellps="WGS84").inv(np.full(len(lon), lon0), np.full(len(lat), lat0), lon, lat)[2] < 25
    ground = float(np.percentile(h[near], 2))  # the lowest surface near the middle: the ground (ellipsoidal)
    n = float(undulation(lon0, lat0)[0])
    assert -6 < n < -5
    # a DEM of the place, flat at the ground's orthometric height, as a survey in the 1985 datum gives it
    gk = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)
    x0, y0 = gk.transform(lon0, lat0)
    dem = tmp_path / "site_dem.tif"
    with rasterio.open(
        dem, "w", driver="GTiff", width=40, height=40, count=1, dtype="float32", crs="EPSG:4547",
        transform=from_origin(x0 - 200, y0 + 200, 10, 10),
    ) as out:  # fmt: skip
        out.write(np.full((40, 40), ground - n, dtype="float32"), 1)
    RasterImporter(
        own_settings, dem, "oblique_site_dem",
        RasterOptions(kind="dem", epoch=dt.date(2026, 11, 1), district_check=False),  # 70 km west of Futian
    ).run()  # fmt: skip
    path = tmp_path / "site_building.geojson"
    square = shapely.box(lon0 - 5e-5, lat0 - 5e-5, lon0 + 5e-5, lat0 + 5e-5)
    gpd.GeoDataFrame({"height": [12.0]}, geometry=[square], crs=4326).to_file(path)
    BuildingsImporter(own_settings, path, "oblique_site_building", BuildingOptions(layer=LayerOptions())).run()
    with psycopg.connect(database_url(own_settings)) as conn:
        base = conn.execute("SELECT base_height FROM layers.oblique_site_building").fetchone()[0]
    assert abs(base - ground) < 0.5, (base, ground)
