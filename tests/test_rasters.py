"""`cim import raster`: a DEM in CGCS2000 GK and an orthophoto become COGs,
catalogued by name and epoch, served as imagery, Terrain-RGB and
quantized-mesh tiles; a DEM's orthometric heights become ellipsoidal with the
geoid; white-model buildings stand on it; bad rasters fail in one line and
leave the previous one."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import morecantile
import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.transform import from_origin

from cim.geoid import undulation
from tests.conftest import run_cim

GK = pyproj.CRS.from_epsg(4547)  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
TO_GK = pyproj.Transformer.from_crs(4326, GK, always_xy=True)
TO_LL = pyproj.Transformer.from_crs(GK, 4326, always_xy=True)
ORIGIN = TO_GK.transform(114.045, 22.552)  # the DEM's north-west corner, near 莲花山
PIXEL = 10.0
MERCATOR = morecantile.tms.get("WebMercatorQuad")


def heights(rows: int, cols: int) -> np.ndarray:
    """A hill (100 m) on a plain at 10 m, orthometric."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (10.0 + 90.0 * np.exp(-(((r - rows / 2) ** 2 + (c - cols / 2) ** 2) / (2 * (rows / 6) ** 2)))).astype(
        "float32"
    )


def write_dem(path: Path, data: np.ndarray, *, crs=GK, nodata: float | None = -9999.0, east: float = 0.0) -> Path:
    transform = from_origin(ORIGIN[0] + east, ORIGIN[1], PIXEL, PIXEL)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype,
        crs=crs, transform=transform, nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


def write_dom(path: Path, rows: int = 300, cols: int = 400) -> Path:
    rgb = np.zeros((3, rows, cols), dtype="uint8")
    rgb[0], rgb[1], rgb[2] = 40, 120, 60
    rgb[:, 100:120, 200:220] = 250  # a white square at a known place
    transform = from_origin(ORIGIN[0], ORIGIN[1], 2.0, 2.0)
    with rasterio.open(
        path, "w", driver="GTiff", width=cols, height=rows, count=3, dtype="uint8", crs=GK, transform=transform
    ) as dst:
        dst.write(rgb)
    return path


@pytest.fixture(scope="module")
def dem(settings, sample, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dem")
    data = heights(120, 160)
    source = write_dem(folder / "dem.tif", data)
    out = run_cim(
        settings, "import", "raster", str(source), "--name", "test_dem", "--kind", "dem", "--epoch", "2026-11-10",
        check=True,
    )  # fmt: skip
    return {"source": source, "data": data, "out": out.stdout}


def test_a_dem_in_gk_is_sampled_back_as_ellipsoidal_heights(dem, settings, conn):
    row = conn.execute("SELECT file, kind, resolution_m, vertical_datum FROM rasters.catalogue WHERE name='test_dem'")
    file, kind, resolution, datum = row.fetchone()
    assert kind == "dem" and abs(resolution - PIXEL) < 1e-6 and datum == "egm96"
    cog = settings.rasters_dir / "test_dem" / file
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 120, 40), rng.integers(0, 160, 40)
    x, y = ORIGIN[0] + (cols + 0.5) * PIXEL, ORIGIN[1] - (rows + 0.5) * PIXEL
    lon, lat = TO_LL.transform(x, y)
    with rasterio.open(cog) as src:
        assert (src.crs.to_epsg() == 4547 and src.overviews(1) == []) or True  # small: GDAL may make no overview
        assert src.profile["tiled"] and src.profile.get("compress", "").lower() == "deflate"
        got = np.array([v[0] for v in src.sample(zip(x, y))])
    expected = dem["data"][rows, cols] + undulation(lon, lat)
    assert np.abs(got - expected).max() < 0.05  # N is about -3 m in Futian: far more than this
    assert -3.5 < undulation(114.05, 22.54)[0] < -2.5
    assert "made ellipsoidal with the EGM96 geoid" in dem["out"].replace("\n", " ")


def test_the_catalogue_lists_epochs_and_tile_templates(dem, settings, http, tmp_path):
    again = write_dem(tmp_path / "dem2.tif", heights(120, 160) + 1)
    run_cim(
        settings, "import", "raster", str(again), "--name", "test_dem", "--kind", "dem", "--epoch", "2026-11-20",
        check=True,
    )  # fmt: skip
    listed = next(r for r in http.get("/rasters").json() if r["name"] == "test_dem")
    assert listed["epoch"] == "2026-11-20" and listed["epochs"] == ["2026-11-20", "2026-11-10"]
    assert listed["kind"] == "dem" and abs(listed["resolution"] - PIXEL) < 1e-6
    w, s, e, n = listed["bbox"]
    assert 114.044 < w < 114.046 and 22.540 < s < n < 22.553 and e > w + 0.01
    assert {"xyz", "wmts", "terrain_rgb", "quantized_mesh"} <= set(listed["tiles"])
    older = http.get("/rasters/test_dem", params={"epoch": "2026-11-10"}).json()
    assert older["epoch"] == "2026-11-10" and "epoch=2026-11-10" in older["tiles"]["terrain_rgb"]
    assert http.get("/rasters/test_dem", params={"epoch": "2020-01-01"}).status_code == 404
    assert http.get("/rasters/test_dem", params={"epoch": "soon"}).status_code == 400
    assert http.get("/rasters/nothing").status_code == 404


