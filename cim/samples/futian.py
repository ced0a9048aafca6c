"""Deterministic synthetic "Futian sample" (福田区, Shenzhen) for the CIM twin.

ALL DATA WRITTEN HERE IS SYNTHETIC. Only the district outline is real (the
GCJ-02 boundary in ``data_samples/boundaries/440304.geojson``, converted to
WGS84), and the ten street names/codes are the real ones. Streets,
communities and grids are a random (but exact) partition of that outline;
buildings, parcels, land cover, sensors, cameras and citizen tickets are
invented, placed with rough real landmarks (the CBD, hills, urban villages,
the mangrove coast) so that a map of the sample looks like Futian.

:func:`generate` writes one GeoPackage per layer (``<out_dir>/<layer>.gpkg``,
GDAL layer ``<layer>``, EPSG:4326). The same ``seed`` and ``scale`` give
identical content: every random draw comes from ``numpy.random.default_rng``
seeded with ``(seed, stream)``, and nothing depends on time or set order.

Geometry is built in metres (EPSG:4547, CGCS2000 Gauss-Krüger CM 114E) and
then converted to lon/lat rounded to 7 decimals (about 1 cm). Admin layers
are one noded coverage: every shared vertex is the same coordinate in every
polygon that uses it, so rounding keeps the partitions exact.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
import shapely.ops
from shapely.geometry import shape

from cim.crs import gcj02_to_wgs84, geometries_to_wgs84
from cim.samples import names

LAYERS: tuple[str, ...] = (
    "futian_boundary",
    "streets",
    "communities",
    "grids",
    "buildings",
    "parcels",
    "farmland",
    "forest",
    "eco_redline",
    "sensors",
    "cameras",
    "tickets",
)

BOUNDARY_GCJ02: Path = Path(__file__).resolve().parents[2] / "data_samples" / "boundaries" / "440304.geojson"

Scale = Literal["small", "full"]

METRIC_CRS = pyproj.CRS.from_epsg(4547)
_LONLAT_TO_METRIC = pyproj.Transformer.from_crs(4326, METRIC_CRS, always_xy=True)

DECIMALS = 7  # output lon/lat precision, ~1 cm
NODE_GRID_M = 1e-3  # snap-rounding grid for noding the admin coverage (1 mm)
BUILDING_MARGIN_M = 1.5  # each building keeps this far inside its lattice cell: gaps >= 3 m
COMMUNITY_COUNT = 92
GRID_COUNT = 1646
CBD_LONLAT = (114.055, 22.537)
CBD_RADIUS_M = 1400.0  # towers (100-300 m) only within this distance of the CBD
TZ = "Asia/Shanghai"
NOW = pd.Timestamp("2026-11-01 00:00:00", tz=TZ)  # the sample's "today"


@dataclass(frozen=True)
class ScaleSpec:
    """Feature counts of one scale (``buildings=None``: every building the lattice holds)."""

    buildings: int | None
    parcels: int
    sensors: int
    cameras: int
    tickets: int


SCALES: dict[str, ScaleSpec] = {
    "small": ScaleSpec(buildings=2_000, parcels=200, sensors=5_000, cameras=500, tickets=3_000),
    "full": ScaleSpec(buildings=None, parcels=2_000, sensors=270_000, cameras=20_000, tickets=150_000),
}


def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per named stream, so layers don't shift each other's draws."""
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode("utf-8"))])


# --- coordinates -------------------------------------------------------------------


def lonlat_to_metric(lon, lat) -> np.ndarray:
    """WGS84 lon/lat -> EPSG:4547 metres, as an (n, 2) array."""
    x, y = _LONLAT_TO_METRIC.transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])


def _project_coords(coords: np.ndarray) -> np.ndarray:
    return lonlat_to_metric(coords[:, 0], coords[:, 1])


def _round_coords(coords: np.ndarray) -> np.ndarray:
    return np.round(coords, DECIMALS)


