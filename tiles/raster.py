"""Web tiles from stored rasters: imagery (DOM, or a DEM in grey) and Mapbox Terrain-RGB.

What it holds: :class:`RasterSource` (a stored GeoTIFF and its kind), :func:`imagery_tile`,
:func:`terrain_rgb_tile`, :func:`bounds_wgs84` and :func:`pixel_size_m` (used by the
quantized-mesh terrain in :mod:`tiles.terrain`).

Choices:
- Tiling is rio-tiler's: ``rio_tiler.io.Reader(...).tile()`` in morecantile's ``WebMercatorQuad``
  (XYZ, y from the north), which reprojects from the source's own CRS (the stored COG is not
  resampled on import) and picks the COG's overview for the zoom. Nothing here computes a tile
  grid by hand.
- Resampling is bilinear, both for the warp and for the overview read: imagery looks smooth
  when over-zoomed, and heights between DEM posts are interpolated (a nearest-neighbour DEM
  tile would step by the DEM's pixel).
- A tile that does not touch the raster is ``None`` (rio-tiler's ``TileOutsideBounds``; the
  server answers 204/404). Nodata is transparent in PNG and WebP (alpha), black in JPEG; a
  source's ``nodata`` overrides the file's.
- Imagery PNG is written with zlib level 1 (photographs: 4x faster, 10 % bigger; JPEG or WebP
  suit a DOM better); Terrain-RGB keeps the default level (smooth heights compress 40 %).
- A DEM as imagery is a plain greyscale stretched to the DEM's own min/max (read once from
  its smallest overview and cached per file version): a check picture, not a hillshade.
- Terrain-RGB: ``height = -10000 + (R * 65536 + G * 256 + B) * 0.1`` (what deck.gl's
  TerrainLayer reads with ``elevationDecoder`` ``{rScaler: 6553.6, gScaler: 25.6, bScaler:
  0.1, offset: -10000}``), heights rounded to 0.1 m, nodata written as 0 m (a client cannot
  be told "no height" in this encoding). Heights are what the stored DEM holds: ellipsoidal,
  the one vertical datum of the project (the importer converted orthometric DEMs).
- A raster on the CGCS2000 datum (EPSG:4490, 4547 ...) is opened as a ``vrt://`` view whose
  CRS says the null shift to WGS 84 that PROJ would pick anyway (:func:`gdal_path`): the same
  pixels, four times faster, since PROJ no longer searches pivot datums for every tile.
- Files are opened per call (GDAL datasets are not shared between threads); the server's
  own caching (HTTP cache headers, a tile cache) sits above this module.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import morecantile
import numpy as np
import pyproj
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.reader import Options
from rio_tiler.utils import render

WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
WGS84_CRS = CRS.from_epsg(4326)
IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
#: Terrain-RGB: height = OFFSET + value * STEP, value = R * 65536 + G * 256 + B
TERRAIN_RGB_OFFSET = -10000.0
TERRAIN_RGB_STEP = 0.1
_RESAMPLING: Final = "bilinear"
#: metres of a degree of latitude (mean), for rasters stored in geographic coordinates
_METRES_PER_DEGREE = 111_320.0
#: imagery PNG: photographs barely compress; zlib level 1 is 4x faster than the default 6 for 10 % more bytes
_IMAGERY_PNG_ZLEVEL = 1
#: EPSG code of the CGCS2000 datum
_CGCS2000_DATUM = 1043
#: the longest side of the overview read to find a DEM's min/max
_RANGE_SAMPLE = 512


@dataclass(frozen=True)
class RasterSource:
    """A stored raster: ``path`` a (Cloud-Optimized) GeoTIFF in any CRS, ``kind`` "dom" or "dem",
    ``nodata`` overriding the file's own nodata value."""

    path: Path
    kind: str
    nodata: float | None = None


def reader_options(src: RasterSource) -> Options:
    """rio-tiler reader options for ``src``: bilinear resampling, the nodata override."""
    options: Options = {"resampling_method": _RESAMPLING, "reproject_method": _RESAMPLING}
    if src.nodata is not None:
        options["nodata"] = src.nodata
    return options