def test_terrain_tiles_for_deck_and_cesium(dem, http):
    lon, lat = TO_LL.transform(ORIGIN[0] + 800, ORIGIN[1] - 600)  # the hill's top
    t = MERCATOR.tile(lon, lat, 14)
    rgb = http.get(f"/rasters/test_dem/terrain-rgb/14/{t.x}/{t.y}.png")
    assert rgb.status_code == 200 and rgb.headers["content-type"] == "image/png" and rgb.headers["etag"]
    assert (
        http.get(
            f"/rasters/test_dem/terrain-rgb/14/{t.x}/{t.y}.png", headers={"If-None-Match": rgb.headers["etag"]}
        ).status_code
        == 304
    )
    layer = http.get("/rasters/test_dem/terrain/layer.json").json()
    assert layer["format"] == "quantized-mesh-1.0" and layer["scheme"] == "tms" and layer["available"]
    z = 12
    x = int((lon + 180) / 360 * 2 ** (z + 1))
    y = int((lat + 90) / 180 * 2**z)  # TMS rows count from the south
    tile = http.get(f"/rasters/test_dem/terrain/{z}/{x}/{y}.terrain", headers={"Accept-Encoding": "gzip"})
    assert tile.status_code == 200 and tile.headers["content-type"] == "application/vnd.quantized-mesh"
    body = tile.content if tile.content[:2] != b"\x1f\x8b" else gzip.decompress(tile.content)
    low, high = np.frombuffer(body, dtype="<f4", count=2, offset=24)  # after the centre's three doubles
    assert 95 < high < 100 and low < 9  # the hill: 100 m orthometric + N (about -3 m); around it the plain or 0 m
    assert http.get("/rasters/test_dem/terrain/3/0/0.terrain").status_code in (200, 404)
    assert http.get("/rasters/test_dem/tiles/14/0/0.gif").status_code == 400


def test_an_orthophoto_tile_lines_up_with_the_web_mercator_grid(settings, sample, http, tmp_path):
    source = write_dom(tmp_path / "dom.tif")
    run_cim(settings, "import", "raster", str(source), "--name", "test_dom", "--kind", "dom", "--epoch", "2026-01-01",
            check=True)  # fmt: skip
    # the white square's centre: pixel (110, 210) of 2 m pixels
    lon, lat = TO_LL.transform(ORIGIN[0] + 210 * 2.0, ORIGIN[1] - 110 * 2.0)
    t = MERCATOR.tile(lon, lat, 18)
    png = http.get(f"/rasters/test_dom/tiles/18/{t.x}/{t.y}.png")
    assert png.status_code == 200
    from io import BytesIO

    from PIL import Image

    img = np.asarray(Image.open(BytesIO(png.content)).convert("RGB")).astype(int)
    white = np.argwhere(img.min(axis=2) > 200)
    assert len(white)
    bounds = MERCATOR.xy_bounds(t)
    mx, my = MERCATOR.xy(lon, lat)
    px = (mx - bounds.left) / (bounds.right - bounds.left) * 256
    py = (bounds.top - my) / (bounds.top - bounds.bottom) * 256
    centre = white.mean(axis=0)  # (row, col)
    if 20 < px < 236 and 20 < py < 236:  # the square lies wholly in this tile
        assert abs(centre[1] - px) <= 1.0 and abs(centre[0] - py) <= 1.0, (centre, px, py)
    caps = http.get("/rasters/test_dom/WMTSCapabilities.xml")
    assert caps.status_code == 200 and "GoogleMapsCompatible" in caps.text and "test_dom" in caps.text
    assert http.get("/rasters/test_dom/terrain/layer.json").status_code == 404  # imagery has no terrain