def to_output(geoms) -> np.ndarray:
    """Metric geometries -> EPSG:4326 rounded to :data:`DECIMALS`.

    Vertex by vertex, so equal metric vertices give equal output vertices."""
    geoms = np.asarray(geoms, dtype=object)
    wgs = geometries_to_wgs84(geoms, METRIC_CRS)
    return shapely.remove_repeated_points(shapely.transform(wgs, _round_coords), 0.0)


def as_multipolygons(geoms) -> np.ndarray:
    """Polygons become one-part MultiPolygons; MultiPolygons stay."""
    geoms = np.asarray(geoms, dtype=object)
    out = geoms.copy()
    single = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    out[single] = shapely.multipolygons(geoms[single][:, None])
    return out


def load_boundary_metric(path: Path = BOUNDARY_GCJ02) -> shapely.Geometry:
    """The real district outline: GCJ-02 GeoJSON -> WGS84 -> EPSG:4547."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("type") == "FeatureCollection":
        data = data["features"][0]
    if data.get("type") == "Feature":
        data = data["geometry"]
    gcj = shape(data)

    def undo_gcj02(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(gcj02_to_wgs84(coords[:, 0], coords[:, 1]))

    metric = shapely.transform(shapely.transform(gcj, undo_gcj02), _project_coords)
    return shapely.make_valid(metric)


# --- partitions ------------------------------------------------------------------


def random_points_in(region: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniform random points inside region (rejection sampling), (n, 2)."""
    shapely.prepare(region)
    x0, y0, x1, y1 = region.bounds
    found: list[np.ndarray] = []
    count = 0
    while count < n:
        m = max(64, 3 * (n - count))
        xy = np.column_stack([rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)])
        xy = xy[shapely.contains_xy(region, xy[:, 0], xy[:, 1])]
        found.append(xy)
        count += len(xy)
    return np.vstack(found)[:n]


def voronoi_cells(region: shapely.Geometry, seeds: np.ndarray) -> np.ndarray:
    """The Voronoi cell of each seed (in seed order) clipped to region."""
    if len(seeds) == 1:
        return np.array([region], dtype=object)
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=region, ordered=True)
    cells = shapely.get_parts(diagram)
    if len(cells) != len(seeds):
        raise RuntimeError("Voronoi diagram lost seeds (duplicate points?)")
    return shapely.intersection(cells, region)


def lloyd_relax(region: shapely.Geometry, seeds: np.ndarray, steps: int) -> np.ndarray:
    """Move seeds to their cells' centroids a few times, for compact cells."""
    for _ in range(steps):
        cells = voronoi_cells(region, seeds)
        centres = shapely.get_coordinates(shapely.centroid(cells))
        inside = shapely.contains_xy(region, centres[:, 0], centres[:, 1])
        if not inside.all():
            centres[~inside] = shapely.get_coordinates(shapely.point_on_surface(cells[~inside]))
        seeds = centres
    return seeds


def merge_orphan_parts(cells: np.ndarray) -> np.ndarray:
    """Keep each cell's largest part; give every other part (a piece cut off by
    a concave parent) to the cell it shares the most border with, so no area is lost."""
    mains: list[shapely.Geometry] = []
    orphans: list[shapely.Geometry] = []
    for cell in cells:
        parts = shapely.get_parts(cell)
        parts = parts[shapely.get_type_id(parts) == shapely.GeometryType.POLYGON]
        parts = parts[shapely.area(parts) > 0]
        keep = int(np.argmax(shapely.area(parts)))
        mains.append(parts[keep])
        orphans.extend(p for i, p in enumerate(parts) if i != keep)
    main = np.array(mains, dtype=object)
    orphans.sort(key=lambda p: -p.area)
    for orphan in orphans:
        contact = shapely.area(shapely.intersection(shapely.buffer(orphan, 0.5), main))
        target = int(np.argmax(contact)) if contact.max() > 0 else int(np.argmin(shapely.distance(orphan, main)))
        main[target] = shapely.union(main[target], orphan)
    return main


def partition(region: shapely.Geometry, n: int, rng: np.random.Generator, *,
              seeds: np.ndarray | None = None, lloyd_steps: int = 5) -> np.ndarray:
    """Split region into n compact pieces that cover it without overlap."""
    if seeds is None:
        seeds = random_points_in(region, n, rng)
    seeds = lloyd_relax(region, seeds, lloyd_steps)
    return merge_orphan_parts(voronoi_cells(region, seeds))


