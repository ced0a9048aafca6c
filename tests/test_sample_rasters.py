"""The Futian sample's generated terrain and orthophoto (cim.samples.futian.rasters): the small
scale's files, and windows of the full scale's orthophoto rendered in memory. No database."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window

from cim.samples.futian import generate, generate_rasters
from cim.samples.futian.geometry import lonlat_to_metric
from cim.samples.futian.params import rng
from cim.samples.futian.rasters import (
    DEM_NODATA,
    DESCRIPTION,
    FOREST,
    ROAD,
    WATER,
    DomPainter,
    Grid,
    Scene,
    dem_grid,
    dom_grid,
    make_dem,
    write_dom,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "data_samples" / "futian"
CBD = (114.055, 22.537)
LIANHUA = (114.0570, 22.5555)  # 莲花山, about 106 m
MEILIN = (114.0420, 22.5870)  # 梅林山, on the northern ridge
RIVER_BANK = (114.0700, 22.5165)  # the district's edge along the Shenzhen River
BAY = (113.995, 22.505)  # Shenzhen Bay


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def value_at(path: Path, lonlat: tuple[float, float]) -> np.ndarray:
    with rasterio.open(path) as src:
        return next(src.sample([tuple(lonlat_to_metric(*lonlat)[0])]))


def brightness(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float).mean(axis=-1)


@pytest.fixture(scope="module")
def small_rasters(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("rasters_small")
    t0 = time.perf_counter()
    paths = generate_rasters(out, "small", 42)
    seconds = time.perf_counter() - t0
    print(f"small rasters generated in {seconds:.1f} s")  # the scene rebuilt from the seed included
    return {"paths": paths, "seconds": seconds}


@pytest.fixture(scope="module")
def small_scene() -> Scene:
    return Scene.build("small", 42)


@pytest.fixture(scope="module")
def full_scene() -> Scene:
    return Scene.build("full", 42)


@pytest.fixture(scope="module")
def full_painter(full_scene: Scene) -> DomPainter:
    dem_gen, dom_gen = rng(42, "rasters").spawn(2)
    return DomPainter(full_scene, make_dem(full_scene.boundary, dem_gen), dom_gen)


# --- the files -----------------------------------------------------------------------------------


def test_files_crs_tags_and_layout(small_rasters):
    paths = small_rasters["paths"]
    assert set(paths) == {"dem", "dom"}
    assert paths["dem"].name == "dem.tif" and paths["dom"].name == "dom.tif"
    with rasterio.open(paths["dem"]) as dem, rasterio.open(paths["dom"]) as dom:
        for src in (dem, dom):
            assert src.crs.to_epsg() == 4547
            assert src.tags()["TIFFTAG_IMAGEDESCRIPTION"] == DESCRIPTION
            assert src.profile["tiled"] and src.block_shapes[0] == (512, 512)
        assert dem.count == 1 and dem.dtypes == ("float32",) and dem.nodata == DEM_NODATA
        assert dem.res == (10.0, 10.0)
        assert "orthometric" in dem.tags()["VERTICAL_DATUM"]
        assert dom.count == 3 and dom.dtypes == ("uint8",) * 3 and dom.res == (2.0, 2.0)
        assert dom.compression is None  # plain tiles: the importer makes the COG
    assert not list(paths["dem"].parent.glob("*.aux.xml"))
    assert small_rasters["seconds"] < 30


def test_dem_covers_the_district_with_a_margin(small_rasters):
    boundary = pyogrio.read_dataframe(COMMITTED / "futian_boundary.gpkg").to_crs(4547).geometry.iloc[0]
    with rasterio.open(small_rasters["paths"]["dem"]) as src:
        left, bottom, right, top = src.bounds
        heights = src.read(1)
    x0, y0, x1, y1 = boundary.bounds
    assert left <= x0 - 490 and bottom <= y0 - 490 and right >= x1 + 490 and top >= y1 + 490
    assert right - left < x1 - x0 + 1020 and top - bottom < y1 - y0 + 1020
    assert not (heights == DEM_NODATA).any()  # nodata declared, none used


def test_heights_are_plausible(small_rasters):
    path = small_rasters["paths"]["dem"]
    with rasterio.open(path) as src:
        heights = src.read(1)
    assert heights.min() >= -5 and heights.max() <= 600
    assert 350 <= heights.max() <= 520  # the 塘朗山-梅林山 ridge
    cbd = float(value_at(path, CBD)[0])
    lianhua = float(value_at(path, LIANHUA)[0])
    meilin = float(value_at(path, MEILIN)[0])
    assert 5 <= cbd <= 20
    assert 90 <= lianhua <= 125 and lianhua > cbd + 60
    assert meilin > 250
    assert 0 <= float(value_at(path, BAY)[0]) <= 1  # the water
    assert 0.2 <= float(value_at(path, RIVER_BANK)[0]) <= 4  # the coast, 1-3 m
    assert np.median(heights) < 25  # mostly a flat city


def test_dom_covers_the_small_sample_buildings(small_rasters):
    buildings = pyogrio.read_dataframe(COMMITTED / "buildings.gpkg").to_crs(4547)
    x0, y0, x1, y1 = buildings.total_bounds
    with rasterio.open(small_rasters["paths"]["dom"]) as src:
        left, bottom, right, top = src.bounds
    assert left <= x0 - 298 and bottom <= y0 - 298 and right >= x1 + 298 and top >= y1 + 298
    assert right - left < x1 - x0 + 610 and top - bottom < y1 - y0 + 610


def test_dom_shows_the_sample_buildings_apart_from_roads(small_rasters, small_scene):
    buildings = pyogrio.read_dataframe(COMMITTED / "buildings.gpkg").to_crs(4547)
    with rasterio.open(small_rasters["paths"]["dom"]) as src:
        rgb = np.moveaxis(src.read(), 0, -1)
        transform, shape = src.transform, (src.height, src.width)
    light = brightness(rgb)
    assert (light > 25).mean() > 0.97  # mostly not black
    inner = shapely.buffer(buildings.geometry.to_numpy(), -2.5)
    on_roof = rasterize([g for g in inner if not g.is_empty], out_shape=shape, transform=transform) > 0
    dem_gen, dom_gen = rng(42, "rasters").spawn(2)
    painter = DomPainter(small_scene, make_dem(small_scene.boundary, dem_gen), dom_gen)
    grid = Grid(transform.c, transform.f, transform.a, shape[1], shape[0])
    road = (painter.classes(grid) == ROAD) & (painter.roof_ids(grid) == 0)
    assert on_roof.sum() > 100_000 and road.sum() > 100_000
    assert np.median(light[on_roof]) > 150 > 110 > np.median(light[road])
    assert rgb[on_roof].std(axis=0).mean() > 10  # roofs in varied colours


def test_scene_is_the_committed_sample(small_scene):
    """The rebuilt scene's buildings are the committed sample's, in order (the DOM draws them)."""
    scene = small_scene
    committed = pyogrio.read_dataframe(COMMITTED / "buildings.gpkg")
    assert len(scene.buildings.geometry) == len(committed)
    np.testing.assert_allclose(scene.buildings.height, committed["height"])
    centres = shapely.get_coordinates(shapely.centroid(committed.to_crs(4547).geometry.to_numpy()))
    mine = shapely.get_coordinates(shapely.centroid(scene.buildings.geometry))
    assert np.abs(centres - mine).max() < 0.05


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_pixels_other_seed_other_pixels(small_rasters, small_scene):
    scene = small_scene
    grid = dom_grid(scene, "small").window(600, 500, 400, 300)

    def render(seed: int) -> tuple[str, str]:
        dem_gen, dom_gen = rng(seed, "rasters").spawn(2)
        dem = make_dem(scene.boundary, dem_gen)
        return digest(dem.height), digest(DomPainter(scene, dem, dom_gen).render(grid))

    first = render(42)
    assert render(42) == first
    other = render(7)
    assert other[0] != first[0] and other[1] != first[1]
    with rasterio.open(small_rasters["paths"]["dem"]) as src:
        assert digest(src.read(1)) == first[0]
    with rasterio.open(small_rasters["paths"]["dom"]) as src:
        written = np.moveaxis(src.read(window=Window(600, 500, 400, 300)), 0, -1)
    assert digest(written) == first[1]


def test_windows_stitch_without_seams(full_painter, full_scene):
    """A window rendered whole equals the same pixels rendered as four windows (the textures are
    hashes of world positions; roof edges look one pixel beyond their window)."""
    x, y = lonlat_to_metric(*CBD)[0]
    grid = dom_grid(full_scene, "full")
    col = int((x - grid.x0) / grid.pixel) // 4 * 4
    row = int((grid.y1 - y) / grid.pixel) // 4 * 4
    whole = full_painter.render(grid.window(col, row, 512, 512))
    parts = np.zeros_like(whole)
    for dc in (0, 256):
        for dr in (0, 256):
            parts[dr : dr + 256, dc : dc + 256] = full_painter.render(grid.window(col + dc, row + dr, 256, 256))
    assert np.array_equal(whole, parts)


# --- the full scale, in memory --------------------------------------------------------------------


def test_full_dom_grid_is_the_district_at_half_a_metre(full_scene, small_scene):
    grid = dom_grid(full_scene, "full")
    assert grid.pixel == 0.5
    x0, y0, x1, y1 = full_scene.boundary.bounds
    left, bottom, right, top = grid.bounds
    assert left <= x0 < left + 1 and right - 1 < x1 <= right and bottom <= y0 < bottom + 1 and top - 1 < y1 <= top
    assert 0.9e9 < grid.width * grid.height * 3 < 1.6e9  # about 1.4 GB of RGB
    assert dem_grid(full_scene.boundary) == dem_grid(small_scene.boundary)


def test_full_dom_windows_look_like_their_places(full_painter, full_scene):
    grid = dom_grid(full_scene, "full")

    def window_at(lonlat: tuple[float, float], size: int = 200) -> Grid:
        x, y = lonlat_to_metric(*lonlat)[0]
        return grid.window(
            int((x - grid.x0) / grid.pixel) - size // 2, int((grid.y1 - y) / grid.pixel) - size // 2, size, size
        )

    hill = window_at(LIANHUA)
    assert (full_painter.classes(hill) == FOREST).mean() > 0.95
    green = full_painter.render(hill).astype(float).mean(axis=(0, 1))
    assert green[1] > green[0] + 15 and green[1] > green[2] + 15
    bay = window_at(BAY)
    assert (full_painter.classes(bay) == WATER).all()
    blue = full_painter.render(bay).astype(float).mean(axis=(0, 1))
    assert blue[2] > blue[0] + 25
    cbd = window_at(CBD, 1000)
    assert (full_painter.roof_ids(cbd) > 0).mean() > 0.2


# --- hooks ----------------------------------------------------------------------------------------


def test_importing_the_sample_package_does_not_load_rasterio():
    code = "import sys, cim.samples.futian; assert 'rasterio' not in sys.modules, 'rasterio loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_generate_writes_the_same_rasters(small_rasters, tmp_path):
    """cim samples futian (generate) writes dem.tif and dom.tif, the same as generate_rasters'."""
    seen: list[str] = []
    generate(tmp_path, "small", 42, on_raster=lambda name, path: seen.append(name))
    assert seen == ["dem", "dom"]
    for path in small_rasters["paths"].values():
        with rasterio.open(path) as mine, rasterio.open(tmp_path / path.name) as theirs:
            assert digest(mine.read()) == digest(theirs.read())


def test_a_failed_write_keeps_the_previous_file(small_rasters, small_scene, tmp_path):
    previous = tmp_path / "dom.tif"
    previous.write_bytes(b"the previous orthophoto")

    class Broken:
        def render(self, grid: Grid) -> np.ndarray:
            raise RuntimeError("out of paint")

    with pytest.raises(RuntimeError, match="out of paint"):
        write_dom(previous, Broken(), dom_grid(small_scene, "small"), "small", 42)
    assert previous.read_bytes() == b"the previous orthophoto"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dom.tif"]
    assert sorted(p.name for p in small_rasters["paths"]["dom"].parent.iterdir()) == ["dem.tif", "dom.tif"]