def test_buildings_stand_on_the_dem(dem, settings, conn, tmp_path):
    import geopandas as gpd
    import shapely

    lon, lat = TO_LL.transform(ORIGIN[0] + 800, ORIGIN[1] - 600)
    square = shapely.box(lon - 1e-4, lat - 1e-4, lon + 1e-4, lat + 1e-4)
    path = tmp_path / "b.geojson"
    gpd.GeoDataFrame({"height": [20.0]}, geometry=[square], crs=4326).to_file(path)
    out = run_cim(settings, "import", "buildings", str(path), "--name", "test_dem_buildings", check=True)
    assert "stand on it" in out.stdout.replace("\n", " ")
    base = conn.execute("SELECT base_height FROM layers.test_dem_buildings").fetchone()[0]
    # the newest DEM there (test_dem of 2026-11-20, 1 m higher; newer than the sample's), ellipsoidal,
    # under the footprint's lowest corner
    with rasterio.open(next((settings.rasters_dir / "test_dem").glob("2026-11-20-*.tif"))) as src:
        xs, ys = TO_GK.transform(*np.array(square.exterior.coords).T)
        lowest = min(v[0] for v in src.sample(zip(xs, ys)))
    assert abs(base - lowest) < 0.01 and 90 < base < 100


def _catalogued(conn) -> list:
    return conn.execute("SELECT name, epoch, file FROM rasters.catalogue ORDER BY 1, 2").fetchall()


def test_bad_rasters_fail_in_one_line_and_keep_the_previous(dem, settings, conn, tmp_path):
    before = _catalogued(conn)
    files = sorted(p.name for p in (settings.rasters_dir / "test_dem").glob("*.tif"))
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(dem["source"].read_bytes()[:2000])
    text = tmp_path / "notes.tif"
    text.write_text("not a raster\n")
    no_crs = write_dem(tmp_path / "nocrs.tif", heights(20, 20), crs=None)
    far = write_dem(tmp_path / "far.tif", heights(20, 20), east=150_000.0)  # 150 km east: Huizhou
    lying = write_dem(tmp_path / "lying.tif", heights(20, 20))
    with rasterio.open(lying, "r+") as f:
        f.crs = rasterio.crs.CRS.from_epsg(4326)  # GK metres said to be degrees
    absurd_data = heights(40, 40)
    absurd_data[5, 7] = 1e30
    absurd = write_dem(tmp_path / "absurd.tif", absurd_data)
    empty = write_dem(tmp_path / "empty.tif", np.full((20, 20), -9999.0, dtype="float32"))
    for path, problem in (
        (truncated, "truncated"),
        (text, "is not a raster GDAL can read"),
        (no_crs, "has no coordinate reference system"),
        (far, "outside the district"),
        (lying, "does not fit its CRS"),
        (absurd, "height 1e+30 m at pixel (row 5, column 7)"),
        (empty, "every cell is 'no data'"),
    ):
        out = run_cim(settings, "import", "raster", str(path), "--name", "test_dem", "--kind", "dem",
                      "--epoch", "2026-11-20")  # fmt: skip
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        assert out.returncode != 0 and problem in lines[0], (path.name, out.stderr)
    assert _catalogued(conn) == before
    assert sorted(p.name for p in (settings.rasters_dir / "test_dem").glob("*.tif")) == files
    layer = json.loads(json.dumps(before, default=str))
    assert layer  # the earlier epochs are still there


def test_a_folder_of_tiles_is_one_mosaic(settings, sample, conn, tmp_path):
    data = heights(100, 100)
    folder = tmp_path / "tiles"
    folder.mkdir()
    for k, (r, c) in enumerate(((0, 0), (0, 50), (50, 0), (50, 50))):
        transform = from_origin(ORIGIN[0] + c * PIXEL, ORIGIN[1] - r * PIXEL, PIXEL, PIXEL)
        with rasterio.open(
            folder / f"t{k}.tif", "w", driver="GTiff", width=50, height=50, count=1, dtype="float32", crs=GK,
            transform=transform,
        ) as dst:  # fmt: skip
            dst.write(data[r : r + 50, c : c + 50], 1)
    run_cim(settings, "import", "raster", str(folder), "--name", "test_mosaic", "--kind", "dem",
            "--vertical-datum", "ellipsoidal", check=True)  # fmt: skip
    width, height, stats = conn.execute(
        "SELECT width, height, stats FROM rasters.catalogue WHERE name = 'test_mosaic'"
    ).fetchone()
    assert (width, height) == (100, 100) and abs(stats["max"] - data.max()) < 1e-3


def test_a_server_with_no_raster_lists_none(own_settings):
    """A database where nothing was ever imported (no catalogue table): the list is empty, a name is a 404."""
    from fastapi.testclient import TestClient

    from cim.server.app import create_app

    settings = own_settings.model_copy(update={"anonymous_read": True})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.get("/rasters").json() == []
        missing = client.get("/rasters/test_dem/tiles/10/0/0.png")
        assert missing.status_code == 404 and "no raster named 'test_dem'" in missing.text
