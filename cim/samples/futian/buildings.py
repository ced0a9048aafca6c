"""Buildings: urban villages, footprints, attributes, names and the per-scale selection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples import names
from cim.samples.futian.admin import Admin
from cim.samples.futian.geometry import lonlat_to_metric, rotate_xy
from cim.samples.futian.landcover import LandCover
from cim.samples.futian.lattice import Cells, lattice_cells
from cim.samples.futian.params import (
    BUILDING_MARGIN_M,
    CBD_LONLAT,
    CBD_RADIUS_M,
    SMALL_OVERSHOOT,
    ScaleSpec,
)

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng

RECT, L_SHAPE, COURTYARD, TWIN, TOWER, VILLAGE_HOUSE = range(6)

_NORMAL_USE_WEIGHTS = {
    "住宅": 50,
    "商业": 9,
    "办公": 10,
    "商住混合": 12,
    "工业": 3,
    "教育": 5,
    "医疗": 2,
    "公共服务": 6,
    "酒店": 3,
}
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
    plot: np.ndarray  # index of its cell in the street lattices' plots; -1: a house of an urban village

    def take(self, idx: np.ndarray) -> Buildings:
        return Buildings(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


@dataclass
class UrbanVillages:
    zones: np.ndarray  # metric rectangles
    names: list[str]
    angles: np.ndarray


def place_urban_villages(district: BaseGeometry, no_build: BaseGeometry, rng: np.random.Generator) -> UrbanVillages:
    """A rotated rectangle (~200-360 m) for each named village that fits."""
    inner = shapely.buffer(district, -20.0)
    zones: list[BaseGeometry] = []
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
    return (
        np.stack(
            [np.column_stack([-a, -b]), np.column_stack([a, -b]), np.column_stack([a, b]), np.column_stack([-a, b])],
            axis=1,
        )
        / 2.0
    )


def _l_shape(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rectangles with one corner notch (L shapes), (n, 6, 2)."""
    ca, cb = a * rng.uniform(0.35, 0.6, len(a)), b * rng.uniform(0.35, 0.6, len(a))
    x0, x1, y0, y1 = -a / 2, a / 2, -b / 2, b / 2
    xy = np.stack(
        [
            np.column_stack([x0, y0]),
            np.column_stack([x1, y0]),
            np.column_stack([x1, y1 - cb]),
            np.column_stack([x1 - ca, y1 - cb]),
            np.column_stack([x1 - ca, y1]),
            np.column_stack([x0, y1]),
        ],
        axis=1,
    )
    flip = rng.choice([-1.0, 1.0], size=(len(a), 1, 2))  # which corner is notched
    return xy * flip


def _fit_in_cells(
    shell: np.ndarray, hole: np.ndarray | None, phi: np.ndarray, inner: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
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
            first, second = shapely.polygons(shell[:, :4]), shapely.polygons(shell[:, 4:])
            assert isinstance(first, np.ndarray) and isinstance(second, np.ndarray)  # (n, 4, 2) rings: n polygons
            out[idx] = shapely.multipolygons(np.stack([first, second], axis=1))
        elif hole is not None:
            rings = shapely.linearrings(cells.local_to_metric(hole, idx))
            assert isinstance(rings, np.ndarray)  # (n, k, 2) coordinates: n rings
            out[idx] = shapely.polygons(shapely.linearrings(shell), holes=rings[:, None])
        else:
            out[idx] = shapely.polygons(shell)
    return out


def building_ids(numbers: np.ndarray) -> np.ndarray:
    """Building ids ("BLD000001") of 1-based numbers."""
    return np.array([f"BLD{i:06d}" for i in numbers], dtype=object)


def _weighted_choice(table: Mapping[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def building_attributes(
    kind: np.ndarray, dist_cbd: np.ndarray, street: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
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


def building_names(
    centre: np.ndarray,
    street: np.ndarray,
    use: np.ndarray,
    village: np.ndarray,
    village_names: list[str],
    rng: np.random.Generator,
) -> np.ndarray:
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


def build_buildings(admin: Admin, land: LandCover, seed: int) -> tuple[Buildings, Cells, UrbanVillages]:
    """Every building the lattices hold (full scale), all street-lattice cells ("plots",
    built on or not: street blocks are made of them, street furniture is placed on their
    edges; ``group`` is the street) and the urban villages. Buildings never overlap: each
    sits inside its own cell less BUILDING_MARGIN_M, cells never overlap, and village
    zones are kept apart from ordinary cells."""
    rng = _rng(seed, "buildings")
    no_build = land.no_build_zone()
    villages = place_urban_villages(admin.boundary, no_build, rng)
    avoid = shapely.union_all([no_build, *shapely.buffer(villages.zones, 3.0)])

    parts: list[Cells] = []
    street_of_cell: list[np.ndarray] = []
    for s, geom in enumerate(admin.streets.geometry):
        angle = 0.0 if names.STREETS[s][1] == "福田街道" else rng.uniform(-0.15, 0.15)
        cells = lattice_cells(shapely.buffer(geom, -BUILDING_MARGIN_M), angle, (40.0, 64.0), rng, avoid, group=s)
        parts.append(cells)
        street_of_cell.append(np.full(len(cells), s))
    road_cells = Cells.concat(parts)
    n_road = len(road_cells)

    inner = shapely.buffer(admin.boundary, -BUILDING_MARGIN_M)
    village_of_cell: list[np.ndarray] = [np.full(n_road, -1)]
    for v, (zone, angle) in enumerate(zip(villages.zones, villages.angles)):
        cells = lattice_cells(shapely.intersection(zone, inner), angle, (15.5, 19.5), rng, no_build, group=-1 - v)
        parts.append(cells)
        village_of_cell.append(np.full(len(cells), v))
        street_of_cell.append(admin.street_of_xy(cells.centre))
    cells = Cells.concat(parts)
    street = np.concatenate(street_of_cell)
    village = np.concatenate(village_of_cell)

    occupied = np.where(village >= 0, rng.random(len(cells)) < 0.96, rng.random(len(cells)) < 0.9)
    cells, street, village = cells.take(occupied), street[occupied], village[occupied]
    cell_index = np.flatnonzero(occupied)
    plot = np.where(cell_index < n_road, cell_index, -1)
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
    buildings = Buildings(geometry=geometry, centre=cells.centre, street=street, name=label, plot=plot, **attrs)
    return buildings, road_cells, villages


def select_buildings(buildings: Buildings, spec: ScaleSpec, admin: Admin) -> tuple[Buildings, BaseGeometry | None]:
    """Full scale keeps every building (and returns no area). A scale with a building
    count keeps whole grids, nearest the CBD first, until that count is reached: a
    dense, contiguous piece of central Futian (towers, housing, an urban village) with
    admin-aligned edges; it returns those grids' union as the sample's area."""
    if spec.buildings is None or spec.buildings >= len(buildings.geometry):
        return buildings, None
    grids = admin.grids.geometry
    tree = shapely.STRtree(grids)
    points = shapely.points(buildings.centre)
    assert isinstance(points, np.ndarray)  # (n, 2) coordinates: n points
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
    return buildings.take(np.flatnonzero(keep)), shapely.union_all(grids[chosen])
