"""Quantized-mesh terrain for CesiumJS from a stored DEM: tiles and ``layer.json``.

What it holds: :func:`quantized_mesh_tile` (one ``.terrain`` tile, quantized-mesh-1.0,
uncompressed), :func:`layer_json` (the tileset's metadata with its availability),
:func:`tile_bounds` (a TMS tile's lon/lat rectangle) and :func:`dem_maxzoom`.

Choices:
- The tiling is CesiumJS's geographic scheme: morecantile's ``WGS1984Quad`` (2 x 1 tiles at
  level 0), with y counted from the south as ``layer.json`` says (``"scheme": "tms"``).
- Heights are sampled by rio-tiler (``Reader.part`` in EPSG:4326, bilinear) on a
  (2^k + 1)-square grid whose outer posts lie exactly on the tile's edges, so two neighbours
  sample the very same points along the edge they share. k depends on the zoom and the DEM's
  pixel size only (never on the tile's latitude), so neighbours always use the same grid:
  posts about one DEM pixel apart, 16 to 256 cells a side. Only the part of the grid over the
  DEM is read; posts outside the DEM (or on nodata) are 0 m: levels 0-3 cover the world, and
  a tile half on the DEM is flat where it has no data.
- From level 8 down, the grid is meshed by pydelatin (Delaunay refinement to ``max_error``
  metres; default 1/8 of the tile's ground resolution as a 256-pixel tile, about CesiumJS's
  own geometric error for the level / 8: 0.6 m at level 14, 0.3 m at 15). A tile of levels
  0-7 spans degrees and CesiumJS draws triangles as flat chords, so those tiles are a regular
  17 x 17 grid (as CesiumJS's own ellipsoid terrain), which follows the curve of the Earth.
- Encoding uses quantized_mesh_encoder's pieces (ECEF, bounding sphere, header, vertex,
  index and edge writers) fed with exact values, not its one-call ``encode``: that rounds
  positions to float32 (half a metre of longitude here, which moves edge vertices off the
  edges and skews u/v) and its horizon occlusion point is in metres, not in CesiumJS's scaled
  space (kylebarron/quantized-mesh-encoder#74: tiles culled wrongly). So u/v come from the
  grid's integer posts (edges exactly 0 and 32767), the header from float64 lon/lat/height,
  the bounding sphere is the encoder's "naive" one (box centre, farthest vertex) and the
  occlusion point is CesiumJS's own algorithm. Vertices are renumbered in order of first use
  (what high-water-mark index coding assumes) and triangles turned counter-clockwise in
  (u, v) (CesiumJS culls the globe's back faces).
- ``available`` in ``layer.json``: levels 0 to 3 over the whole world (CesiumJS needs the
  whole root level, and refines the globe's outline from these 22.5-degree tiles), then every
  level from 4 to ``maxzoom`` over the DEM's extent; CesiumJS upsamples the rest from their
  parents. :func:`quantized_mesh_tile` answers ``None`` for a tile of level >= 4 outside the
  DEM's extent, so the server's 404s match the availability it published.
- No extensions (vertex normals, water mask, metadata) are written or announced: CesiumJS
  then asks with ``Accept: application/vnd.quantized-mesh,application/octet-stream;q=0.9,*/*;q=0.01``.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
from pydelatin import Delatin
from quantized_mesh_encoder import WGS84 as QM_WGS84
from quantized_mesh_encoder.bounding_sphere import bounding_sphere
from quantized_mesh_encoder.ecef import to_ecef
from quantized_mesh_encoder.encode import encode_header, write_edge_indices, write_indices, write_vertices
from rio_tiler.io import Reader

from tiles.raster import (
    WEB_MERCATOR,
    WGS84_CRS,
    RasterSource,
    bounds_wgs84,
    pixel_size_m,
    reader_options,
    valid_pixels,
)

GEOGRAPHIC = morecantile.tms.get("WGS1984Quad")
#: pole-to-pole length of a meridian on the WGS 84 ellipsoid (metres): the N-S extent of level 0
_MERIDIAN_M = 20_003_931.46
_QUANT = 32767
#: levels 0..this one are available over the whole world (flat off the DEM): CesiumJS refines the
#: globe from them; deeper levels are available over the DEM only
_WORLD_LEVELS = 3
#: levels above this one (tiles of more than ~0.7 degrees) get a regular grid, not a TIN
_TIN_FROM_LEVEL = 8
_REGULAR_CELLS = 16
_MIN_CELLS, _MAX_CELLS = 16, 256
#: max_error default: this fraction of the ground resolution of the tile as 256 pixels
_ERROR_FRACTION = 1 / 8
#: keep vertex counts below 65,536 (16-bit indices: CesiumJS and the encoder agree there)
_MAX_POINTS = 65_000

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Dem:
    bounds: Bounds  # WGS84 lon/lat
    pixel_m: float


def _dem(path: Path) -> _Dem:
    stat = path.stat()
    return _dem_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _dem_cached(path: str, mtime_ns: int, size: int) -> _Dem:
    return _Dem(bounds_wgs84(Path(path)), pixel_size_m(Path(path)))


def tile_bounds(z: int, x: int, y: int) -> Bounds | None:
    """(west, south, east, north) degrees of the TMS tile ``z/x/y`` (y from the south) of the
    geographic scheme, or ``None`` when there is no such tile."""
    if z < 0 or z > GEOGRAPHIC.maxzoom:
        return None
    matrix = GEOGRAPHIC.matrix(z)
    if not (0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight):
        return None
    b = GEOGRAPHIC.bounds(morecantile.Tile(x, matrix.matrixHeight - 1 - y, z))
    return (b.left, b.bottom, b.right, b.top)


def tile_range(bounds: Bounds, z: int) -> dict[str, int]:
    """The TMS tiles of level ``z`` over ``bounds`` (lon/lat) as a layer.json range (startX, startY, endX, endY)."""
    west, south, east, north = bounds
    eps = 1e-9
    height = GEOGRAPHIC.matrix(z).matrixHeight
    nw = GEOGRAPHIC.tile(west + eps, north - eps, z)
    se = GEOGRAPHIC.tile(max(west + eps, east - eps), min(north - eps, south + eps), z)
    return {"startX": nw.x, "startY": height - 1 - se.y, "endX": se.x, "endY": height - 1 - nw.y}


def _available(bounds: Bounds, z: int, x: int, y: int) -> bool:
    if z <= _WORLD_LEVELS:
        return True
    r = tile_range(bounds, z)
    return r["startX"] <= x <= r["endX"] and r["startY"] <= y <= r["endY"]


def layer_json(
    bounds: Bounds, minzoom: int, maxzoom: int, name: str, tiles_template: str = "{z}/{x}/{y}.terrain"
) -> dict[str, Any]:
    """CesiumJS's ``layer.json`` for a DEM of extent ``bounds`` (lon/lat): quantized-mesh-1.0,
    TMS, EPSG:4326; ``available`` lists levels 0 to 3 whole, then levels 4..``maxzoom`` over
    ``bounds`` (``minzoom`` is recorded as metadata: CesiumJS needs every level from 0)."""
    world = [[{"startX": 0, "startY": 0, "endX": 2 ** (z + 1) - 1, "endY": 2**z - 1}] for z in range(_WORLD_LEVELS + 1)]
    available = world[: maxzoom + 1] + [[tile_range(bounds, z)] for z in range(_WORLD_LEVELS + 1, maxzoom + 1)]
    return {
        "tilejson": "2.1.0",
        "name": name,
        "description": "",
        "version": "1.0.0",
        "format": "quantized-mesh-1.0",
        "attribution": "",
        "scheme": "tms",
        "projection": "EPSG:4326",
        "tiles": [tiles_template],
        "bounds": list(bounds),
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "available": available,
    }


def dem_maxzoom(path: Path) -> int:
    """The first zoom whose ground resolution (a 256-pixel WebMercatorQuad tile at the DEM's centre
    latitude) reaches the DEM's pixel size. A geographic tile of the same level is at least as
    fine (its sampling grid has posts about one DEM pixel apart), so it serves both schemes."""
    dem = _dem(path)
    lat = (dem.bounds[1] + dem.bounds[3]) / 2
    mercator_res = dem.pixel_m / math.cos(math.radians(lat))
    return WEB_MERCATOR.zoom_for_res(mercator_res, zoom_level_strategy="upper")


def _cells(z: int, pixel_m: float) -> int:
    if z < _TIN_FROM_LEVEL:
        return _REGULAR_CELLS
    wanted = _MERIDIAN_M / 2**z / pixel_m
    return int(min(_MAX_CELLS, max(_MIN_CELLS, 2 ** math.ceil(math.log2(max(wanted, 1.0))))))


def default_max_error(z: int) -> float:
    """pydelatin's max_error (metres) for level ``z`` when none is given."""
    return _MERIDIAN_M / 2**z / 256 * _ERROR_FRACTION


