"""The sample's terrain (DEM) and orthophoto (DOM): generated, not surveyed.

``dem.tif``: heights in metres above the geoid (orthometric, as a Chinese DEM in the 1985
national height datum is; the importer converts them to ellipsoidal heights), float32,
10 m pixels over the district and a 500 m margin. The relief is a smooth sum of Gaussian
hills placed on the real ones (the 塘朗山-梅林山-银湖山 ridge along the north, 笔架山,
莲花山, 安托山 and the parks), a city rising gently from the water to the south (0.3 m)
through the coast (1-3 m) to 15-20 m inland, and small seeded noise (rougher on the hills).

``dom.tif``: an orthophoto-like rendering of the sample's own layers (RGB, uint8): the
street lattices' plots (paving, lawn or trees), lanes along their edges and roads along the
street blocks', the buildings' roofs (colours by use) and their shadows (the sun in the
south-south-east, 60° up), forest on the hills, lawns and tree clumps in the parks,
mangroves and wetland along the coast, striped farmland, water to the south, all shaded by
the DEM's hillshade. Small scale: 2 m pixels over the small sample's buildings and 300 m
around them; full scale: 0.5 m pixels over the whole district's bounding box (about 1.4 GB
uncompressed), rendered and written window by window.

Both are plain tiled GeoTIFFs in EPSG:4547 (not COGs: the importer makes those), labelled
as generated (``TIFFTAG_IMAGEDESCRIPTION``). The same scene and seed give the same pixels:
every random draw comes from ``params.rng(seed, "rasters")``, and the DOM's textures are
hashes of world coordinates, so they do not depend on how the image is cut into windows (on
2 m boundaries). Each file is written under a temporary name and then renamed: a file by the
final name is whole.

rasterio is imported inside the functions that need it: importing the package does not load it.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples import names
from cim.samples.futian.buildings import Buildings
from cim.samples.futian.geometry import lonlat_box, lonlat_to_metric
from cim.samples.futian.landcover import LandCover
from cim.samples.futian.lattice import Cells
from cim.samples.futian.params import METRIC_CRS, SCALES, Scale, rng
from cim.samples.futian.write import Core, build_core

if TYPE_CHECKING:
    from affine import Affine

DESCRIPTION = "generated for the cim-twin sample; not a real survey"
DEM_FILE = "dem.tif"
DOM_FILE = "dom.tif"
DEM_PIXEL_M = 10.0
DEM_MARGIN_M = 500.0
DEM_NODATA = -9999.0
DOM_PIXEL_M: dict[str, float] = {"small": 2.0, "full": 0.5}
DOM_MARGIN_M = 300.0  # around the small sample's buildings (the full DOM covers the district's bounding box)
TILE_PX = 512  # GeoTIFF tiles
WINDOW_PX = 2048  # the DOM is rendered and written this many pixels square at a time
SUN_AZIMUTH_DEG = 150.0  # clockwise from north: a mid-morning sun; shadows fall north-north-west
SUN_ELEVATION_DEG = 60.0
WATER_HEIGHT_M = 0.3
RIVER_WIDTH_M = 110.0  # the Shenzhen River along the district's southern edge
#: Shenzhen Bay (the south-west): water here reaches the extent's edge, not just a river's width
BAY_LONLAT = (113.95, 22.45, 114.032, 22.522)
RIVER_LONLAT = (114.032, 22.45, 114.2, 22.545)  # where the river runs
LANE_HALF_WIDTH_M = 1.5  # lanes along every plot's edges: 3 m between neighbouring plots
ROAD_HALF_WIDTH_M = 6.0  # roads along every street block's edges: 12 m


@dataclass(frozen=True)
class Hill:
    """A Gaussian hill: its top ``height_m`` above the geoid (``absolute``; neighbours and noise
    add a few metres) or ``height_m`` above the ground around it; ``sigma_m`` along and across
    its long axis, which points ``angle`` radians north of east."""

    name: str
    lonlat: tuple[float, float]
    height_m: float
    sigma_m: tuple[float, float]
    angle: float = 0.0
    absolute: bool = True


#: the relief (the ridge first: the hills' heights are reached on top of it)
RELIEF: tuple[Hill, ...] = (
    Hill("北部山脊", (114.040, 22.5965), 110.0, (4200.0, 650.0), 0.02, absolute=False),
    Hill("塘朗山", (113.990, 22.5935), 400.0, (1100.0, 480.0), 0.12),
    Hill("梅林山", (114.042, 22.5870), 360.0, (620.0, 330.0), 0.08),
    Hill("银湖山", (114.089, 22.5800), 300.0, (520.0, 300.0), 0.35),
    Hill("笔架山", (114.0775, 22.5660), 150.0, (370.0, 240.0), 0.45),
    Hill("莲花山", (114.0570, 22.5555), 106.0, (290.0, 245.0), 0.2),
    Hill("安托山", (114.0120, 22.5560), 80.0, (200.0, 160.0), -0.3),
    Hill("中心公园", (114.0770, 22.5450), 6.0, (140.0, 60.0), 1.5, absolute=False),
    Hill("香蜜公园", (114.0275, 22.5480), 5.0, (120.0, 90.0), 0.0, absolute=False),
)

# DOM ground classes, in the order they are painted (a later one covers an earlier one)
OUTSIDE, URBAN, WATER, PAVING, LAWN, TREES, LANE, ROAD, FOREST, PARK, MANGROVE, WETLAND, FARM = range(13)
_PALETTE = np.array(
    [
        (124, 126, 116),  # OUTSIDE: the neighbouring districts, muted
        (140, 138, 132),  # URBAN: ground between the lattices, village alleys
        (54, 84, 100),  # WATER
        (180, 176, 166),  # PAVING
        (120, 148, 88),  # LAWN
        (74, 106, 62),  # TREES
        (114, 114, 112),  # LANE
        (86, 87, 90),  # ROAD
        (62, 96, 56),  # FOREST
        (124, 150, 90),  # PARK (lawn; tree clumps get FOREST's colour)
        (46, 84, 58),  # MANGROVE
        (98, 120, 86),  # WETLAND
        (152, 170, 98),  # FARM (every other strip: _FARM_B)
    ],
    dtype=np.float32,
)
_FARM_B = np.array((178, 166, 120), dtype=np.float32)
_FARM_B_INDEX = len(_PALETTE)  # in DomPainter.colours: the palette, _FARM_B, then each roof's colour
_ROOF_INDEX = _FARM_B_INDEX + 1
_CROWN_AMP = np.zeros(len(_PALETTE), np.float32)  # tree-crown texture: relative brightness swing
_CROWN_AMP[[TREES, FOREST, PARK, MANGROVE]] = (0.45, 0.5, 0.35, 0.4)
_CROWN_AMP[[LAWN, WETLAND, FARM]] = (0.1, 0.2, 0.08)
_GRAIN = np.full(len(_PALETTE), 8.0, np.float32)  # per-pixel grain: grey levels
_GRAIN[WATER] = 2.0
SHADOW_FACTOR = 0.55
ROOF_EDGE_FACTOR = 0.8

_ROOFS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "住宅": ((214, 208, 196), (196, 192, 186), (226, 220, 206), (190, 172, 152), (204, 205, 210), (172, 168, 160)),
    "商业": ((200, 200, 204), (184, 190, 198), (218, 214, 206), (160, 164, 170)),
    "办公": ((170, 180, 192), (150, 160, 174), (196, 200, 206), (210, 206, 198), (132, 146, 160)),
    "商住混合": ((206, 200, 190), (186, 188, 192), (216, 210, 200), (176, 170, 164)),
    "工业": ((150, 176, 202), (128, 160, 192), (172, 178, 186), (200, 200, 196)),
    "教育": ((206, 196, 180), (188, 112, 94), (200, 186, 164)),
    "医疗": ((214, 214, 214), (196, 200, 204), (200, 190, 176)),
    "公共服务": ((204, 198, 186), (178, 184, 190), (190, 120, 100)),
    "酒店": ((212, 206, 196), (180, 186, 196), (196, 190, 180)),
    "村": ((172, 162, 152), (150, 142, 134), (184, 124, 104), (162, 162, 160), (196, 190, 182)),
}


# --- grids ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid in EPSG:4547: top-left corner (x0, y1), square pixels."""

    x0: float
    y1: float
    pixel: float
    width: int
    height: int

    @staticmethod
    def around(bounds: tuple[float, float, float, float], pixel: float, margin: float = 0.0) -> Grid:
        """The grid of pixel-aligned pixels covering bounds grown by margin."""
        x0 = math.floor((bounds[0] - margin) / pixel) * pixel
        y0 = math.floor((bounds[1] - margin) / pixel) * pixel
        x1 = math.ceil((bounds[2] + margin) / pixel) * pixel
        y1 = math.ceil((bounds[3] + margin) / pixel) * pixel
        return Grid(x0, y1, pixel, round((x1 - x0) / pixel), round((y1 - y0) / pixel))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y1 - self.height * self.pixel, self.x0 + self.width * self.pixel, self.y1)

    @property
    def transform(self) -> Affine:
        from affine import Affine  # rasterio's

        return Affine(self.pixel, 0.0, self.x0, 0.0, -self.pixel, self.y1)

    def xs(self) -> np.ndarray:
        """Pixel centres' x, (width,)."""
        return self.x0 + (np.arange(self.width) + 0.5) * self.pixel

    def ys(self) -> np.ndarray:
        """Pixel centres' y, (height,), north to south."""
        return self.y1 - (np.arange(self.height) + 0.5) * self.pixel

    def box(self) -> BaseGeometry:
        return shapely.box(*self.bounds)

    def window(self, col_off: int, row_off: int, width: int, height: int) -> Grid:
        """The sub-grid of pixels [row_off, row_off + height) x [col_off, col_off + width)."""
        return Grid(self.x0 + col_off * self.pixel, self.y1 - row_off * self.pixel, self.pixel, width, height)

    def windows(self, size: int = WINDOW_PX) -> Iterator[tuple[int, int, Grid]]:
        """(col_off, row_off, sub-grid) of size x size windows, row by row."""
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield col, row, self.window(col, row, min(size, self.width - col), min(size, self.height - row))


