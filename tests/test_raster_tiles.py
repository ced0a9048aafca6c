"""Imagery, Terrain-RGB and quantized-mesh tiles (tiles/raster.py, tiles/terrain.py), from small
GeoTIFFs written here in CGCS2000 Gauss-Krüger (EPSG:4547, CM 114E) around Futian."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import morecantile
import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rio_tiler.io import Reader

from tiles.raster import (
    RasterSource,
    bounds_wgs84,
    gdal_path,
    imagery_tile,
    read_tile,
    reader_options,
    terrain_rgb_tile,
)
from tiles.terrain import (
    default_max_error,
    dem_maxzoom,
    layer_json,
    quantized_mesh_tile,
    tile_bounds,
    tile_range,
)

LON0, LAT0 = 114.05, 22.54
TO_GK = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)
MERC_TO_GK = pyproj.Transformer.from_crs(3857, 4547, always_xy=True)
MERCATOR = morecantile.tms.get("WebMercatorQuad")
X0, Y0 = TO_GK.transform(LON0, LAT0)
#: the bright block of the DOM, and where it is
BLOCK_GK = (X0 + 101.0, Y0 - 57.0)
BLOCK_LONLAT = pyproj.Transformer.from_crs(4547, 4326, always_xy=True).transform(*BLOCK_GK)


def hill(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The test DEM's heights at GK coordinates: a 100 m hill on a 10 m plain."""
    return 10.0 + 90.0 * np.exp(-((x - X0) ** 2 + (y - Y0) ** 2) / (2 * 400.0**2))