def sample_heights(src: RasterSource, bounds: Bounds, cells: int) -> np.ndarray:
    """Heights (``cells + 1`` square, row 0 north) on the grid whose outer posts lie on ``bounds``'
    edges; 0 m where the DEM has no data or does not reach."""
    west, south, east, north = bounds
    dx, dy = (east - west) / cells, (north - south) / cells
    heights = np.zeros((cells + 1, cells + 1), dtype=np.float64)
    dw, ds, de, dn = _dem(src.path).bounds
    i0, i1 = max(0, math.floor((dw - west) / dx)), min(cells, math.ceil((de - west) / dx))
    j0, j1 = max(0, math.floor((north - dn) / dy)), min(cells, math.ceil((north - ds) / dy))
    if i0 > i1 or j0 > j1:
        return heights
    # pixels centred on the posts: the read box reaches half a post spacing past them
    box = (west + (i0 - 0.5) * dx, north - (j1 + 0.5) * dy, west + (i1 + 0.5) * dx, north - (j0 - 0.5) * dy)
    # the file itself, not raster.gdal_path's vrt:// view: PROJ goes from CGCS2000 to lon/lat at once,
    # and the view would cost more (~6 ms) than it saves here
    with Reader(str(src.path), options=reader_options(src)) as reader:
        img = reader.part(
            box,
            dst_crs=WGS84_CRS,
            bounds_crs=WGS84_CRS,
            width=i1 - i0 + 1,
            height=j1 - j0 + 1,
            max_size=None,
            indexes=1,
        )
    heights[j0 : j1 + 1, i0 : i1 + 1] = np.where(valid_pixels(img), img.data[0], 0.0)
    return heights