def _bilinear(values: np.ndarray, src: Grid, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """values (on src's pixel centres) sampled bilinearly at the points xs x ys, (len(ys), len(xs));
    clamped at src's edges."""
    fc = np.clip((xs - src.x0) / src.pixel - 0.5, 0.0, src.width - 1.0)
    fr = np.clip((src.y1 - ys) / src.pixel - 0.5, 0.0, src.height - 1.0)
    c0, r0 = np.minimum(fc.astype(np.int64), src.width - 2), np.minimum(fr.astype(np.int64), src.height - 2)
    wx, wy = (fc - c0).astype(np.float32), (fr - r0).astype(np.float32)[:, None]
    top, bottom = values[r0], values[r0 + 1]
    upper = top[:, c0] * (1.0 - wx) + top[:, c0 + 1] * wx
    lower = bottom[:, c0] * (1.0 - wx) + bottom[:, c0 + 1] * wx
    return upper * (1.0 - wy) + lower * wy


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def _lattice_sample(lattice: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Smooth (smoothstep-weighted bilinear) interpolation of lattice at lattice coordinates
    gx (columns, (w,)) x gy (rows, (h,)), both >= 0; (h, w) float32. Rows first (on the small
    lattice), then columns: two gathers of the output's size."""
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx = _smoothstep(gx - ix).astype(np.float32)
    fy = _smoothstep(gy - iy).astype(np.float32)[:, None]
    rows = lattice[iy] * (1.0 - fy) + lattice[iy + 1] * fy  # (h, nx)
    out = rows[:, ix]
    out *= 1.0 - fx
    out += rows[:, ix + 1] * fx
    return out


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A uniform [0, 1) value per integer pair (broadcast), the same wherever it is computed."""
    h = (ix.astype(np.int64) * 0x27D4EB2F + iy.astype(np.int64) * 0x165667B1 + salt) & 0xFFFFFFFF
    h = h.astype(np.uint32)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h.astype(np.float32) * np.float32(2.0**-32)


def _world_noise(xs: np.ndarray, ys: np.ndarray, spacing: float, salt: int) -> np.ndarray:
    """Value noise in [0, 1] on a world-aligned lattice of spacing metres, at xs x ys, (h, w)."""
    gx, gy = xs / spacing, ys / spacing
    bx, by = math.floor(float(gx.min())), math.floor(float(gy.min()))
    nx, ny = math.floor(float(gx.max())) - bx + 2, math.floor(float(gy.max())) - by + 2
    lattice = _hash01(np.arange(bx, bx + nx)[None, :], np.arange(by, by + ny)[:, None], salt)
    return _lattice_sample(lattice, gx - bx, gy - by)


# --- the scene -------------------------------------------------------------------------------


@dataclass
class Scene:
    """What the rasters are made of (metric): the district, its land cover, the street lattices'
    plots and blocks (rectangles as :class:`Cells`) and the sample's (first-survey) buildings."""

    boundary: BaseGeometry
    land: LandCover
    plots: Cells
    blocks: Cells
    buildings: Buildings

    @staticmethod
    def from_core(core: Core) -> Scene:
        return Scene(core.admin.boundary, core.land, core.road_cells, core.blocks.rect, core.buildings)

    @staticmethod
    def build(scale: Scale = "small", seed: int = 42) -> Scene:
        """Rebuild the sample's scene from its scale and seed (what :func:`generate` makes; 1-2 s)."""
        return Scene.from_core(build_core(scale, seed))


def dem_grid(boundary: BaseGeometry) -> Grid:
    """The DEM's grid: the district's bounding box and DEM_MARGIN_M, DEM_PIXEL_M pixels."""
    return Grid.around(boundary.bounds, DEM_PIXEL_M, DEM_MARGIN_M)


def dom_grid(scene: Scene, scale: Scale) -> Grid:
    """The DOM's grid: the small sample's buildings and DOM_MARGIN_M around them (2 m pixels), or
    the whole district's bounding box (0.5 m pixels)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    pixel = DOM_PIXEL_M[scale]
    if scale == "small":
        return Grid.around(tuple(shapely.total_bounds(scene.buildings.geometry)), pixel, DOM_MARGIN_M)
    return Grid.around(scene.boundary.bounds, pixel)


def water_area(boundary: BaseGeometry, extent: BaseGeometry) -> BaseGeometry:
    """The water south of the district within extent: the Shenzhen River (RIVER_WIDTH_M wide)
    along its southern edge (within RIVER_LONLAT) and Shenzhen Bay to the south-west
    (BAY_LONLAT). "South of" is the district swept southwards (each edge of its outline swept
    down), less the district."""
    drop = np.array([0.0, extent.bounds[3] - extent.bounds[1] + boundary.bounds[3] - boundary.bounds[1]])
    quads = []
    for polygon in shapely.get_parts(boundary):
        ring = np.asarray(shapely.get_coordinates(shapely.get_exterior_ring(polygon)))
        a, b = ring[:-1], ring[1:]
        keep = np.abs(b[:, 0] - a[:, 0]) > 1e-6
        a, b = a[keep], b[keep]
        swept = shapely.polygons(np.stack([a, b, b - drop, a - drop], axis=1))
        assert isinstance(swept, np.ndarray)  # (n, 4, 2) coordinates: n polygons
        quads.append(swept)
    south = shapely.difference(shapely.union_all(np.concatenate(quads)), boundary)
    river = shapely.intersection(shapely.buffer(boundary, RIVER_WIDTH_M), lonlat_box(*RIVER_LONLAT))
    water = shapely.intersection(shapely.intersection(south, shapely.union(river, lonlat_box(*BAY_LONLAT))), extent)
    return shapely.buffer(shapely.buffer(water, -15.0), 15.0)  # no slivers along the outline's steep edges


# --- the DEM ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dem:
    """Heights (float32, metres above the geoid) on a grid and their relative illumination
    (``shade``: 1 on flat ground, under the sun of SUN_AZIMUTH_DEG / SUN_ELEVATION_DEG)."""

    grid: Grid
    height: np.ndarray
    shade: np.ndarray
    water: BaseGeometry  # :func:`water_area` over the grid


def _lattice_noise(grid: Grid, spacing: float, gen: np.random.Generator) -> np.ndarray:
    """Value noise in [-0.5, 0.5] with a lattice of spacing metres over grid, (h, w)."""
    span_x, span_y = grid.width * grid.pixel, grid.height * grid.pixel
    lattice = gen.random((math.ceil(span_y / spacing) + 2, math.ceil(span_x / spacing) + 2)).astype(np.float32)
    gx = (grid.xs() - grid.x0) / spacing
    gy = (grid.y1 - grid.ys()) / spacing
    return _lattice_sample(lattice, gx, gy) - 0.5


def _gaussian(hill: Hill, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """exp(-r^2/2) of the hill's anisotropic distance r at xs x ys (broadcast (h, 1) x (1, w))."""
    cx, cy = lonlat_to_metric(*hill.lonlat)[0]
    dx, dy = xs - cx, ys - cy
    c, s = math.cos(hill.angle), math.sin(hill.angle)
    along, across = (c * dx + s * dy) / hill.sigma_m[0], (-s * dx + c * dy) / hill.sigma_m[1]
    return np.exp(-0.5 * (along * along + across * across))


def _hillshade(height: np.ndarray, pixel: float) -> np.ndarray:
    """Lambertian illumination relative to flat ground (1.0), clipped to [0.3, 1.4]."""
    gy, gx = np.gradient(height.astype(np.float64), pixel)  # rows run south: d/dnorth = -gy
    az, el = math.radians(SUN_AZIMUTH_DEG), math.radians(SUN_ELEVATION_DEG)
    sun = (math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el))
    lit = (-gx * sun[0] + gy * sun[1] + sun[2]) / np.sqrt(gx * gx + gy * gy + 1.0)
    return np.clip(lit / sun[2], 0.3, 1.4).astype(np.float32)


def make_dem(boundary: BaseGeometry, gen: np.random.Generator) -> Dem:
    """The sample's DEM (see the module docstring). Draws from gen in a fixed order."""
    grid = dem_grid(boundary)
    water = water_area(boundary, grid.box())
    # distance to the water on a 100 m grid, then bilinear: the ground rises from the shore
    coarse = Grid.around(grid.bounds, 100.0)
    cx, cy = np.meshgrid(coarse.xs(), coarse.ys())
    far = shapely.distance(shapely.points(cx.ravel(), cy.ravel()), water).reshape(cx.shape)
    xs, ys = grid.xs(), grid.ys()
    shore = _bilinear(far.astype(np.float32), coarse, xs, ys)
    inland = np.clip(shore / 4500.0, 0.0, 1.0) ** 0.8
    coast = np.clip(shore / 40.0, 0.0, 1.0)
    height = WATER_HEIGHT_M + 1.2 * coast + 16.5 * inland

    relief = np.zeros_like(height)
    gx, gy = xs[None, :], ys[:, None]
    for hill in sorted(RELIEF, key=lambda h: h.absolute):  # the relative ones first
        shape = _gaussian(hill, gx, gy)
        if hill.absolute:
            centre = lonlat_to_metric(*hill.lonlat)[0]
            col = int((centre[0] - grid.x0) // grid.pixel)
            row = int((grid.y1 - centre[1]) // grid.pixel)
            inside = 0 <= row < grid.height and 0 <= col < grid.width
            below = float(height[row, col] + relief[row, col]) if inside else 0.0
            amplitude = max(hill.height_m - below, 0.0)
        else:
            amplitude = hill.height_m
        relief += amplitude * shape

    city = 3.0 * _lattice_noise(grid, 350.0, gen) + 1.0 * _lattice_noise(grid, 110.0, gen)
    rough = 40.0 * _lattice_noise(grid, 260.0, gen) + 12.0 * _lattice_noise(grid, 90.0, gen)
    hilly = relief / (relief + 60.0)
    height = height + relief + (0.2 + 0.8 * inland) * coast * city + hilly * rough
    height = np.maximum(height, 0.0).astype(np.float32)
    height[_rasterize(np.array([water], dtype=object), np.array([1]), grid, 0, np.uint8) > 0] = WATER_HEIGHT_M
    return Dem(grid, height, _hillshade(height, grid.pixel), water)


# --- the DOM ---------------------------------------------------------------------------------


def _rects(cells: Cells, inset: float = 0.0) -> np.ndarray:
    """The cells' rectangles, each side moved in by inset (metric polygons)."""
    half = np.maximum(cells.size / 2.0 - inset, 0.25)
    signs = np.array([(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)])
    corners = cells.local_to_metric(half[:, None, :] * signs[None, :, :])
    rings = shapely.linearrings(corners)
    assert isinstance(rings, np.ndarray)  # (n, 4, 2) coordinates: n rings
    return rings


def _edge_bands(cells: Cells, half_width: float) -> np.ndarray:
    """Bands half_width wide inside each cell's edges: with its neighbours', a 2 x half_width street."""
    polygons = shapely.polygons(_rects(cells), holes=_rects(cells, half_width)[:, None])
    assert isinstance(polygons, np.ndarray)
    return polygons


def _shadows(buildings: Buildings) -> np.ndarray:
    """Each building's shadow on flat ground: its footprint swept away from the sun (convex hull)."""
    az, el = math.radians(SUN_AZIMUTH_DEG), math.radians(SUN_ELEVATION_DEG)
    away = -np.array([math.sin(az), math.cos(az)]) / math.tan(el)  # metres of shadow per metre of height
    coords, which = shapely.get_coordinates(buildings.geometry, return_index=True)
    cast = coords + np.asarray(buildings.height, dtype=float)[which, None] * away
    owner = np.concatenate([which, which])
    order = np.argsort(owner, kind="stable")
    points = shapely.multipoints(np.vstack([coords, cast])[order], indices=owner[order])
    return np.asarray(shapely.convex_hull(points))


def _roof_colours(buildings: Buildings, gen: np.random.Generator) -> np.ndarray:
    """(n, 3) float32 roof colours: a colour of the building's use (urban-village houses' own),
    brightened or darkened a little."""
    out = np.empty((len(buildings.use), 3), np.float32)
    kind = np.where(np.asarray(buildings.plot) < 0, "村", np.asarray(buildings.use, dtype=object))
    picks = gen.random(len(kind))
    for label, colours in _ROOFS.items():
        sel = np.flatnonzero(kind == label)
        table = np.array(colours, np.float32)
        out[sel] = table[(picks[sel] * len(table)).astype(int)]
    return out * gen.uniform(0.9, 1.06, (len(out), 1)).astype(np.float32)


def _rasterize(geoms: np.ndarray, values: np.ndarray, grid: Grid, fill: int, dtype: Any) -> np.ndarray:
    from rasterio.features import rasterize

    if not len(geoms):
        return np.full((grid.height, grid.width), fill, dtype=dtype)
    return rasterize(
        zip(geoms, values.tolist()),
        out_shape=(grid.height, grid.width),
        transform=grid.transform,
        fill=fill,
        dtype=dtype,
    )


class DomPainter:
    """Renders the scene's orthophoto on any grid (see the module docstring): the ground's
    classes, the shadows and the roofs are rasterized per grid from the scene's shapes
    (STR-tree queries keep a window's work to its own shapes), then coloured and textured."""

    def __init__(self, scene: Scene, dem: Dem, gen: np.random.Generator) -> None:
        self.dem = dem
        land = scene.land
        plot_kind = gen.choice(np.array([PAVING, LAWN, TREES]), size=len(scene.plots), p=[0.55, 0.3, 0.15])
        hill_kind = [PARK if _nearest_hill(h).endswith("公园") else FOREST for h in land.hills]
        coastal = [
            (g, MANGROVE if "红树林" in n else WETLAND)
            for g, n in zip(land.eco_redline.geometry, land.eco_redline.names)
            if "红树林" in n or "湿地" in n
        ]
        ground: list[tuple[np.ndarray, np.ndarray]] = [
            (np.array([scene.boundary, dem.water], dtype=object), np.array([URBAN, WATER])),
            (np.asarray(shapely.polygons(_rects(scene.plots))), plot_kind),
            (_edge_bands(scene.plots, LANE_HALF_WIDTH_M), np.full(len(scene.plots), LANE)),
            (_edge_bands(scene.blocks, ROAD_HALF_WIDTH_M), np.full(len(scene.blocks), ROAD)),
            (np.asarray(land.hills, dtype=object), np.array(hill_kind, dtype=np.int64)),
            (np.array([g for g, _ in coastal], dtype=object), np.array([k for _, k in coastal], dtype=np.int64)),
            (np.asarray(land.farmland.geometry, dtype=object), np.full(len(land.farmland.geometry), FARM)),
        ]
        self.ground = np.concatenate([g for g, _ in ground])
        self.ground_class = np.concatenate([k for _, k in ground]).astype(np.uint8)
        self.ground_tree = shapely.STRtree(self.ground)
        self.roofs = np.asarray(scene.buildings.geometry, dtype=object)
        self.roofs_tree = shapely.STRtree(self.roofs)
        self.colours = np.concatenate([_PALETTE, _FARM_B[None, :], _roof_colours(scene.buildings, gen)])
        self.shadows = _shadows(scene.buildings)
        self.shadows_tree = shapely.STRtree(self.shadows)
        self.salts = [int(s) for s in gen.integers(0, 2**31, 6)]

    def _query(self, tree: shapely.STRtree, grid: Grid) -> np.ndarray:
        return np.sort(tree.query(grid.box()))  # painter's order: as the shapes were listed

    def classes(self, grid: Grid) -> np.ndarray:
        """The ground class of each pixel, (h, w) uint8."""
        idx = self._query(self.ground_tree, grid)
        return _rasterize(self.ground[idx], self.ground_class[idx], grid, OUTSIDE, np.uint8)

    def roof_ids(self, grid: Grid) -> np.ndarray:
        """1 + the index of the building whose roof covers each pixel (0: none), (h, w) int32."""
        idx = self._query(self.roofs_tree, grid)
        return _rasterize(self.roofs[idx], idx + 1, grid, 0, np.int32)

    def render(self, grid: Grid) -> np.ndarray:
        """The orthophoto's pixels on grid, (h, w, 3) uint8: a colour per pixel (a ground class's,
        a farm strip's or a roof's) times a brightness factor (tree crowns, shadows, roof edges,
        the terrain's light) plus grain."""
        cls = self.classes(grid)
        halo = self.roof_ids(grid.window(-1, -1, grid.width + 2, grid.height + 2))  # edges across windows
        roof = halo[1:-1, 1:-1]
        idx = self._query(self.shadows_tree, grid)
        shadow = _rasterize(self.shadows[idx], np.ones(len(idx), np.uint8), grid, 0, np.uint8).astype(bool)
        xs, ys = grid.xs(), grid.ys()
        s = self.salts

        colour = cls.astype(np.int32)
        factor = np.ones(cls.shape, np.float32)
        crown_amp = _CROWN_AMP[cls]
        if crown_amp.any():
            crowns = _world_noise(xs, ys, 4.0, s[0])
            crowns *= 0.65
            crowns += 0.35 * _world_noise(xs, ys, 1.6, s[1])
            park = cls == PARK
            if park.any():  # tree clumps in the parks' lawns
                clumps = _world_noise(xs, ys, 30.0, s[2]) + 0.25 * crowns > 0.72
                colour[park & clumps] = FOREST
            farm = cls == FARM
            if farm.any():  # strips about 8 m wide
                strip = (np.floor((xs[None, :] * 0.96 + ys[:, None] * 0.28) / 8.0) % 2).astype(bool)
                colour[farm & strip] = _FARM_B_INDEX
            crowns -= 0.5
            crowns *= 2.0 * crown_amp
            factor += crowns
        cols = np.round((xs - self.dem.grid.x0) / grid.pixel).astype(np.int64)
        rows = np.round((self.dem.grid.y1 - ys) / grid.pixel).astype(np.int64)
        grain = _hash01(cols[None, :], rows[:, None], s[3])
        grain -= 0.5
        grain *= _GRAIN[cls]
        on_roof = roof > 0
        factor[on_roof] = 1.0  # no crowns on the roofs, nor shadows (only the ground's are drawn)
        factor[shadow & ~on_roof] *= SHADOW_FACTOR

        # the terrain's light and gentle tone changes: smooth, so computed on blocks of k x k pixels
        k = max(1, int(2.0 / grid.pixel))
        coarse = Grid(grid.x0, grid.y1, grid.pixel * k, -(-grid.width // k), -(-grid.height // k))
        cxs, cys = coarse.xs(), coarse.ys()
        tint = 0.94 + 0.12 * _world_noise(cxs, cys, 180.0, s[4])
        light = _expand(_bilinear(self.dem.shade, self.dem.grid, cxs, cys) * tint, k, grid)
        flat = (cls == WATER) | on_roof  # water and flat roofs are not shaded by the terrain
        light[flat] = _expand(tint, k, grid)[flat]
        factor *= light

        if on_roof.any():
            colour[on_roof] = _ROOF_INDEX + roof[on_roof] - 1
            grain[on_roof] *= 0.5
            edge = (roof != halo[:-2, 1:-1]) | (roof != halo[2:, 1:-1])
            edge |= (roof != halo[1:-1, :-2]) | (roof != halo[1:-1, 2:])
            factor[edge & on_roof] *= ROOF_EDGE_FACTOR

        rgb = self.colours[colour]
        rgb *= factor[..., None]
        rgb += grain[..., None]
        np.clip(rgb, 0.0, 255.0, out=rgb)
        return rgb.astype(np.uint8)


def _expand(values: np.ndarray, k: int, grid: Grid) -> np.ndarray:
    """Values on k x k blocks of grid's pixels, repeated onto its pixels."""
    if k == 1:
        return values
    return np.repeat(np.repeat(values, k, axis=0), k, axis=1)[: grid.height, : grid.width]


def _nearest_hill(outline: BaseGeometry) -> str:
    """The name (names.HILLS) of the hill or park nearest an outline's centre."""
    centre = np.asarray(shapely.get_coordinates(shapely.centroid(outline)))[0]
    places = lonlat_to_metric(*np.array([ll for _, ll, *_ in names.HILLS]).T)
    return names.HILLS[int(np.argmin(np.hypot(*(places - centre).T)))][0]


# --- writing ---------------------------------------------------------------------------------


def _tags(scale: Scale, seed: int) -> dict[str, str]:
    return {
        "TIFFTAG_IMAGEDESCRIPTION": DESCRIPTION,
        "TIFFTAG_SOFTWARE": "cim-twin (cim.samples.futian.rasters)",
        "CIM_SAMPLE": f"futian scale={scale} seed={seed}",
    }


def write_dem(path: Path, dem: Dem, scale: Scale, seed: int) -> Path:
    """dem.tif: float32, 512 x 512 tiles, DEFLATE with the floating-point predictor, nodata -9999."""
    import rasterio

    profile = {
        "driver": "GTiff",
        "width": dem.grid.width,
        "height": dem.grid.height,
        "count": 1,
        "dtype": "float32",
        "crs": METRIC_CRS.to_wkt(),
        "transform": dem.grid.transform,
        "nodata": DEM_NODATA,
        "tiled": True,
        "blockxsize": TILE_PX,
        "blockysize": TILE_PX,
        "compress": "deflate",
        "predictor": 3,
    }
    with _replacing(path) as partial, rasterio.open(partial, "w", **profile) as dst:
        dst.write(dem.height, 1)
        dst.update_tags(**_tags(scale, seed), VERTICAL_DATUM="orthometric (metres above the geoid)")
        dst.set_band_description(1, "height above the geoid")
        dst.set_band_unit(1, "metre")
    return path


def write_dom(path: Path, painter: DomPainter, grid: Grid, scale: Scale, seed: int, workers: int | None = None) -> Path:
    """dom.tif: RGB uint8, pixel-interleaved 512 x 512 tiles, uncompressed; rendered window by
    window on ``workers`` threads (default: up to 2) and written in order."""
    import rasterio
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 3,
        "dtype": "uint8",
        "crs": METRIC_CRS.to_wkt(),
        "transform": grid.transform,
        "tiled": True,
        "blockxsize": TILE_PX,
        "blockysize": TILE_PX,
        "interleave": "pixel",
        "photometric": "RGB",
        "compress": "none",
        "BIGTIFF": "IF_SAFER",
    }
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    with (
        _replacing(path) as partial,
        rasterio.open(partial, "w", **profile) as dst,
        ThreadPoolExecutor(workers) as pool,
    ):
        pending: deque[tuple[int, int, Future[np.ndarray]]] = deque()

        def flush_one() -> None:
            col, row, future = pending.popleft()
            pixels = future.result()
            dst.write(np.moveaxis(pixels, -1, 0), window=Window(col, row, pixels.shape[1], pixels.shape[0]))

        for col, row, window in grid.windows():
            pending.append((col, row, pool.submit(painter.render, window)))
            if len(pending) > 2 * workers:
                flush_one()
        while pending:
            flush_one()
        dst.update_tags(**_tags(scale, seed))
    return path


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside path, renamed to it when the block ends without an error (removed
    when it raises)."""
    partial = path.with_name(f".{path.name}.partial")
    for stale in (partial, Path(f"{path}.aux.xml")):
        stale.unlink(missing_ok=True)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def generate_rasters(
    out_dir: Path,
    scale: Scale = "small",
    seed: int = 42,
    *,
    scene: Scene | None = None,
    on_raster: Callable[[str, Path], None] | None = None,
) -> dict[str, Path]:
    """Write out_dir/dem.tif and out_dir/dom.tif for the sample of this scale and seed (see the
    module docstring) and return {"dem": path, "dom": path}. ``scene``: the sample's scene when
    the caller has it (:func:`generate` does); otherwise it is rebuilt from scale and seed, so this
    also makes the rasters of a sample folder written earlier. Calls on_raster(name, path) after each."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if scene is None:
        scene = Scene.build(scale, seed)
    dem_gen, dom_gen = rng(seed, "rasters").spawn(2)
    dem = make_dem(scene.boundary, dem_gen)
    out = {"dem": write_dem(out_dir / DEM_FILE, dem, scale, seed)}
    if on_raster is not None:
        on_raster("dem", out["dem"])
    painter = DomPainter(scene, dem, dom_gen)
    out["dom"] = write_dom(out_dir / DOM_FILE, painter, dom_grid(scene, scale), scale, seed)
    if on_raster is not None:
        on_raster("dom", out["dom"])
    return out
