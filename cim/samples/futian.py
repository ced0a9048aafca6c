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
from dataclasses import dataclass, fields
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
SMALL_OVERSHOOT = 1.05  # the small sample may exceed its building count by this factor
CBD_LONLAT = (114.055, 22.537)
CBD_RADIUS_M = 1400.0  # towers (100-300 m) only within this distance of the CBD
TZ = "Asia/Shanghai"
NOW = pd.Timestamp("2026-11-01 00:00:00", tz=TZ)  # the sample's "today"


@dataclass(frozen=True)
class ScaleSpec:
    """Feature counts of one scale (``buildings=None``: every building the lattices hold).

    ``cbd_focus``: buildings and parcels are the ones nearest the CBD (a dense,
    contiguous piece of the district) rather than spread over all of it."""

    buildings: int | None
    parcels: int
    sensors: int
    cameras: int
    tickets: int
    cbd_focus: bool


SCALES: dict[str, ScaleSpec] = {
    "small": ScaleSpec(buildings=2_000, parcels=200, sensors=5_000, cameras=500, tickets=3_000, cbd_focus=True),
    "full": ScaleSpec(buildings=None, parcels=2_000, sensors=270_000, cameras=20_000, tickets=150_000,
                      cbd_focus=False),
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


def subdivide(parents: np.ndarray, total: int, rng: np.random.Generator, *, lloyd_steps: int
              ) -> tuple[np.ndarray, list[int], np.ndarray]:
    """One level down: ``total`` pieces shared among ``parents`` by area (at
    least 3 each), each parent partitioned exactly. Returns the pieces in
    reading order within each parent, each piece's parent, and the counts."""
    counts = apportion(total, shapely.area(parents), 3)
    pieces_all: list[shapely.Geometry] = []
    parent_of: list[int] = []
    for p, (geom, n) in enumerate(zip(parents, counts)):
        pieces = partition(geom, int(n), rng, lloyd_steps=lloyd_steps)
        pieces = pieces[reading_order(pieces)]
        pieces_all.extend(pieces)
        parent_of.extend([p] * len(pieces))
    return np.array(pieces_all, dtype=object), parent_of, counts


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

    comm_geoms_arr, comm_street, n_comm = subdivide(street_geoms, COMMUNITY_COUNT, rng, lloyd_steps=6)
    grid_geoms, grid_comm, _ = subdivide(comm_geoms_arr, GRID_COUNT, rng, lloyd_steps=5)

    grids = node_coverage(grid_geoms)
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


# --- small geometry helpers ----------------------------------------------------------


def rotate_xy(xy: np.ndarray, angle) -> np.ndarray:
    """Rotate (..., 2) coordinates counter-clockwise by angle (radians, scalar or per row)."""
    angle = np.asarray(angle, dtype=float)
    c, s = np.cos(angle), np.sin(angle)
    while c.ndim < xy.ndim - 1:
        c, s = c[..., None], s[..., None]
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def to_local(geom: shapely.Geometry, origin: np.ndarray, angle: float) -> shapely.Geometry:
    """A geometry in a lattice's frame: origin at 0, x axis along angle."""
    return shapely.transform(geom, lambda c: rotate_xy(c - origin, -angle))


def lonlat_box(lon0: float, lat0: float, lon1: float, lat1: float) -> shapely.Geometry:
    corners = lonlat_to_metric([lon0, lon1, lon1, lon0], [lat0, lat0, lat1, lat1])
    return shapely.Polygon(corners)


def smooth_blob(centre: np.ndarray, radius: float, aspect: float, angle: float,
                rng: np.random.Generator, vertices: int = 72) -> shapely.Geometry:
    """A wobbly star-shaped polygon (hill, park) around centre."""
    theta = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
    r = np.ones(vertices)
    for k in range(2, 6):
        r += rng.uniform(0.0, 0.12) * np.cos(k * theta + rng.uniform(0.0, 2.0 * np.pi))
    xy = np.column_stack([radius * r * np.cos(theta), radius * aspect * r * np.sin(theta)])
    return shapely.Polygon(centre + rotate_xy(xy, angle))


def polygons_only(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygon parts (over 1 m²) of an overlay result, as a MultiPolygon;
    drops the points and lines an overlay can leave behind."""
    parts = shapely.get_parts(geom)
    parts = parts[np.isin(shapely.get_type_id(parts), [shapely.GeometryType.POLYGON])]
    parts = parts[shapely.area(parts) > 1.0]
    return shapely.multipolygons(parts) if len(parts) else shapely.Polygon()


# --- land cover: forest, farmland, ecological red line -------------------------------------


@dataclass
class Patches:
    """Polygons with a code and a name (metric)."""

    codes: list[str]
    names: list[str]
    geometry: np.ndarray


@dataclass
class LandCover:
    forest: Patches
    farmland: Patches
    eco_redline: Patches
    hills: np.ndarray  # whole hill/park outlines (forest compartments sit inside)

    def no_build_zone(self) -> shapely.Geometry:
        """Where nothing is built: hills, parks, farmland and the red line."""
        return shapely.union_all(np.concatenate([self.hills, self.farmland.geometry, self.eco_redline.geometry]))


def build_land_cover(district: shapely.Geometry, seed: int) -> LandCover:
    rng = _rng(seed, "land")
    inner = shapely.buffer(district, -2.0)
    hills: list[shapely.Geometry] = []
    hill_names: list[str] = []
    hill_parts: list[int] = []
    for name, (lon, lat), radius, aspect, parts in names.HILLS:
        centre = lonlat_to_metric(lon, lat)[0] + rng.normal(0.0, 40.0, 2)
        blob = smooth_blob(centre, radius * rng.uniform(0.9, 1.1), aspect, rng.uniform(-0.6, 0.6), rng)
        blob = polygons_only(shapely.intersection(blob, inner))
        if blob.is_empty:
            continue
        hills.append(blob)
        hill_names.append(name)
        hill_parts.append(parts)

    forest_geoms: list[shapely.Geometry] = []
    forest_names: list[str] = []
    for blob, name, parts in zip(hills, hill_names, hill_parts):
        pieces = partition(blob, parts, rng, lloyd_steps=4)
        pieces = polygons_only_all(shapely.buffer(pieces, -4.0, join_style="mitre"))
        for k, piece in enumerate(pieces[~shapely.is_empty(pieces)], start=1):
            forest_geoms.append(piece)
            forest_names.append(f"{name}林地{k:02d}")

    eco_geoms, eco_names = _eco_redline(district, inner, hills, hill_names)
    eco_union = shapely.union_all(eco_geoms)
    farm_geoms, farm_names = _farmland(inner, shapely.union_all([*hills, eco_union]), rng)
    return LandCover(
        forest=Patches([f"LD-{i:04d}" for i in range(1, len(forest_geoms) + 1)], forest_names,
                       np.array(forest_geoms, dtype=object)),
        farmland=Patches([f"GD-{i:04d}" for i in range(1, len(farm_geoms) + 1)], farm_names,
                         np.array(farm_geoms, dtype=object)),
        eco_redline=Patches([f"STHX-{i:04d}" for i in range(1, len(eco_geoms) + 1)], eco_names,
                            np.array(eco_geoms, dtype=object)),
        hills=np.array(hills, dtype=object),
    )


def polygons_only_all(geoms: np.ndarray) -> np.ndarray:
    return np.array([polygons_only(g) for g in geoms], dtype=object)


def _eco_redline(district: shapely.Geometry, inner: shapely.Geometry, hills: list[shapely.Geometry],
                 hill_names: list[str]) -> tuple[list[shapely.Geometry], list[str]]:
    """The mangrove coast, the Shenzhen River bank and the cores of the big hills."""
    ring = shapely.boundary(district)
    candidates: list[tuple[str, shapely.Geometry]] = [
        ("福田红树林自然保护区生态保护红线",
         shapely.intersection(shapely.buffer(ring, 240.0), lonlat_box(113.98, 22.49, 114.036, 22.519))),
        ("深圳河湿地生态保护红线",
         shapely.intersection(shapely.buffer(ring, 80.0), lonlat_box(114.036, 22.49, 114.11, 22.534))),
    ]
    for hill, name in zip(hills, hill_names):
        if name in ("梅林山", "笔架山", "银湖山"):
            candidates.append((f"{name}生态保护红线", shapely.buffer(hill, -40.0)))
    geoms: list[shapely.Geometry] = []
    labels: list[str] = []
    taken = shapely.Polygon()
    for label, geom in candidates:
        geom = polygons_only(shapely.difference(shapely.intersection(geom, inner), taken))
        if geom.is_empty:
            continue
        geoms.append(geom)
        labels.append(label)
        taken = shapely.union(taken, shapely.buffer(geom, 1.0))
    return geoms, labels


def _farmland(inner: shapely.Geometry, avoid: shapely.Geometry,
              rng: np.random.Generator) -> tuple[list[shapely.Geometry], list[str]]:
    """A few small vegetable plots in the north (above ~22.568N)."""
    north = shapely.intersection(inner, lonlat_box(113.98, 22.568, 114.11, 22.60))
    blocked = shapely.buffer(avoid, 15.0)
    wanted = int(rng.integers(4, 8))
    geoms: list[shapely.Geometry] = []
    labels: list[str] = []
    for _ in range(400):
        if len(geoms) == wanted:
            break
        centre = random_points_in(north, 1, rng)[0]
        w, h = rng.uniform(60.0, 180.0), rng.uniform(50.0, 120.0)
        xy = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2.0
        plot = shapely.Polygon(centre + rotate_xy(xy, rng.uniform(-0.4, 0.4)))
        if not shapely.contains(north, plot) or shapely.intersects(blocked, plot):
            continue
        geoms.append(plot)
        place = names.FARMLAND_PLACES[int(rng.integers(len(names.FARMLAND_PLACES)))]
        labels.append(f"{place}耕地{len(geoms):02d}")
        blocked = shapely.union(blocked, shapely.buffer(plot, 20.0))
    return geoms, labels


# --- lattices -------------------------------------------------------------------------------


@dataclass
class Cells:
    """Rectangular lattice cells (metric centre, local width/height, rotation)."""

    centre: np.ndarray  # (n, 2)
    size: np.ndarray  # (n, 2)
    angle: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.centre)

    @staticmethod
    def concat(parts: list[Cells]) -> Cells:
        return Cells(np.vstack([p.centre for p in parts]), np.vstack([p.size for p in parts]),
                     np.concatenate([p.angle for p in parts]))

    def take(self, idx: np.ndarray) -> Cells:
        return Cells(self.centre[idx], self.size[idx], self.angle[idx])

    def local_to_metric(self, local: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Cell-frame coordinates (..., k, 2) or (n, 2) -> metric."""
        centre, angle = (self.centre, self.angle) if idx is None else (self.centre[idx], self.angle[idx])
        if local.ndim == 3:
            return centre[:, None, :] + rotate_xy(local, angle)
        return centre + rotate_xy(local, angle)


def _breaks(lo: float, hi: float, pitch: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    steps = rng.uniform(*pitch, int(np.ceil((hi - lo) / pitch[0])) + 2)
    return lo - rng.uniform(0.0, pitch[1]) + np.concatenate([[0.0], np.cumsum(steps)])


def lattice_cells(region: shapely.Geometry, angle: float, pitch: tuple[float, float],
                  rng: np.random.Generator, avoid: shapely.Geometry | None = None) -> Cells:
    """Cells of a jittered rectangular lattice (rows/columns of random width,
    rotated by angle) lying entirely inside region and clear of avoid."""
    origin = np.array(shapely.get_coordinates(shapely.centroid(region))[0])
    local = to_local(region, origin, angle)
    x0, y0, x1, y1 = local.bounds
    xs, ys = _breaks(x0, x1, pitch, rng), _breaks(y0, y1, pitch, rng)
    gx0, gy0 = (a.ravel() for a in np.meshgrid(xs[:-1], ys[:-1]))
    gx1, gy1 = (a.ravel() for a in np.meshgrid(xs[1:], ys[1:]))
    boxes = shapely.box(gx0, gy0, gx1, gy1)
    shapely.prepare(local)
    keep = shapely.contains(local, boxes)
    if avoid is not None and not avoid.is_empty:
        avoid_local = to_local(avoid, origin, angle)
        shapely.prepare(avoid_local)
        keep &= ~shapely.intersects(avoid_local, boxes)
    centre_local = np.column_stack([(gx0 + gx1) / 2.0, (gy0 + gy1) / 2.0])[keep]
    size = np.column_stack([gx1 - gx0, gy1 - gy0])[keep]
    return Cells(origin + rotate_xy(centre_local, angle), size, np.full(len(size), angle))


def points_on_cell_edges(cells: Cells, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points on cell outlines (the lattice's street lines), metric (n, 2)."""
    idx = rng.integers(0, len(cells), n)
    w, h = cells.size[idx, 0], cells.size[idx, 1]
    t = rng.uniform(0.0, 1.0, n) * 2.0 * (w + h)
    x = np.select([t < w, t < w + h, t < 2 * w + h], [-w / 2 + t, w / 2, w / 2 - (t - w - h)], -w / 2)
    y = np.select([t < w, t < w + h, t < 2 * w + h], [-h / 2, -h / 2 + (t - w), h / 2],
                  h / 2 - (t - 2 * w - h))
    return cells.local_to_metric(np.column_stack([x, y]), idx)


def cell_corners(cells: Cells, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random cell corners (street crossings), metric (n, 2)."""
    idx = rng.integers(0, len(cells), n)
    signs = rng.choice([-0.5, 0.5], size=(n, 2))
    return cells.local_to_metric(signs * cells.size[idx], idx)


# --- buildings ----------------------------------------------------------------------------

RECT, L_SHAPE, COURTYARD, TWIN, TOWER, VILLAGE_HOUSE = range(6)

_NORMAL_USE_WEIGHTS = {"住宅": 50, "商业": 9, "办公": 10, "商住混合": 12, "工业": 3, "教育": 5, "医疗": 2,
                       "公共服务": 6, "酒店": 3}
_INDUSTRIAL_STREETS = ("福保街道", "园岭街道", "沙头街道")  # bonded zone, 八卦岭, 车公庙
_TOWER_USE_WEIGHTS = {"办公": 55, "商业": 12, "酒店": 10, "商住混合": 23}
_LOW_RISE_HEIGHTS = {"工业": (12.0, 30.0), "教育": (12.0, 24.0), "医疗": (20.0, 60.0), "公共服务": (10.0, 30.0)}


@dataclass
class Buildings:
    """Building footprints (metric) with their attributes, in generation order."""

    geometry: np.ndarray
    centre: np.ndarray  # lattice cell centre, (n, 2)
    street: np.ndarray
    name: np.ndarray
    height: np.ndarray
    floors: np.ndarray
    use: np.ndarray
    year_built: np.ndarray

    def take(self, idx: np.ndarray) -> Buildings:
        return Buildings(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


@dataclass
class UrbanVillages:
    zones: np.ndarray  # metric rectangles
    names: list[str]
    angles: np.ndarray


def place_urban_villages(district: shapely.Geometry, no_build: shapely.Geometry,
                         rng: np.random.Generator) -> UrbanVillages:
    """A rotated rectangle (~200-360 m) for each named village that fits."""
    inner = shapely.buffer(district, -20.0)
    zones: list[shapely.Geometry] = []
    labels: list[str] = []
    angles: list[float] = []
    for name, (lon, lat) in names.URBAN_VILLAGES:
        centre = lonlat_to_metric(lon, lat)[0] + rng.normal(0.0, 30.0, 2)
        w, h, angle = rng.uniform(220.0, 360.0), rng.uniform(180.0, 300.0), rng.uniform(-0.35, 0.35)
        xy = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2.0
        zone = shapely.Polygon(centre + rotate_xy(xy, angle))
        if not inner.contains(zone) or no_build.intersects(zone):
            continue
        if zones and shapely.distance(zone, np.array(zones, dtype=object)).min() < 30.0:
            continue
        zones.append(zone)
        labels.append(name)
        angles.append(angle)
    return UrbanVillages(np.array(zones, dtype=object), labels, np.array(angles))


def _rect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-aligned rectangles a x b centred at 0, (n, 4, 2)."""
    return np.stack([np.column_stack([-a, -b]), np.column_stack([a, -b]), np.column_stack([a, b]),
                     np.column_stack([-a, b])], axis=1) / 2.0


def _l_shape(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rectangles with one corner notch (L shapes), (n, 6, 2)."""
    ca, cb = a * rng.uniform(0.35, 0.6, len(a)), b * rng.uniform(0.35, 0.6, len(a))
    x0, x1, y0, y1 = -a / 2, a / 2, -b / 2, b / 2
    xy = np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y0]), np.column_stack([x1, y1 - cb]),
                   np.column_stack([x1 - ca, y1 - cb]), np.column_stack([x1 - ca, y1]),
                   np.column_stack([x0, y1])], axis=1)
    flip = rng.choice([-1.0, 1.0], size=(len(a), 1, 2))  # which corner is notched
    return xy * flip


def _fit_in_cells(shell: np.ndarray, hole: np.ndarray | None, phi: np.ndarray, inner: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotate shapes by phi, shrink them to fit the inner cell rectangle, shift at random within it."""
    shell = rotate_xy(shell, phi)
    lo, hi = shell.min(axis=1), shell.max(axis=1)
    extent, mid = hi - lo, (hi + lo) / 2.0
    scale = np.minimum(1.0, np.min(inner / extent, axis=1))
    slack = np.maximum(inner - extent * scale[:, None], 0.0)
    offset = rng.uniform(-0.5, 0.5, slack.shape) * slack - mid * scale[:, None]
    shell = shell * scale[:, None, None] + offset[:, None, :]
    if hole is not None:
        hole = rotate_xy(hole, phi) * scale[:, None, None] + offset[:, None, :]
    return shell, hole


def building_footprints(cells: Cells, kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One footprint per cell, fully inside the cell less BUILDING_MARGIN_M (metric)."""
    inner = cells.size - 2.0 * BUILDING_MARGIN_M
    out = np.empty(len(cells), dtype=object)
    for k in (RECT, L_SHAPE, COURTYARD, TWIN, TOWER, VILLAGE_HOUSE):
        idx = np.flatnonzero(kind == k)
        if len(idx) == 0:
            continue
        w, h, n = inner[idx, 0], inner[idx, 1], len(idx)
        hole = None
        phi = np.zeros(n)
        if k == RECT:
            a = np.clip(w * rng.uniform(0.45, 0.95, n), 15.0, 60.0)
            b = np.clip(h * rng.uniform(0.45, 0.95, n), 15.0, 60.0)
            shell = _rect(a, b)
            phi = np.where(rng.random(n) < 0.35, rng.uniform(-0.26, 0.26, n), 0.0)
        elif k == L_SHAPE:
            a = np.clip(w * rng.uniform(0.6, 0.95, n), 22.0, 60.0)
            b = np.clip(h * rng.uniform(0.6, 0.95, n), 22.0, 60.0)
            shell = _l_shape(a, b, rng)
            phi = np.where(rng.random(n) < 0.25, rng.uniform(-0.2, 0.2, n), 0.0)
        elif k == COURTYARD:
            a = np.clip(w * rng.uniform(0.85, 0.98, n), 36.0, 60.0)
            b = np.clip(h * rng.uniform(0.85, 0.98, n), 36.0, 60.0)
            t = np.minimum(rng.uniform(8.0, 12.0, n), (np.minimum(a, b) - 12.0) / 2.0)
            shell, hole = _rect(a, b), _rect(a - 2 * t, b - 2 * t)
        elif k == TWIN:
            a = np.clip(w * rng.uniform(0.75, 0.95, n), 34.0, 60.0)
            b = np.clip(h * rng.uniform(0.45, 0.9, n), 15.0, 60.0)
            gap = rng.uniform(4.0, 8.0, n)
            half = _rect((a - gap) / 2.0, b)
            shift = np.column_stack([(a + gap) / 4.0, np.zeros(n)])[:, None, :]
            shell = np.concatenate([half - shift, half + shift], axis=1)
        elif k == TOWER:
            a = np.minimum(rng.uniform(28.0, 50.0, n), w)
            b = np.minimum(a * rng.uniform(0.75, 1.0, n), h)
            shell = _rect(a, b)
            phi = np.where(rng.random(n) < 0.2, rng.uniform(-0.3, 0.3, n), 0.0)
        else:
            a = np.minimum(rng.uniform(10.0, 15.0, n), w)
            b = np.minimum(rng.uniform(10.0, 15.0, n), h)
            shell = _rect(a, b)
        shell, hole = _fit_in_cells(shell, hole, phi, inner[idx], rng)
        shell = cells.local_to_metric(shell, idx)
        if k == TWIN:
            out[idx] = shapely.multipolygons(np.stack([shapely.polygons(shell[:, :4]),
                                                       shapely.polygons(shell[:, 4:])], axis=1))
        elif hole is not None:
            rings = shapely.linearrings(cells.local_to_metric(hole, idx))
            out[idx] = shapely.polygons(shapely.linearrings(shell), holes=rings[:, None])
        else:
            out[idx] = shapely.polygons(shell)
    return out


def _weighted_choice(table: dict[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def building_attributes(kind: np.ndarray, dist_cbd: np.ndarray, street: np.ndarray,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """use, height (floors x 3.0-3.5 m), floors and year_built for each building."""
    n = len(kind)
    street_names = np.array([s for _, s, _ in names.STREETS], dtype=object)[street]
    use = _weighted_choice(_NORMAL_USE_WEIGHTS, n, rng)
    industrial = np.isin(street_names, _INDUSTRIAL_STREETS) & (rng.random(n) < 0.15)
    use[industrial] = "工业"
    tower = kind == TOWER
    use[tower] = _weighted_choice(_TOWER_USE_WEIGHTS, int(tower.sum()), rng)
    village = kind == VILLAGE_HOUSE
    use[village] = np.where(rng.random(int(village.sum())) < 0.8, "住宅", "商住混合")

    target = 20.0 + 60.0 * rng.beta(1.8, 2.4, n)  # 20-80 m across most of the district
    for label, (lo, hi) in _LOW_RISE_HEIGHTS.items():
        sel = (use == label) & ~tower
        target[sel] = rng.uniform(lo, hi, int(sel.sum()))
    closeness = np.clip(1.0 - dist_cbd / CBD_RADIUS_M, 0.0, 1.0)
    target[tower] = 100.0 + 200.0 * closeness[tower] * rng.uniform(0.3, 1.0, int(tower.sum()))
    floor_height = rng.uniform(3.0, 3.5, n)
    floors = np.maximum(1, np.rint(target / floor_height)).astype(np.int32)
    floors[village] = rng.choice([7, 7, 8, 8, 8, 6, 9], size=int(village.sum()))
    height = np.round(floors * floor_height, 1)

    year = rng.integers(1980, 2025, n)
    year = np.where(rng.random(n) < 0.6, rng.integers(1990, 2016, n), year)
    year[tower] = rng.integers(2000, 2025, int(tower.sum()))
    year[village] = rng.integers(1985, 2009, int(village.sum()))
    year[use == "工业"] = rng.integers(1982, 2011, int((use == "工业").sum()))
    return {"use": use, "height": height, "floors": floors, "year_built": year.astype(np.int32)}


def building_names(centre: np.ndarray, street: np.ndarray, use: np.ndarray, village: np.ndarray,
                   village_names: list[str], rng: np.random.Generator) -> np.ndarray:
    """Estate-style names: one estate stem per ~350 m tile, then "<k>栋"; villages "<村><k>栋"."""
    tile = np.floor(centre / 350.0).astype(np.int64)
    tile_key = np.column_stack([street, tile])
    _, tile_id = np.unique(tile_key, axis=0, return_inverse=True)
    tile_id = tile_id.ravel()
    stems = np.array(names.ESTATE_STEMS, dtype=object)[rng.integers(0, len(names.ESTATE_STEMS), tile_id.max() + 1)]
    use_index = {u: i for i, u in enumerate(names.BUILDING_USES)}
    estate = np.empty(len(use), dtype=object)
    for i, (t, u) in enumerate(zip(tile_id, use)):
        suffixes = names.BUILDING_SUFFIXES[u]
        estate[i] = stems[t] + suffixes[(t + use_index[u]) % len(suffixes)]
    estate[village >= 0] = np.array([f"{village_names[v]}村" for v in village[village >= 0]], dtype=object)
    ordinal = pd.Series(estate).groupby(estate, sort=False).cumcount().to_numpy() + 1
    return np.array([f"{e}{k}栋" for e, k in zip(estate, ordinal)], dtype=object)


def build_buildings(admin: Admin, land: LandCover, seed: int) -> tuple[Buildings, Cells]:
    """Every building the lattices hold (full scale), plus all street-lattice cells (for
    placing street furniture). Buildings never overlap: each sits inside its own cell
    less BUILDING_MARGIN_M, cells never overlap, and village zones are kept apart from
    ordinary cells."""
    rng = _rng(seed, "buildings")
    no_build = land.no_build_zone()
    villages = place_urban_villages(admin.boundary, no_build, rng)
    avoid = shapely.union_all([no_build, *shapely.buffer(villages.zones, 3.0)])

    parts: list[Cells] = []
    street_of_cell: list[np.ndarray] = []
    for s, geom in enumerate(admin.streets.geometry):
        angle = 0.0 if names.STREETS[s][1] == "福田街道" else rng.uniform(-0.15, 0.15)
        cells = lattice_cells(shapely.buffer(geom, -BUILDING_MARGIN_M), angle, (40.0, 64.0), rng, avoid)
        parts.append(cells)
        street_of_cell.append(np.full(len(cells), s))
    road_cells = Cells.concat(parts)
    n_road = len(road_cells)

    inner = shapely.buffer(admin.boundary, -BUILDING_MARGIN_M)
    village_of_cell: list[np.ndarray] = [np.full(n_road, -1)]
    for v, (zone, angle) in enumerate(zip(villages.zones, villages.angles)):
        cells = lattice_cells(shapely.intersection(zone, inner), angle, (15.5, 19.5), rng, no_build)
        parts.append(cells)
        village_of_cell.append(np.full(len(cells), v))
        street_of_cell.append(admin.street_of_xy(cells.centre))
    cells = Cells.concat(parts)
    street = np.concatenate(street_of_cell)
    village = np.concatenate(village_of_cell)

    occupied = np.where(village >= 0, rng.random(len(cells)) < 0.96, rng.random(len(cells)) < 0.9)
    cells, street, village = cells.take(occupied), street[occupied], village[occupied]
    n = len(cells)
    dist_cbd = np.hypot(*(cells.centre - lonlat_to_metric(*CBD_LONLAT)[0]).T)
    inner_min = (cells.size - 2.0 * BUILDING_MARGIN_M).min(axis=1)
    inner_w = cells.size[:, 0] - 2.0 * BUILDING_MARGIN_M
    u = rng.random(n)
    kind = np.full(n, RECT)
    kind[(u < 0.24)] = L_SHAPE
    kind[(u < 0.04) & (inner_w >= 36.0)] = TWIN
    kind[(u < 0.03) & (inner_min >= 38.0)] = COURTYARD
    tower = rng.random(n) < np.clip(0.9 - dist_cbd / 1600.0, 0.0, 0.9) * (dist_cbd < CBD_RADIUS_M)
    kind[tower] = TOWER
    kind[village >= 0] = VILLAGE_HOUSE

    geometry = building_footprints(cells, kind, rng)
    attrs = building_attributes(kind, dist_cbd, street, rng)
    label = building_names(cells.centre, street, attrs["use"], village, villages.names, rng)
    return Buildings(geometry=geometry, centre=cells.centre, street=street, name=label, **attrs), road_cells


def select_buildings(buildings: Buildings, spec: ScaleSpec, admin: Admin) -> Buildings:
    """Full scale keeps every building. A scale with a building count keeps whole
    grids, nearest the CBD first, until that count is reached: a dense, contiguous
    piece of central Futian (towers, housing, an urban village) with admin-aligned
    edges."""
    if spec.buildings is None or spec.buildings >= len(buildings.geometry):
        return buildings
    grids = admin.grids.geometry
    tree = shapely.STRtree(grids)
    points = shapely.points(buildings.centre)
    b_idx, g_idx = tree.query(points, predicate="within")
    grid_of = np.full(len(points), -1)
    grid_of[b_idx] = g_idx
    cbd = shapely.Point(lonlat_to_metric(*CBD_LONLAT)[0])
    order = np.argsort(shapely.distance(cbd, shapely.centroid(grids)), kind="stable")
    per_grid = np.bincount(grid_of[grid_of >= 0], minlength=len(grids))
    chosen: list[int] = []
    total = 0
    for g in order:
        if total >= spec.buildings:
            break
        if total + per_grid[g] <= spec.buildings * SMALL_OVERSHOOT:  # skip a grid that overshoots
            chosen.append(int(g))
            total += int(per_grid[g])
    keep = np.isin(grid_of, chosen)
    return buildings.take(np.flatnonzero(keep))


# --- parcels -----------------------------------------------------------------------------

_PARCEL_USE_WEIGHTS_CBD = np.array([15, 40, 15, 0, 5, 20, 3, 2], dtype=float)
_PARCEL_USE_WEIGHTS = np.array([40, 12, 20, 8, 8, 8, 2, 2], dtype=float)
_FAR_RANGE = {"R2": (2.5, 6.0), "C1": (4.0, 8.0), "GIC": (1.0, 3.0), "M1": (2.0, 4.0), "M0": (4.0, 6.0),
              "C1/R2": (4.0, 8.0), "U": (0.5, 2.0), "S4": (0.5, 2.0)}
_HEIGHT_LIMITS = {"R2": (80, 100, 120, 150), "C1": (60, 80, 100, 150), "GIC": (24, 36, 50),
                  "M1": (24, 36, 50), "M0": (80, 100, 120), "C1/R2": (100, 120, 150), "U": (24, 36),
                  "S4": (24, 36)}
PARCEL_APPROVAL_RANGE = (pd.Timestamp("2015-01-01"), pd.Timestamp("2026-06-30"))


@dataclass
class Parcels:
    geometry: np.ndarray  # metric
    columns: dict[str, np.ndarray | list]


def build_parcels(admin: Admin, land: LandCover, spec: ScaleSpec, seed: int) -> Parcels:
    """Approved land parcels: lattice blocks (50-300 m) inset by a road margin, so parcels
    never overlap; they may overlap buildings (land supervision looks for exactly that)."""
    rng = _rng(seed, "parcels")
    region = shapely.buffer(admin.boundary, -5.0)
    cells = lattice_cells(region, float(rng.normal(0.0, 0.04)), (60.0, 260.0), rng, land.no_build_zone())
    cbd = lonlat_to_metric(*CBD_LONLAT)[0]
    dist_cbd = np.hypot(*(cells.centre - cbd).T)
    if spec.parcels < len(cells) and spec.cbd_focus:
        chosen = np.sort(np.argsort(dist_cbd, kind="stable")[: spec.parcels])
    elif spec.parcels < len(cells):
        chosen = np.sort(rng.choice(len(cells), spec.parcels, replace=False))
    else:
        chosen = np.arange(len(cells))
    cells, dist_cbd = cells.take(chosen), dist_cbd[chosen]
    n = len(cells)

    inset = rng.uniform(4.0, 12.0, (n, 4))  # west, east, south, north road margins
    x0, x1 = -cells.size[:, 0] / 2 + inset[:, 0], cells.size[:, 0] / 2 - inset[:, 1]
    y0, y1 = -cells.size[:, 1] / 2 + inset[:, 2], cells.size[:, 1] / 2 - inset[:, 3]
    cut = rng.random(n) < 0.25  # some lose a corner (a road bend, a plaza)
    cx, cy = (x1 - x0) * rng.uniform(0.2, 0.4, n) * cut, (y1 - y0) * rng.uniform(0.2, 0.4, n) * cut
    local = np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y0]), np.column_stack([x1, y1 - cy]),
                      np.column_stack([x1 - cx, y1]), np.column_stack([x0, y1])], axis=1)
    geometry = shapely.remove_repeated_points(shapely.polygons(cells.local_to_metric(local)), 0.0)

    near_cbd = dist_cbd < CBD_RADIUS_M
    use_idx = np.where(near_cbd,
                       rng.choice(len(names.PARCEL_USES), n, p=_PARCEL_USE_WEIGHTS_CBD / _PARCEL_USE_WEIGHTS_CBD.sum()),
                       rng.choice(len(names.PARCEL_USES), n, p=_PARCEL_USE_WEIGHTS / _PARCEL_USE_WEIGHTS.sum()))
    use = [names.PARCEL_USES[i][0] for i in use_idx]
    code = [names.PARCEL_USES[i][1] for i in use_idx]
    lo = np.array([_FAR_RANGE[c][0] for c in code])
    hi = np.array([_FAR_RANGE[c][1] for c in code])
    far = rng.uniform(lo, hi)
    far = np.where(near_cbd & np.isin(code, ["C1", "C1/R2"]), far * 1.6, far)
    coverage = np.where(np.isin(code, ["M1", "U", "S4"]), rng.uniform(0.4, 0.6, n), rng.uniform(0.2, 0.45, n))
    limits = [_HEIGHT_LIMITS[c][int(rng.integers(len(_HEIGHT_LIMITS[c])))] for c in code]
    height_limit = np.where(near_cbd & np.isin(code, ["C1", "C1/R2"]), rng.choice([200, 250, 300], n), limits)

    first, last = PARCEL_APPROVAL_RANGE
    approval = first + pd.to_timedelta(rng.integers(0, (last - first).days + 1, n), unit="D")
    start_deadline = approval + pd.DateOffset(years=1)
    completion_deadline = approval + pd.DateOffset(years=3)
    today = NOW.tz_localize(None)
    started = rng.random(n) < np.where(start_deadline < today, 0.88, 0.4)
    finished = rng.random(n) < 0.85
    status = np.where(
        ~started,
        np.where(start_deadline < today, "逾期未开工", "待开工"),
        np.where(completion_deadline >= today, "在建", np.where(finished, "已竣工", "逾期未竣工")),
    )
    street = admin.street_of_xy(cells.centre)
    seq = pd.Series(street).groupby(street).cumcount().to_numpy() + 1
    parcel_id = [f"B{101 + s}-{k:04d}" for s, k in zip(street, seq)]
    columns: dict[str, np.ndarray | list] = {
        "parcel_id": parcel_id,
        "use": use,
        "use_code": code,
        "approved_far": np.round(far, 2),
        "coverage": np.round(coverage, 2),
        "height_limit": height_limit.astype(float),
        "approval_date": _as_dates(approval),
        "start_deadline": _as_dates(start_deadline),
        "completion_deadline": _as_dates(completion_deadline),
        "status": status,
    }
    return Parcels(geometry, columns)


def _as_dates(values) -> np.ndarray:
    """datetime.date objects (written as GeoPackage DATE fields)."""
    return pd.DatetimeIndex(values).date


# --- point layers --------------------------------------------------------------------------


def _near_buildings(buildings: Buildings, weights: np.ndarray, n: int, jitter_m: float,
                    inside: shapely.Geometry, rng: np.random.Generator) -> np.ndarray:
    """Points at buildings (picked with the given weights) jittered by a few metres;
    a jittered point that leaves the district falls back to the building centroid."""
    centroids = shapely.get_coordinates(shapely.centroid(buildings.geometry))
    idx = rng.choice(len(centroids), size=n, p=weights / weights.sum())
    xy = centroids[idx] + rng.normal(0.0, jitter_m, (n, 2))
    outside = ~shapely.contains_xy(inside, xy[:, 0], xy[:, 1])
    xy[outside] = centroids[idx[outside]]
    return xy


def _southern_points(region: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """Points inside region, denser towards its southern edge (river, coast)."""
    x0, y0, x1, y1 = region.bounds
    found: list[np.ndarray] = []
    count = 0
    while count < n:
        m = max(64, 3 * (n - count))
        xy = np.column_stack([rng.uniform(x0, x1, m), y0 + (y1 - y0) * rng.beta(1.2, 6.0, m)])
        xy = xy[shapely.contains_xy(region, xy[:, 0], xy[:, 1])]
        found.append(xy)
        count += len(xy)
    return np.vstack(found)[:n]


def _shuffled_counts(weights: np.ndarray, n: int, minimum: int, rng: np.random.Generator) -> np.ndarray:
    """Category index per item: exact shares of weights (each >= minimum), in random order."""
    counts = apportion(n, weights, minimum) if n >= minimum * len(weights) else apportion(n, weights, 0)
    return rng.permutation(np.repeat(np.arange(len(weights)), counts))


def _random_dates(first: str, last: str, n: int, rng: np.random.Generator) -> np.ndarray:
    start, end = pd.Timestamp(first), pd.Timestamp(last)
    return _as_dates(start + pd.to_timedelta(rng.integers(0, (end - start).days + 1, n), unit="D"))


@dataclass
class PointLayer:
    xy: np.ndarray  # metric (n, 2)
    columns: dict[str, np.ndarray | list]


def build_sensors(buildings: Buildings, road_cells: Cells, district: shapely.Geometry, n: int,
                  seed: int) -> PointLayer:
    """IoT sensors: fire/gas/electrical detectors in buildings, manholes, hydrants,
    air and noise monitors on the street lattice, water level gauges towards the south."""
    rng = _rng(seed, "sensors")
    table = names.SENSOR_CATEGORIES
    category = _shuffled_counts(np.array([share for _, _, share, _ in table]), n, 1, rng)
    codes = np.array([c for c, _, _, _ in table], dtype=object)[category]
    xy = np.empty((n, 2))
    inside = shapely.buffer(district, -1.0)
    shapely.prepare(inside)
    in_building = np.isin(codes, ["smoke_detector", "gas_detector", "electrical_fire"])
    weight = shapely.area(buildings.geometry) * buildings.floors
    xy[in_building] = _near_buildings(buildings, weight, int(in_building.sum()), 3.0, inside, rng)
    on_street = np.isin(codes, ["manhole_cover", "hydrant_pressure", "air_quality", "noise"])
    xy[on_street] = points_on_cell_edges(road_cells, int(on_street.sum()), rng)
    water = codes == "water_level"
    xy[water] = _southern_points(shapely.buffer(district, -5.0), int(water.sum()), rng)

    vendor = np.empty(n, dtype=object)
    for i, (_, _, _, vendors) in enumerate(table):
        sel = category == i
        vendor[sel] = np.array(vendors, dtype=object)[rng.integers(0, len(vendors), int(sel.sum()))]
    status = np.array(["normal", "fault", "offline"], dtype=object)[rng.choice(3, n, p=[0.93, 0.04, 0.03])]
    return PointLayer(xy, {
        "id": [f"SNS{i:07d}" for i in range(1, n + 1)],
        "category": codes,
        "category_name": np.array([name for _, name, _, _ in table], dtype=object)[category],
        "install_date": _random_dates("2018-01-01", "2026-10-31", n, rng),
        "vendor": vendor,
        "status": status,
    })


def _road_names(street: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(len(street), dtype=object)
    for s, (_, name, _) in enumerate(names.STREETS):
        sel = street == s
        roads = np.array(names.ROADS[name], dtype=object)
        out[sel] = roads[rng.integers(0, len(roads), int(sel.sum()))]
    return out


def build_cameras(road_cells: Cells, admin: Admin, n: int, seed: int) -> PointLayer:
    """Video cameras at street crossings and along streets."""
    rng = _rng(seed, "cameras")
    at_corner = rng.random(n) < 0.5
    xy = np.empty((n, 2))
    xy[at_corner] = cell_corners(road_cells, int(at_corner.sum()), rng)
    xy[~at_corner] = points_on_cell_edges(road_cells, int((~at_corner).sum()), rng)
    kinds = np.array([k for k, _ in names.CAMERA_KINDS], dtype=object)
    kind = kinds[rng.choice(len(kinds), n, p=[w for _, w in names.CAMERA_KINDS])]
    fov = np.select([kind == "枪机", kind == "球机"], [rng.uniform(30, 70, n), rng.uniform(45, 90, n)],
                    rng.uniform(90, 100, n))
    range_m = np.select([kind == "枪机", kind == "球机"], [rng.uniform(50, 200, n), rng.uniform(60, 200, n)],
                        rng.uniform(30, 80, n))
    street = admin.street_of_xy(xy)
    street_names = np.array(admin.streets.names, dtype=object)[street]
    road = _road_names(street, rng)
    number = rng.integers(1, 300, n)
    ids = [f"CAM{i:06d}" for i in range(1, n + 1)]
    return PointLayer(xy, {
        "id": ids,
        "name": [f"{s}{r}{k}号{c}" for s, r, k, c in zip(street_names, road, number, kind)],
        "heading": np.round(rng.uniform(0.0, 360.0, n), 1),
        "fov": np.round(fov, 1),
        "range_m": np.round(range_m, 1),
        "height_m": np.round(rng.uniform(3.0, 12.0, n), 1),
        "stream_url": [f"/live/cameras/{i}/index.m3u8" for i in ids],
        "status": np.where(rng.random(n) < 0.94, "online", "offline"),
        "kind": kind,
    })


# Hour-of-day weights for ticket creation (Asia/Shanghai local time).
_HOURLY = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4.5, 6.5, 7.0, 6.5,
                    5.0, 5.5, 6.5, 6.5, 6.0, 5.5, 4.5, 4.0, 3.5, 3.0, 2.2, 1.5])
OPEN_SHARE = 0.02  # the newest ~2 % of tickets are still open
LATE_SHARE = 0.10  # ~10 % miss one of the 10 min / 30 min / 24 h targets


def ticket_timeline(n: int, rng: np.random.Generator) -> dict[str, pd.Series]:
    """created/acknowledged/contacted/resolved times following the "10-30-24" rule
    (acknowledge within 10 min, contact within 30 min, resolve within 24 h of creation)."""
    minute = 60
    day = rng.integers(0, 365, n)
    hour = rng.choice(24, n, p=_HOURLY / _HOURLY.sum())
    created = (day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)).astype(np.int64)

    ack = np.clip(rng.lognormal(np.log(3 * minute), 0.6, n), 20, 9.5 * minute)
    contact = ack + rng.uniform(0.05, 1.0, n) * (29.5 * minute - ack)
    resolve = np.clip(rng.lognormal(np.log(5 * 3_600), 0.8, n), 40 * minute, 23.8 * 3_600)
    late_stage = np.where(rng.random(n) < LATE_SHARE, rng.choice(3, n, p=[0.3, 0.3, 0.4]), -1)
    ack = np.where(late_stage == 0, rng.uniform(10.5, 90, n) * minute, ack)
    contact = np.where(late_stage == 0, ack + rng.uniform(2, 30, n) * minute, contact)
    contact = np.where(late_stage == 1, rng.uniform(31, 240, n) * minute, contact)
    resolve = np.where(late_stage == 2, rng.uniform(24.5, 120, n) * 3_600, resolve)
    resolve = np.maximum(resolve, contact + rng.uniform(5, 60, n) * minute)

    # seconds since the window start (local midnight a year before NOW)
    stamps = np.column_stack([created, created + ack, created + contact, created + resolve]).astype(np.int64)
    window_start = NOW - pd.Timedelta(days=365)
    now = int((NOW - window_start).total_seconds())
    # stages reached (1 = created only, 2 = acknowledged, 3 = contacted, 4 = resolved):
    # the newest tickets are still open, and nothing happens after NOW
    newest = np.argsort(created, kind="stable")[::-1][: int(round(OPEN_SHARE * n))]
    reached = np.full(n, 4)
    reached[newest] = rng.choice([1, 2, 3], len(newest), p=[0.35, 0.3, 0.35])
    reached = np.minimum(reached, (stamps <= now).sum(axis=1))
    present = np.arange(4)[None, :] < reached[:, None]
    out: dict[str, pd.Series] = {}
    for j, key in enumerate(("created_at", "acknowledged_at", "contacted_at", "resolved_at")):
        values = pd.Series(window_start + pd.to_timedelta(stamps[:, j], unit="s"))
        out[key] = values.where(present[:, j])
    return out


def build_tickets(buildings: Buildings, road_cells: Cells, admin: Admin, n: int, seed: int) -> PointLayer:
    """Citizen requests (民生诉求) at buildings and on streets, with SLA timestamps."""
    rng = _rng(seed, "tickets")
    inside = shapely.buffer(admin.boundary, -1.0)
    shapely.prepare(inside)
    at_building = rng.random(n) < 0.5
    xy = np.empty((n, 2))
    xy[at_building] = _near_buildings(buildings, np.ones(len(buildings.geometry)), int(at_building.sum()), 15.0,
                                      inside, rng)
    xy[~at_building] = points_on_cell_edges(road_cells, int((~at_building).sum()), rng)

    times = ticket_timeline(n, rng)
    order = np.argsort(times["created_at"].to_numpy(), kind="stable")  # ids follow creation time
    xy = xy[order]
    times = {k: v.iloc[order].reset_index(drop=True) for k, v in times.items()}

    channel = _shuffled_counts(np.array([w for _, w in names.TICKET_CHANNELS]), n, 1, rng)
    cat_weights = np.array([w for _, w, _ in names.TICKET_CATEGORIES])
    category = rng.choice(len(cat_weights), n, p=cat_weights / cat_weights.sum())
    street = admin.street_of_xy(xy)
    street_names = np.array(admin.streets.names, dtype=object)[street]
    departments = np.array([d for _, _, d in names.TICKET_CATEGORIES], dtype=object)[category]
    to_street_office = (departments == "") | (rng.random(n) < 0.12)
    departments = np.where(to_street_office, "福田区" + street_names + "办事处", departments)
    road = _road_names(street, rng)
    number = rng.integers(1, 400, n)
    status = np.where(times["resolved_at"].notna(), "已办结",
                      np.where(times["acknowledged_at"].notna(), "处理中", "待受理"))
    return PointLayer(xy, {
        "id": [f"TK{i:08d}" for i in range(1, n + 1)],
        "channel": np.array([c for c, _ in names.TICKET_CHANNELS], dtype=object)[channel],
        "category": np.array([c for c, _, _ in names.TICKET_CATEGORIES], dtype=object)[category],
        "address": [f"{s}{r}{k}号" for s, r, k in zip(street_names, road, number)],
        **times,
        "status": status,
        "department": departments,
    })


# --- writing ------------------------------------------------------------------------------


def _frame(columns: dict, geometry: np.ndarray) -> gpd.GeoDataFrame:
    data = {k: (v if isinstance(v, pd.Series) else pd.Series(v)) for k, v in columns.items()}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometry, crs="EPSG:4326"))


def _point_geometry(xy: np.ndarray) -> np.ndarray:
    """Metric (n, 2) -> EPSG:4326 points rounded like every other vertex."""
    return to_output(shapely.points(xy))


def write_layer(out_dir: Path, layer: str, frame: gpd.GeoDataFrame) -> int:
    """Write one layer to ``out_dir/<layer>.gpkg`` (replacing the file)."""
    path = out_dir / f"{layer}.gpkg"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # GeoPackage DATETIME is UTC with a "Z" (other offsets make GDAL warn on
    # every read); the Arrow path writes datetime.date columns as DATE fields.
    frame = frame.copy()
    for column, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC")
    pyogrio.write_dataframe(frame, path, layer=layer, driver="GPKG", use_arrow=True,
                            layer_options={"SPATIAL_INDEX": "NO"})
    return len(frame)


def _admin_frames(admin: Admin) -> dict[str, Callable[[], gpd.GeoDataFrame]]:
    streets, comms, grids = admin.streets, admin.communities, admin.grids
    comm_street = comms.parent
    grid_comm = grids.parent

    def pick(values: list[str], idx: np.ndarray) -> np.ndarray:
        return np.array(values, dtype=object)[idx]

    return {
        "futian_boundary": lambda: _frame(
            {"name": [names.DISTRICT_NAME], "adcode": [names.DISTRICT_ADCODE]},
            as_multipolygons(to_output([admin.boundary]))),
        "streets": lambda: _frame(
            {"street_code": streets.codes, "street": streets.names},
            as_multipolygons(to_output(streets.geometry))),
        "communities": lambda: _frame(
            {"community_code": comms.codes, "community": comms.names,
             "street_code": pick(streets.codes, comm_street), "street": pick(streets.names, comm_street)},
            as_multipolygons(to_output(comms.geometry))),
        "grids": lambda: _frame(
            {"grid_code": grids.codes, "grid_name": grids.names,
             "community_code": pick(comms.codes, grid_comm), "community": pick(comms.names, grid_comm),
             "street_code": pick(streets.codes, comm_street[grid_comm]),
             "street": pick(streets.names, comm_street[grid_comm])},
            as_multipolygons(to_output(grids.geometry))),
    }


def _patch_frame(patches: Patches) -> gpd.GeoDataFrame:
    return _frame({"code": patches.codes, "name": patches.names,
                   "area_ha": np.round(shapely.area(patches.geometry) / 1e4, 4)},
                  as_multipolygons(to_output(patches.geometry)))


def _buildings_frame(buildings: Buildings) -> gpd.GeoDataFrame:
    n = len(buildings.geometry)
    return _frame({
        "id": [f"BLD{i:06d}" for i in range(1, n + 1)],
        "name": buildings.name,
        "height": buildings.height,
        "floors": buildings.floors,
        "use": buildings.use,
        "year_built": buildings.year_built,
        "base_height": np.zeros(n),
    }, as_multipolygons(to_output(buildings.geometry)))


def _parcels_frame(parcels: Parcels) -> gpd.GeoDataFrame:
    return _frame(parcels.columns, as_multipolygons(to_output(parcels.geometry)))


def _points_frame(layer: PointLayer) -> gpd.GeoDataFrame:
    return _frame(layer.columns, _point_geometry(layer.xy))


def generate(out_dir: Path, scale: Scale = "small", seed: int = 42,
             on_layer: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Write one GeoPackage per layer into out_dir (out_dir/<layer>.gpkg, GDAL layer name =
    <layer>), all in EPSG:4326 (lon/lat WGS84). Returns {layer: feature_count}. Calls
    on_layer(layer, count) after each layer. The data is synthetic (see the module docstring)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    spec = SCALES[scale]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    admin = build_admin(load_boundary_metric(), seed)
    land = build_land_cover(admin.boundary, seed)
    all_buildings, road_cells = build_buildings(admin, land, seed)
    buildings = select_buildings(all_buildings, spec, admin)

    builders: dict[str, Callable[[], gpd.GeoDataFrame]] = {
        **_admin_frames(admin),
        "buildings": lambda: _buildings_frame(buildings),
        "parcels": lambda: _parcels_frame(build_parcels(admin, land, spec, seed)),
        "farmland": lambda: _patch_frame(land.farmland),
        "forest": lambda: _patch_frame(land.forest),
        "eco_redline": lambda: _patch_frame(land.eco_redline),
        "sensors": lambda: _points_frame(build_sensors(buildings, road_cells, admin.boundary, spec.sensors, seed)),
        "cameras": lambda: _points_frame(build_cameras(road_cells, admin, spec.cameras, seed)),
        "tickets": lambda: _points_frame(build_tickets(buildings, road_cells, admin, spec.tickets, seed)),
    }
    counts: dict[str, int] = {}
    for layer in LAYERS:
        counts[layer] = write_layer(out_dir, layer, builders[layer]())
        if on_layer is not None:
            on_layer(layer, counts[layer])
    return counts