def plane(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The Terrain-RGB DEM: a tilted plane (2 % east, 1.5 % south)."""
    return 30.0 + 0.02 * (x - X0) - 0.015 * (y - Y0)


def write_raster(
    path: Path, half: float, px: float, fill: Callable[[np.ndarray, np.ndarray], np.ndarray], **profile
) -> Path:
    """A tiled GeoTIFF in EPSG:4547 of ``2 * half`` metres around (X0, Y0), ``px`` metre pixels,
    bands ``fill(X, Y)`` ((bands, h, w) or (h, w)) at the pixel centres."""
    n = round(2 * half / px)
    centres = (np.arange(n) + 0.5) * px
    xx, yy = np.meshgrid(X0 - half + centres, Y0 + half - centres)
    data = np.asarray(fill(xx, yy))
    data = data[np.newaxis] if data.ndim == 2 else data
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=n,
        height=n,
        count=data.shape[0],
        dtype=data.dtype,
        crs="EPSG:4547",
        transform=Affine(px, 0.0, X0 - half, 0.0, -px, Y0 + half),
        tiled=True,
        **profile,
    ) as ds:
        ds.write(data)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rasters")


@pytest.fixture(scope="module")
def hill_dem(folder: Path) -> RasterSource:
    path = write_raster(folder / "hill.tif", 1500.0, 10.0, lambda x, y: hill(x, y).astype(np.float32), nodata=-9999)
    return RasterSource(path, "dem")


@pytest.fixture(scope="module")
def plane_dem(folder: Path) -> RasterSource:
    """The plane, with a 300 m nodata square in its north-west corner."""

    def fill(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        h = plane(x, y).astype(np.float32)
        h[(x < X0 - 700) & (y > Y0 + 700)] = -9999
        return h

    return RasterSource(write_raster(folder / "plane.tif", 1000.0, 10.0, fill, nodata=-9999), "dem")


@pytest.fixture(scope="module")
def dom(folder: Path) -> RasterSource:
    """Grey ground (90) with a white 10 m block at BLOCK_GK; its western 100 m are 0 (nodata)."""

    def fill(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        grey = np.full(x.shape, 90, dtype=np.uint8)
        grey[(abs(x - BLOCK_GK[0]) < 5) & (abs(y - BLOCK_GK[1]) < 5)] = 255
        grey[x < X0 - 400] = 0
        return np.stack([grey, grey, grey])

    return RasterSource(write_raster(folder / "dom.tif", 500.0, 2.0, fill), "dom", nodata=0)


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def pixel_centres_gk(tile: morecantile.Tile, size: int) -> tuple[np.ndarray, np.ndarray]:
    """GK coordinates of the centres of a WebMercatorQuad tile's pixels (rows from the north)."""
    b = MERCATOR.xy_bounds(tile)
    res = (b.right - b.left) / size
    centres = (np.arange(size) + 0.5) * res
    mx, my = np.meshgrid(b.left + centres, b.top - centres)
    return MERC_TO_GK.transform(mx, my)


# --- imagery ------------------------------------------------------------------------------------


def test_imagery_lines_up_with_web_mercator_at_z18(dom: RasterSource) -> None:
    lon, lat = BLOCK_LONLAT
    tile = MERCATOR.tile(lon, lat, 18)
    rgba = decode_png(imagery_tile(dom, tile.z, tile.x, tile.y) or b"")
    assert rgba.shape == (256, 256, 4)
    rows, cols = np.nonzero(rgba[:, :, 0] > 172)  # half-way between the ground (90) and the block (255)
    assert 100 < len(rows) < 600  # 10 m at 0.55 m a pixel: about 18 x 18 pixels
    b = MERCATOR.xy_bounds(tile)
    mx, my = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    res = (b.right - b.left) / 256
    expected = ((mx - b.left) / res, (b.top - my) / res)
    found = (cols.mean() + 0.5, rows.mean() + 0.5)
    assert abs(found[0] - expected[0]) < 1.0 and abs(found[1] - expected[1]) < 1.0, (found, expected)


def test_imagery_nodata_is_transparent_in_png_and_webp_black_in_jpeg(dom: RasterSource) -> None:
    lon, lat = TO_GK.transform(X0 - 400, Y0, direction="INVERSE")  # the nodata strip's eastern edge
    tile = MERCATOR.tile(lon, lat, 17)
    xs, _ = pixel_centres_gk(tile, 256)
    inside, outside = xs > X0 - 390, (xs < X0 - 410) & (xs > X0 - 490)
    assert inside.any() and outside.any()
    png = decode_png(imagery_tile(dom, tile.z, tile.x, tile.y, "png") or b"")
    assert (png[:, :, 3][outside] == 0).all() and (png[:, :, 3][inside] == 255).all()
    assert abs(png[:, :, 0][inside].astype(int) - 90).max() <= 1
    webp = decode_png(imagery_tile(dom, tile.z, tile.x, tile.y, "webp") or b"")
    assert webp.shape[2] == 4 and (webp[:, :, 3][outside] == 0).all()
    jpeg = decode_png(imagery_tile(dom, tile.z, tile.x, tile.y, "jpg") or b"")
    assert jpeg.ndim == 3 and jpeg.shape[2] == 3
    assert np.median(jpeg[:, :, 0][outside]) < 10 and abs(np.median(jpeg[:, :, 0][inside]) - 90) < 5
    with pytest.raises(ValueError, match="format"):
        imagery_tile(dom, tile.z, tile.x, tile.y, "gif")


def test_imagery_outside_the_raster_is_none(dom: RasterSource) -> None:
    far = MERCATOR.tile(LON0 + 1.0, LAT0, 15)
    assert imagery_tile(dom, far.z, far.x, far.y) is None
    assert imagery_tile(dom, 3, 99, 0) is None  # not a tile of the matrix


def test_a_dem_as_imagery_is_grey_stretched_to_its_range(hill_dem: RasterSource) -> None:
    tile = MERCATOR.tile(LON0, LAT0, 13)
    grey = decode_png(imagery_tile(hill_dem, tile.z, tile.x, tile.y) or b"")
    assert grey.ndim == 3 and grey.shape[2] == 2  # grey + alpha
    valid = grey[:, :, 1] == 255
    assert grey[:, :, 0][valid].max() >= 250 and grey[:, :, 0][valid].min() <= 5


def test_cgcs2000_rasters_are_read_with_the_null_shift_said(dom: RasterSource, tmp_path: Path) -> None:
    """The vrt:// view (same CRS + TOWGS84[0,...]) gives the very pixels PROJ's own choice gives."""
    assert gdal_path(dom.path).startswith("vrt://")
    utm = write_raster(tmp_path / "other.tif", 50.0, 10.0, lambda x, y: np.zeros(x.shape, np.uint8))
    with rasterio.open(utm, "r+") as ds:
        ds.crs = rasterio.crs.CRS.from_epsg(32649)  # WGS 84 / UTM 49N: left alone
    assert gdal_path(utm) == str(utm)
    tile = MERCATOR.tile(*BLOCK_LONLAT, 17)
    fast = read_tile(dom, tile.z, tile.x, tile.y)
    with Reader(str(dom.path), tms=MERCATOR, options=reader_options(dom)) as reader:
        plain = reader.tile(tile.x, tile.y, tile.z)
    assert fast is not None and np.array_equal(fast.array.data, plain.array.data)
    assert np.array_equal(np.ma.getmaskarray(fast.array), np.ma.getmaskarray(plain.array))


# --- Terrain-RGB ---------------------------------------------------------------------------------


def decode_terrain_rgb(data: bytes) -> np.ndarray:
    rgb = decode_png(data).astype(np.float64)
    return -10000.0 + (rgb[:, :, 0] * 65536 + rgb[:, :, 1] * 256 + rgb[:, :, 2]) * 0.1


def test_terrain_rgb_decodes_to_the_dem_heights(plane_dem: RasterSource) -> None:
    tile = MERCATOR.tile(LON0, LAT0, 16)
    heights = decode_terrain_rgb(terrain_rgb_tile(plane_dem, tile.z, tile.x, tile.y) or b"")
    xs, ys = pixel_centres_gk(tile, 256)
    assert heights.shape == (256, 256)
    assert np.abs(heights - plane(xs, ys)).max() <= 0.1  # 0.05 m rounding + warping


def test_terrain_rgb_nodata_is_zero_metres(plane_dem: RasterSource) -> None:
    lon, lat = TO_GK.transform(X0 - 700, Y0 + 700, direction="INVERSE")  # the nodata square's corner
    tile = MERCATOR.tile(lon, lat, 16)
    heights = decode_terrain_rgb(terrain_rgb_tile(plane_dem, tile.z, tile.x, tile.y) or b"")
    xs, ys = pixel_centres_gk(tile, 256)
    nodata = (xs < X0 - 715) & (ys > Y0 + 715) & (xs > X0 - 985) & (ys < Y0 + 985)
    valid = (xs > X0 - 685) & (xs < X0 + 985) & (ys < Y0 + 985) & (ys > Y0 - 985)
    assert nodata.sum() > 100 and valid.sum() > 100
    assert (heights[nodata] == 0).all()
    assert np.abs(heights[valid] - plane(xs, ys)[valid]).max() <= 0.1
    outside = MERCATOR.tile(LON0 - 1.0, LAT0, 16)
    assert terrain_rgb_tile(plane_dem, outside.z, outside.x, outside.y) is None


def test_bounds_and_max_zoom(hill_dem: RasterSource, dom: RasterSource) -> None:
    west, south, east, north = bounds_wgs84(hill_dem.path)
    assert west < LON0 < east and south < LAT0 < north
    assert 0.028 < east - west < 0.031 and 0.026 < north - south < 0.029  # 3 km
    assert dem_maxzoom(hill_dem.path) == 14  # z14: 8.8 m a pixel at 22.5°N; z13: 17.7 m
    assert dem_maxzoom(dom.path) == 17  # 2 m: z16 (2.2 m) is still coarser, z17 1.1 m


# --- quantized-mesh ------------------------------------------------------------------------------


def decode_quantized_mesh(data: bytes) -> dict:
    """A quantized-mesh-1.0 tile (no extensions): header, u/v (0..32767), heights (m), triangles, edges."""
    fields = struct.unpack_from("<3d2f4d3d", data, 0)
    header = dict(
        zip(
            ["cx", "cy", "cz", "min_h", "max_h", "sx", "sy", "sz", "radius", "hx", "hy", "hz"],
            fields,
        )
    )
    pos = 88
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    encoded = np.frombuffer(data, dtype="<u2", count=3 * count, offset=pos).astype(np.int64)
    pos += 6 * count
    zigzag = (encoded >> 1) ^ -(encoded & 1)
    u, v, hq = (np.cumsum(zigzag[k * count : (k + 1) * count]) for k in range(3))
    index_size = 4 if count > 65536 else 2
    pos += (-pos) % index_size
    (triangle_count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    dtype = "<u4" if index_size == 4 else "<u2"
    codes = np.frombuffer(data, dtype=dtype, count=3 * triangle_count, offset=pos).astype(np.int64)
    pos += index_size * 3 * triangle_count
    indices, highest = np.empty_like(codes), 0
    for i, code in enumerate(codes):
        indices[i] = highest - code
        highest += code == 0
    edges = {}
    for side in ("west", "south", "east", "north"):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        edges[side] = np.frombuffer(data, dtype=dtype, count=n, offset=pos).astype(np.int64)
        pos += index_size * n
    assert pos == len(data), "extensions or trailing bytes"
    heights = header["min_h"] + hq / 32767 * (header["max_h"] - header["min_h"])
    return {"header": header, "u": u, "v": v, "h": heights, "triangles": indices.reshape(-1, 3), "edges": edges}


def vertex_lonlat(mesh: dict, bounds: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    west, south, east, north = bounds
    return west + mesh["u"] / 32767 * (east - west), south + mesh["v"] / 32767 * (north - south)


def mesh_heights_at(mesh: dict, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The mesh's height at (u, v) points (linear in each triangle); NaN outside every triangle."""
    tri = mesh["triangles"]
    pu, pv, ph = mesh["u"][tri].astype(float), mesh["v"][tri].astype(float), mesh["h"][tri]
    det = (pv[:, 1] - pv[:, 2]) * (pu[:, 0] - pu[:, 2]) + (pu[:, 2] - pu[:, 1]) * (pv[:, 0] - pv[:, 2])
    du, dv = u[:, None] - pu[None, :, 2], v[:, None] - pv[None, :, 2]
    a = ((pv[:, 1] - pv[:, 2]) * du + (pu[:, 2] - pu[:, 1]) * dv) / det
    b = ((pv[:, 2] - pv[:, 0]) * du + (pu[:, 0] - pu[:, 2]) * dv) / det
    c = 1 - a - b
    inside = (a >= -1e-9) & (b >= -1e-9) & (c >= -1e-9)
    which = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    rows = np.arange(len(u))
    h = a[rows, which] * ph[which, 0] + b[rows, which] * ph[which, 1] + c[rows, which] * ph[which, 2]
    return np.where(which >= 0, h, np.nan)


def geographic_tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The TMS (y from the south) tile of the geographic scheme holding lon/lat."""
    t = morecantile.tms.get("WGS1984Quad").tile(lon, lat, z)
    return z, t.x, 2**z - 1 - t.y


@pytest.fixture(scope="module")
def hill_tile(hill_dem: RasterSource) -> tuple[tuple[int, int, int], dict]:
    z, x, y = geographic_tile(LON0 + 0.002, LAT0 + 0.002, 15)
    return (z, x, y), decode_quantized_mesh(quantized_mesh_tile(hill_dem, z, x, y) or b"")


def test_quantized_mesh_vertices_are_the_dem_heights(hill_tile: tuple) -> None:
    (z, x, y), mesh = hill_tile
    bounds = tile_bounds(z, x, y)
    assert bounds is not None
    assert 50 < len(mesh["u"]) < 4000
    lon, lat = vertex_lonlat(mesh, bounds)
    gx, gy = TO_GK.transform(lon, lat)
    assert np.abs(mesh["h"] - hill(gx, gy)).max() < 0.05  # bilinear between 10 m posts + height quantization
    header = mesh["header"]
    assert header["min_h"] == pytest.approx(mesh["h"].min(), abs=0.01)
    assert header["max_h"] == pytest.approx(mesh["h"].max(), abs=0.01)
    # the horizon occlusion point is in the ellipsoid-scaled space, above the tile
    assert 1.0 < float(np.linalg.norm([header["hx"], header["hy"], header["hz"]])) < 1.001
    # triangles counter-clockwise in (u, v), every vertex used
    tri = mesh["triangles"]
    u, v = mesh["u"][tri].astype(float), mesh["v"][tri].astype(float)
    cross = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (u[:, 2] - u[:, 0]) * (v[:, 1] - v[:, 0])
    assert (cross > 0).all()
    assert set(np.unique(tri)) == set(range(len(mesh["u"])))


def test_quantized_mesh_is_within_max_error_of_the_dem(hill_tile: tuple) -> None:
    (z, x, y), mesh = hill_tile
    west, south, east, north = tile_bounds(z, x, y) or (0.0, 0.0, 0.0, 0.0)
    max_error = default_max_error(z)
    assert 0.2 < max_error < 0.4
    # the DEM on the tile's sampling grid (posts on the tile's edges, 10 m apart at z15)
    f = np.linspace(0.0, 1.0, 65)
    fu, fv = (a.ravel() for a in np.meshgrid(f, f))
    gx, gy = TO_GK.transform(west + fu * (east - west), south + fv * (north - south))
    dem = hill(gx, gy)
    surface = mesh_heights_at(mesh, fu * 32767, fv * 32767)
    assert not np.isnan(surface).any()
    assert np.abs(surface - dem).max() <= max_error + 0.05
    assert mesh["h"].min() == pytest.approx(dem.min(), abs=max_error + 0.05)
    assert mesh["h"].max() == pytest.approx(dem.max(), abs=max_error + 0.05)


def test_quantized_mesh_edges_match_their_neighbours(hill_dem: RasterSource, hill_tile: tuple) -> None:
    (z, x, y), mesh = hill_tile
    max_error = default_max_error(z)
    for side, other_side, neighbour, along in (
        ("east", "west", (z, x + 1, y), "v"),
        ("north", "south", (z, x, y + 1), "u"),
    ):
        other = decode_quantized_mesh(quantized_mesh_tile(hill_dem, *neighbour) or b"")
        mine, theirs = mesh["edges"][side], other["edges"][other_side]
        across = "u" if along == "v" else "v"
        assert (mesh[across][mine] == (32767 if side in ("east", "north") else 0)).all()
        assert (other[across][theirs] == 0).all()
        order = np.argsort(other[along][theirs])
        line_pos, line_h = other[along][theirs][order], other["h"][theirs][order]
        assert line_pos[0] == 0 and line_pos[-1] == 32767  # the corners are on the edge
        interpolated = np.interp(mesh[along][mine], line_pos, line_h)
        assert np.abs(interpolated - mesh["h"][mine]).max() <= max_error + 0.02, side
        shared = np.isin(mesh[along][mine], line_pos)
        same = np.interp(mesh[along][mine][shared], line_pos, line_h)
        assert np.abs(same - mesh["h"][mine][shared]).max() < 0.01, side  # the same posts, sampled alike


def test_quantized_mesh_level_zero_is_flat_off_the_dem_and_none_outside_availability(hill_dem: RasterSource) -> None:
    west = decode_quantized_mesh(quantized_mesh_tile(hill_dem, 0, 0, 0) or b"")
    assert (west["h"] == 0).all() and len(west["u"]) == 17 * 17
    east = decode_quantized_mesh(quantized_mesh_tile(hill_dem, 0, 1, 0) or b"")  # holds Futian, coarsely
    assert len(east["u"]) == 17 * 17
    assert quantized_mesh_tile(hill_dem, *geographic_tile(LON0 + 1.0, LAT0, 12)) is None
    assert quantized_mesh_tile(hill_dem, *geographic_tile(LON0 - 30.0, LAT0, 4)) is None
    assert quantized_mesh_tile(hill_dem, *geographic_tile(LON0 - 30.0, LAT0, 3)) is not None  # levels 0-3: the world
    assert quantized_mesh_tile(hill_dem, 0, 2, 0) is None  # no such tile
    assert tile_bounds(1, 0, 0) == (-180.0, -90.0, -90.0, 0.0)  # TMS: y from the south


def test_layer_json(hill_dem: RasterSource) -> None:
    bounds = bounds_wgs84(hill_dem.path)
    layer = json.loads(json.dumps(layer_json(bounds, 0, 14, "hill")))
    assert layer["format"] == "quantized-mesh-1.0" and layer["scheme"] == "tms"
    assert layer["projection"] == "EPSG:4326" and layer["tiles"] == ["{z}/{x}/{y}.terrain"]
    assert len(layer["available"]) == 15
    assert layer["available"][0] == [{"startX": 0, "startY": 0, "endX": 1, "endY": 0}]
    assert layer["available"][3] == [{"startX": 0, "startY": 0, "endX": 15, "endY": 7}]
    for z in range(4, 15):
        (r,) = layer["available"][z]
        assert r == tile_range(bounds, z)
        _, x, y = geographic_tile(LON0, LAT0, z)
        assert r["startX"] <= x <= r["endX"] and r["startY"] <= y <= r["endY"]
        assert quantized_mesh_tile(hill_dem, z, r["startX"], r["startY"]) is not None
        assert quantized_mesh_tile(hill_dem, z, r["endX"] + 1, r["startY"]) is None


@pytest.mark.browser
def test_cesium_loads_the_terrain_and_samples_the_hill(hill_dem: RasterSource, tmp_path: Path) -> None:
    from tests.browser import browse
    from tests.conftest import REPO
    from tests.static_server import serve

    maxzoom = dem_maxzoom(hill_dem.path)
    layer = layer_json(bounds_wgs84(hill_dem.path), 0, maxzoom, "hill")
    for z, ranges in enumerate(layer["available"]):
        for r in ranges:
            for x in range(r["startX"], r["endX"] + 1):
                for y in range(r["startY"], r["endY"] + 1):
                    (tmp_path / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
                    (tmp_path / str(z) / str(x) / f"{y}.terrain").write_bytes(
                        quantized_mesh_tile(hill_dem, z, x, y) or b""
                    )
    (tmp_path / "layer.json").write_text(json.dumps(layer))
    lon, lat = LON0 + 0.003, LAT0 - 0.002  # on the hill's flank
    expected = float(hill(*TO_GK.transform(lon, lat)))
    mounts = {
        "/cesium": REPO / "node_modules" / "cesium" / "Build" / "Cesium",
        "/page.html": REPO / "tests" / "pages" / "cesium_terrain.html",
        "/terrain": tmp_path,
    }
    with serve(mounts) as base:
        report = browse(f"{base}/page.html?terrain=/terrain/&lon={lon}&lat={lat}")
    result = report["result"]
    assert result["error"] is None and result["failed"] == [], result
    assert not report["failedRequests"] and not report["foreignRequests"], report
    assert abs(result["height"] - expected) < 1.0, (result, expected)
    assert result["tilesLoaded"] and maxzoom in result["levels"], result
    assert result["globeHeight"] is not None and abs(result["globeHeight"] - expected) < 2.0, (result, expected)