def apportion(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integers proportional to weights, each >= minimum, summing to total
    (largest remainder; ties go to the first index)."""
    weights = np.asarray(weights, dtype=float)
    quota = total * weights / weights.sum()
    counts = np.maximum(minimum, np.floor(quota)).astype(int)
    while counts.sum() < total:
        counts[int(np.argmax(quota - counts))] += 1
    while counts.sum() > total:
        excess = np.where(counts > minimum, counts - quota, -np.inf)
        counts[int(np.argmax(excess))] -= 1
    return counts


def reading_order(geoms: np.ndarray) -> np.ndarray:
    """Indices sorting pieces in rows from north-west to south-east."""
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    band = np.sqrt(shapely.area(shapely.union_all(geoms)) / max(len(geoms), 1))
    row = np.floor(-xy[:, 1] / band)
    return np.lexsort((xy[:, 0], row))


def node_coverage(cells: np.ndarray) -> np.ndarray:
    """Rebuild near-coverage cells as an exact coverage.

    All ring linework is noded once (snap-rounded to :data:`NODE_GRID_M`) and
    polygonized; each face goes to the cell holding it. Neighbours then share
    identical vertices along every common edge."""
    rings = shapely.get_rings(shapely.get_parts(cells))
    linework = shapely.union_all(rings, grid_size=NODE_GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(linework)))
    faces = faces[shapely.area(faces) > 0]
    cell_of_part = np.repeat(np.arange(len(cells)), shapely.get_num_geometries(cells))
    parts = shapely.get_parts(cells)
    tree = shapely.STRtree(parts)
    face_idx, part_idx = tree.query(shapely.point_on_surface(faces), predicate="within")
    owner = np.full(len(faces), -1)
    hits = np.bincount(face_idx, minlength=len(faces))
    single = hits[face_idx] == 1
    owner[face_idx[single]] = cell_of_part[part_idx[single]]
    for f in np.flatnonzero(owner < 0):  # slivers: the cell overlapping them most
        candidates = tree.query(faces[f])
        overlap = shapely.area(shapely.intersection(faces[f], parts[candidates]))
        owner[f] = cell_of_part[candidates[int(np.argmax(overlap))]]
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(len(cells) + 1))
    out = np.empty(len(cells), dtype=object)
    for i in range(len(cells)):
        own = faces[order[starts[i]:starts[i + 1]]]
        if len(own) == 0:
            raise RuntimeError(f"cell {i} vanished while noding the coverage")
        out[i] = own[0] if len(own) == 1 else shapely.coverage_union_all(own)
    return out


def union_groups(children: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Union of an exact coverage's pieces per group (keeps every boundary vertex)."""
    out = np.empty(n_groups, dtype=object)
    for g in range(n_groups):
        out[g] = shapely.coverage_union_all(children[group == g])
    return out


# --- admin hierarchy ----------------------------------------------------------------


@dataclass
class AdminLevel:
    """One admin layer in metres: codes, names, parent index and geometry."""

    codes: list[str]
    names: list[str]
    parent: np.ndarray  # index into the parent level (-1 for streets)
    geometry: np.ndarray


@dataclass
class Admin:
    boundary: shapely.Geometry
    streets: AdminLevel
    communities: AdminLevel
    grids: AdminLevel

    def street_of_xy(self, xy: np.ndarray) -> np.ndarray:
        """Index of the street holding each point (nearest street if on no street)."""
        out = np.full(len(xy), -1)
        for i, geom in enumerate(self.streets.geometry):
            shapely.prepare(geom)
            out[(out < 0) & shapely.contains_xy(geom, xy[:, 0], xy[:, 1])] = i
        for j in np.flatnonzero(out < 0):
            out[j] = int(np.argmin(shapely.distance(shapely.Point(xy[j]), self.streets.geometry)))
        return out


def _community_names(counts: np.ndarray, rng: np.random.Generator) -> list[list[str]]:
    generic = [s + "社区" for s in names.GENERIC_COMMUNITY_STEMS]
    generic = [generic[i] for i in rng.permutation(len(generic))]
    taken = {n for pool in names.COMMUNITIES.values() for n in pool}
    generic = [g for g in generic if g not in taken]
    out: list[list[str]] = []
    for (_, street, _), n in zip(names.STREETS, counts):
        pool = names.COMMUNITIES[street]
        chosen = [pool[i] for i in rng.permutation(len(pool))[:n]]
        while len(chosen) < n:
            chosen.append(generic.pop(0))
        out.append(chosen)
    return out


def build_admin(boundary: shapely.Geometry, seed: int) -> Admin:
    """Streets -> communities -> grids, top-down Voronoi partitions made exact by
    noding all grids together and rebuilding the parents as unions of grids."""
    rng = _rng(seed, "admin")
    street_seeds = lonlat_to_metric(*np.array([c for _, _, c in names.STREETS]).T)
    street_seeds += rng.normal(0.0, 150.0, street_seeds.shape)
    street_seeds = _nearest_inside(boundary, street_seeds)
    street_geoms = partition(boundary, len(street_seeds), rng, seeds=street_seeds, lloyd_steps=1)

    n_comm = apportion(COMMUNITY_COUNT, shapely.area(street_geoms), 3)
    comm_geoms: list[shapely.Geometry] = []
    comm_street: list[int] = []
    for s, (geom, n) in enumerate(zip(street_geoms, n_comm)):
        pieces = partition(geom, int(n), rng, lloyd_steps=6)
        pieces = pieces[reading_order(pieces)]
        comm_geoms.extend(pieces)
        comm_street.extend([s] * len(pieces))
    comm_geoms_arr = np.array(comm_geoms, dtype=object)

    n_grid = apportion(GRID_COUNT, shapely.area(comm_geoms_arr), 3)
    grid_geoms: list[shapely.Geometry] = []
    grid_comm: list[int] = []
    for c, (geom, n) in enumerate(zip(comm_geoms_arr, n_grid)):
        pieces = partition(geom, int(n), rng, lloyd_steps=5)
        pieces = pieces[reading_order(pieces)]
        grid_geoms.extend(pieces)
        grid_comm.extend([c] * len(pieces))

    grids = node_coverage(np.array(grid_geoms, dtype=object))
    grid_comm_arr = np.array(grid_comm)
    comm_street_arr = np.array(comm_street)
    communities = union_groups(grids, grid_comm_arr, len(comm_geoms_arr))
    streets = union_groups(communities, comm_street_arr, len(street_geoms))
    district = shapely.coverage_union_all(streets)

    street_codes = [code for code, _, _ in names.STREETS]
    street_names = [name for _, name, _ in names.STREETS]
    comm_names = _community_names(n_comm, rng)
    comm_codes: list[str] = []
    comm_labels: list[str] = []
    for s in range(len(street_codes)):
        for k, label in enumerate(comm_names[s], start=1):
            comm_codes.append(f"{street_codes[s]}{k:03d}")
            comm_labels.append(label)
    grid_codes: list[str] = []
    grid_labels: list[str] = []
    for c in range(len(comm_codes)):
        for k in range(1, int(np.sum(grid_comm_arr == c)) + 1):
            grid_codes.append(f"{comm_codes[c]}{k:03d}")
            grid_labels.append(f"{comm_labels[c]}第{k}网格")
    return Admin(
        boundary=district,
        streets=AdminLevel(street_codes, street_names, np.full(len(streets), -1), streets),
        communities=AdminLevel(comm_codes, comm_labels, comm_street_arr, communities),
        grids=AdminLevel(grid_codes, grid_labels, grid_comm_arr, grids),
    )


def _nearest_inside(region: shapely.Geometry, xy: np.ndarray) -> np.ndarray:
    """Points outside region moved to the nearest point just inside it."""
    xy = xy.copy()
    inner = shapely.buffer(region, -50.0)
    for i in np.flatnonzero(~shapely.contains_xy(region, xy[:, 0], xy[:, 1])):
        _, near = shapely.ops.nearest_points(shapely.Point(xy[i]), inner)
        xy[i] = (near.x, near.y)
    return xy