def _regular_mesh(heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (col, row, height) and two triangles per cell of the whole grid."""
    n = heights.shape[0]
    rows, cols = np.mgrid[0:n, 0:n]
    vertices = np.column_stack([cols.ravel(), rows.ravel(), heights.ravel()]).astype(np.float64)
    corner = (rows[:-1, :-1] * n + cols[:-1, :-1]).ravel()
    triangles = np.concatenate(
        [np.column_stack([corner, corner + n, corner + 1]), np.column_stack([corner + 1, corner + n, corner + n + 1])]
    )
    return vertices, triangles.astype(np.int64)


def _tin_mesh(heights: np.ndarray, max_error: float) -> tuple[np.ndarray, np.ndarray]:
    """pydelatin's TIN of the grid: vertices (col, row, height) and triangles."""
    tin = Delatin(heights.astype(np.float32), max_error=max_error, max_points=_MAX_POINTS)
    vertices = tin.vertices.astype(np.float64)
    vertices[:, 1] = heights.shape[0] - 1 - vertices[:, 1]  # pydelatin's y counts from the last row
    return vertices, tin.triangles.astype(np.int64)


def _counter_clockwise(uv: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (uv[triangles[:, k]] for k in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    out = triangles.copy()
    flip = cross < 0
    out[flip, 1], out[flip, 2] = triangles[flip, 2], triangles[flip, 1]
    return out


def _first_use_order(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber vertices in order of first use in ``triangles`` (unused vertices dropped)."""
    flat = triangles.ravel()
    _, first = np.unique(flat, return_index=True)
    order = flat[np.sort(first)]
    new_index = np.empty(len(vertices), dtype=np.int64)
    new_index[order] = np.arange(len(order))
    return vertices[order], new_index[triangles]


def mesh_header(positions: np.ndarray) -> dict[str, float]:
    """The quantized-mesh header of ``positions`` ((n, 3) lon, lat, ellipsoidal height; float64):
    centre, height range, bounding sphere (quantized_mesh_encoder's "naive" one) and CesiumJS's
    horizon occlusion point."""
    ecef = to_ecef(positions)
    centre = (ecef.min(axis=0) + ecef.max(axis=0)) / 2
    sphere_centre, radius = bounding_sphere(ecef, method="naive")
    occlusion = horizon_occlusion_point(ecef, np.asarray(sphere_centre, dtype=np.float64), float(positions[:, 2].min()))
    header = {f"center{a}": float(v) for a, v in zip("XYZ", centre)}
    header |= {"minimumHeight": float(positions[:, 2].min()), "maximumHeight": float(positions[:, 2].max())}
    header |= {f"boundingSphereCenter{a}": float(v) for a, v in zip("XYZ", sphere_centre)}
    header["boundingSphereRadius"] = float(radius)
    header |= {f"horizonOcclusionPoint{a}": float(v) for a, v in zip("XYZ", occlusion)}
    return header


def horizon_occlusion_point(ecef: np.ndarray, direction: np.ndarray, min_height: float) -> np.ndarray:
    """CesiumJS's horizon culling point of ``ecef`` along ``direction``, in the scaled space of the
    ellipsoid shrunk by ``min_height`` when negative (``EllipsoidalOccluder.
    computeHorizonCullingPointPossiblyUnderEllipsoid``); NaN where it has none (a tile spanning a
    hemisphere), which CesiumJS takes as "never below the horizon".

    quantized_mesh_encoder's own point is not used: it is returned in metres, not in scaled space,
    and along an unnormalised direction (kylebarron/quantized-mesh-encoder#74)."""
    radii = np.array([QM_WGS84.a, QM_WGS84.a, QM_WGS84.b]) + min(min_height, 0.0)
    towards = direction / radii
    towards /= np.linalg.norm(towards)
    scaled = ecef / radii
    mag2 = np.einsum("ij,ij->i", scaled, scaled)
    unit = scaled / np.sqrt(mag2)[:, np.newaxis]
    mag2 = np.maximum(mag2, 1.0)
    mag = np.sqrt(mag2)
    cos_a = unit @ towards
    sin_a = np.linalg.norm(np.cross(unit, towards), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitudes = 1.0 / (cos_a / mag - sin_a * np.sqrt(mag2 - 1.0) / mag)
    biggest = float(magnitudes.max())
    if np.any(magnitudes < 0) or not math.isfinite(biggest) or biggest <= 0:
        return np.full(3, np.nan)
    return towards * biggest


def encode_mesh(vertices: np.ndarray, triangles: np.ndarray, bounds: Bounds, cells: int) -> bytes:
    """A quantized-mesh-1.0 tile of ``vertices`` (grid col, row from the north, height m) and
    ``triangles`` over the tile ``bounds`` whose grid has ``cells`` cells a side."""
    west, south, east, north = bounds
    fx = vertices[:, 0] / cells
    fy = 1.0 - vertices[:, 1] / cells
    uv = np.column_stack([np.rint(fx * _QUANT), np.rint(fy * _QUANT)])
    vertices, triangles = _first_use_order(np.column_stack([vertices, uv]), _counter_clockwise(uv, triangles))
    fx, fy, h, uv = vertices[:, 0] / cells, 1.0 - vertices[:, 1] / cells, vertices[:, 2], vertices[:, 3:5]
    positions = np.column_stack([west + fx * (east - west), south + fy * (north - south), h])
    lo, hi = float(h.min()), float(h.max())
    hq = np.rint((h - lo) / (hi - lo) * _QUANT) if hi > lo else np.zeros_like(h)
    quantized = np.column_stack([uv, hq]).astype(np.int16)
    count = len(quantized)
    out = io.BytesIO()
    encode_header(out, mesh_header(positions))
    write_vertices(out, quantized, count)
    write_indices(out, triangles.astype(np.uint32), count)
    write_edge_indices(out, quantized, count)
    return out.getvalue()


def quantized_mesh_tile(src: RasterSource, z: int, x: int, y: int, max_error: float | None = None) -> bytes | None:
    """The quantized-mesh-1.0 tile ``z/x/y`` (TMS, geographic scheme) of the DEM ``src``, not
    compressed; ``None`` for a tile that is not in the published availability (no such tile,
    or level >= 4 outside the DEM's extent). ``max_error``: pydelatin's, metres."""
    bounds = tile_bounds(z, x, y)
    if bounds is None:
        return None
    dem = _dem(src.path)
    if not _available(dem.bounds, z, x, y):
        return None
    cells = _cells(z, dem.pixel_m)
    heights = sample_heights(src, bounds, cells)
    if z < _TIN_FROM_LEVEL:
        vertices, triangles = _regular_mesh(heights)
    else:
        vertices, triangles = _tin_mesh(heights, default_max_error(z) if max_error is None else max_error)
    return encode_mesh(vertices, triangles, bounds, cells)