def gdal_path(path: Path) -> str:
    """What GDAL opens for ``path``: the file itself, or for a raster on the CGCS2000 datum a
    ``vrt://`` view of it whose CRS is the same plus an explicit null shift to WGS 84 (cached per
    file version).

    PROJ has no direct CGCS2000 -> WGS 84 operation, so each transformation it is asked for
    (several per tile: bounds, default transform, warp) searches every pivot datum, 50-130 ms,
    and ends with the "ballpark" null shift. Saying that null shift in the CRS (``+towgs84=0,...``)
    gives the same coordinates at once: a tile from EPSG:4547 takes about 35 ms instead of 150."""
    stat = path.stat()
    return _gdal_path(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _gdal_path(path: str, mtime_ns: int, size: int) -> str:
    if "?" in path or "&" in path:  # not expressible in a vrt:// connection string
        return path
    with rasterio.open(path) as ds:
        if ds.crs is None:
            return path
        crs = pyproj.CRS.from_wkt(ds.crs.to_wkt())
    if not _on_cgcs2000(crs):
        return path
    # a PROJ string, not a BoundCRS WKT: from a WKT PROJ recognises CGCS2000 by name and searches
    # again in the WGS 84 -> CGCS2000 direction (rio-tiler's tile_exists); from this it does not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "may lose information": the datum, said below
        proj4 = crs.to_proj4().replace(" +type=crs", "")
    return f"vrt://{path}?a_srs={proj4} +towgs84=0,0,0,0,0,0,0"


def _on_cgcs2000(crs: pyproj.CRS) -> bool:
    geodetic = crs.geodetic_crs
    if geodetic is None or geodetic.datum is None or crs.is_bound:
        return False
    datum = geodetic.datum.to_json_dict()
    return datum.get("id", {}).get("code") == _CGCS2000_DATUM or datum.get("name") in ("China 2000", "China_2000")


def _in_matrix(z: int, x: int, y: int) -> bool:
    if z < WEB_MERCATOR.minzoom or z > WEB_MERCATOR.maxzoom:
        return False
    matrix = WEB_MERCATOR.matrix(z)
    return 0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight


def read_tile(src: RasterSource, z: int, x: int, y: int, tilesize: int = 256) -> ImageData | None:
    """The XYZ (WebMercatorQuad) tile ``z/x/y`` of ``src`` as rio-tiler image data (masked where
    nodata), or ``None`` when the tile is outside the raster or the tile matrix."""
    if not _in_matrix(z, x, y):
        return None
    with Reader(gdal_path(src.path), tms=WEB_MERCATOR, options=reader_options(src)) as reader:
        try:
            return reader.tile(x, y, z, tilesize=tilesize)
        except TileOutsideBounds:
            return None


def imagery_tile(src: RasterSource, z: int, x: int, y: int, fmt: str = "png", tilesize: int = 256) -> bytes | None:
    """The XYZ tile ``z/x/y`` as an image (``fmt``: a key of :data:`IMAGE_FORMATS`; ValueError
    for another), or ``None`` outside the raster. A DOM keeps its first three bands; a DEM is
    grey, stretched to its min/max."""
    driver = IMAGE_FORMATS.get(fmt)
    if driver is None:
        raise ValueError(f"unknown image format {fmt!r}: one of {', '.join(IMAGE_FORMATS)}")
    img = read_tile(src, z, x, y, tilesize)
    if img is None:
        return None
    if src.kind == "dem":
        data = _grey(img, dem_range(src))
    else:
        data = img.data[:3]
    valid = valid_pixels(img)
    if driver == "JPEG":
        return render(np.where(valid, data, 0).astype(data.dtype), img_format=driver)
    mask = np.where(valid, 255, 0).astype(np.uint8)
    if driver == "PNG":
        return render(data, mask, img_format=driver, ZLEVEL=_IMAGERY_PNG_ZLEVEL)
    return render(data, mask, img_format=driver)


def valid_pixels(img: ImageData) -> np.ndarray:
    """(h, w) bool: where the tile has data (in any band), as rio-tiler's own mask says."""
    return ~np.ma.getmaskarray(img.array).all(axis=0)


def _grey(img: ImageData, height_range: tuple[float, float]) -> np.ndarray:
    lo, hi = height_range
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    heights = img.data[0].astype(np.float64)
    return np.clip(np.round((heights - lo) * scale), 0, 255).astype(np.uint8)[np.newaxis]


def terrain_rgb_tile(src: RasterSource, z: int, x: int, y: int, tilesize: int = 256) -> bytes | None:
    """The XYZ tile ``z/x/y`` of a DEM as a Mapbox Terrain-RGB PNG (0.1 m steps, nodata -> 0 m),
    or ``None`` outside the raster."""
    img = read_tile(src, z, x, y, tilesize)
    if img is None:
        return None
    heights = np.where(valid_pixels(img), img.data[0].astype(np.float64), 0.0)
    return render(encode_terrain_rgb(heights), img_format="PNG")


def encode_terrain_rgb(heights: np.ndarray) -> np.ndarray:
    """(3, h, w) uint8 Terrain-RGB bands of ``heights`` (metres, (h, w)), clipped to the encoding's range."""
    value = np.clip(np.round((heights - TERRAIN_RGB_OFFSET) / TERRAIN_RGB_STEP), 0, 2**24 - 1).astype(np.uint32)
    return np.stack([(value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF]).astype(np.uint8)


def bounds_wgs84(path: Path) -> tuple[float, float, float, float]:
    """The raster's extent in WGS84 lon/lat (west, south, east, north), its edges densified."""
    with rasterio.open(path) as ds:
        west, south, east, north = transform_bounds(ds.crs, WGS84_CRS, *ds.bounds, densify_pts=21)
    return (west, south, east, north)


def pixel_size_m(path: Path) -> float:
    """The raster's pixel size in metres (the finer of its two axes; degrees converted at its centre)."""
    with rasterio.open(path) as ds:
        xres, yres = abs(ds.transform.a), abs(ds.transform.e)
        if ds.crs.is_geographic:
            lat = (ds.bounds.bottom + ds.bounds.top) / 2
            return min(xres * math.cos(math.radians(lat)), yres) * _METRES_PER_DEGREE
        factor = ds.crs.linear_units_factor[1] if ds.crs.linear_units_factor else 1.0
        return min(xres, yres) * float(factor)


def dem_range(src: RasterSource) -> tuple[float, float]:
    """A DEM's (min, max) height over its valid pixels, from its smallest overview (cached per file version)."""
    stat = src.path.stat()
    return _dem_range(str(src.path), stat.st_mtime_ns, stat.st_size, src.nodata)


@functools.lru_cache(maxsize=64)
def _dem_range(path: str, mtime_ns: int, size: int, nodata: float | None) -> tuple[float, float]:
    with rasterio.open(path) as ds:
        shrink = max(1, math.ceil(max(ds.width, ds.height) / _RANGE_SAMPLE))
        shape = (max(1, ds.height // shrink), max(1, ds.width // shrink))
        band = ds.read(1, out_shape=shape, masked=True)
    if nodata is not None:
        band = np.ma.masked_equal(band, nodata)
    if band.count() == 0:
        return (0.0, 0.0)
    return (float(band.min()), float(band.max()))
