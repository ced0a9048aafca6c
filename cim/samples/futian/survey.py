"""The second survey (2026) of the buildings, and the existing construction land.

``buildings_2026`` is the first survey's buildings with what a year changes: new
buildings (on some parcels that were idle, and a few on land that no one approved),
demolished ones, raised ones (some past their parcel's height limit) and grown
footprints; every other building keeps its id and footprint. ``construction_land``
(存量建设用地) covers the plots of the buildings that stand on no approved parcel, and
the urban villages: the lawful existing built-up land that an unapproved-building
check exempts. It covers neither the parcels nor the plots of the new unapproved
buildings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples import names
from cim.samples.futian.admin import Admin
from cim.samples.futian.blocks import Blocks, buildings_by_block, local_bounds, rectangles
from cim.samples.futian.buildings import Buildings, UrbanVillages, building_ids
from cim.samples.futian.geometry import rotate_xy, scale_about
from cim.samples.futian.landcover import Patches
from cim.samples.futian.lattice import Cells

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng
from cim.samples.futian.parcels import Parcels, floors_of, parcel_figures

#: change: (share of the first survey's buildings, minimum count). Land-supervision checks
#: report changes per parcel: demolitions and growth happen on completed parcels (one a
#: parcel, which stays compliant) and on construction land; raises on construction land,
#: besides those over parcels' height limits that the parcels planned
_CHANGES: dict[str, tuple[float, int]] = {
    "demolished_on_parcels": (0.001, 3),
    "demolished": (0.001, 2),
    "grown_on_parcels": (0.001, 3),
    "grown": (0.001, 2),
    "raised": (0.002, 3),
    "unapproved": (0.0015, 3),
}
_NEW_YEARS = (2025, 2026)
#: the building use of a new building on a parcel of that land-use code
_NEW_USE = {
    "R2": "住宅",
    "C1": "商业",
    "GIC": "公共服务",
    "M1": "工业",
    "M0": "办公",
    "C1/R2": "商住混合",
    "U": "公共服务",
    "S4": "公共服务",
}
_GROW_MARGIN_M = 0.75  # a grown footprint keeps this far inside its plot


@dataclass
class Survey:
    buildings: Buildings  # the 2026 survey (metric)
    ids: np.ndarray  # the first survey's ids; new buildings numbered on
    construction_land: Patches


@dataclass
class _New:
    """New buildings' footprints and attributes."""

    geometry: list[BaseGeometry]
    plot: list[int]
    name: list[str]
    use: list[str]
    floors: list[int]
    height: list[float]


def _count(change: str, n: int) -> int:
    share, minimum = _CHANGES[change]
    return max(minimum, round(share * n))


def _pick(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(pool) < n:
        raise RuntimeError(f"only {len(pool)} buildings or plots to change, not {n}")
    return np.sort(rng.choice(pool, n, replace=False))


def _growth(
    buildings: Buildings, plots: Cells, pool: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """For each building of pool: the scale about its centroid that adds 10-15 % to its
    area (at least 12 m2), and whether the footprint so grown stays inside its plot less
    _GROW_MARGIN_M."""
    plot = buildings.plot[pool]
    geoms = buildings.geometry[pool]
    bounds = local_bounds(geoms, plots, plot)
    centroid = shapely.get_coordinates(shapely.centroid(geoms))
    c = rotate_xy(centroid - plots.centre[plot], -plots.angle[plot])
    half = plots.size[plot] / 2.0 - _GROW_MARGIN_M
    room = np.minimum.reduce(
        [
            (half[:, 0] - c[:, 0]) / (bounds[:, 1] - c[:, 0]),
            (c[:, 0] + half[:, 0]) / (c[:, 0] - bounds[:, 0]),
            (half[:, 1] - c[:, 1]) / (bounds[:, 3] - c[:, 1]),
            (c[:, 1] + half[:, 1]) / (c[:, 1] - bounds[:, 2]),
        ]
    )
    wanted = np.sqrt(1.0 + np.maximum(12.0 / shapely.area(geoms), rng.uniform(0.1, 0.15, len(pool))))
    return wanted, room >= wanted


def _grown(buildings: Buildings, chosen: np.ndarray, scale: np.ndarray) -> dict[int, BaseGeometry]:
    """Footprints of buildings chosen, scaled about their centroids."""
    centroid = shapely.get_coordinates(shapely.centroid(buildings.geometry[chosen]))
    return {int(b): scale_about(buildings.geometry[b], centroid[k], float(scale[k])) for k, b in enumerate(chosen)}


def _one_per_parcel(pool: np.ndarray, parcel_of: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n buildings of pool, on n different parcels, at random."""
    shuffled = rng.permutation(pool)
    _, first = np.unique(parcel_of[shuffled], return_index=True)
    return _pick(shuffled[first], n, rng)


def _changes_on_parcels(
    buildings: Buildings, parcels: Parcels, plots: Cells, parcel_of: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[int, BaseGeometry]]:
    """Buildings demolished on completed parcels with more than one, and footprints grown on
    other completed parcels within their coverage and FAR."""
    n = len(buildings.geometry)
    completed = np.r_[parcels.role == "completed", False][parcel_of]  # parcel -1: none
    counts = np.bincount(parcel_of[parcel_of >= 0], minlength=len(parcels.role))
    several = completed & (counts[parcel_of] >= 2)
    demolished = _one_per_parcel(np.flatnonzero(several), parcel_of, _count("demolished_on_parcels", n), rng)

    pool = np.flatnonzero(completed & ~np.isin(parcel_of, parcel_of[demolished]))
    scale, room = _growth(buildings, plots, pool, rng)
    fig = parcel_figures(parcels.geometry, buildings)
    p = parcel_of[pool]
    added = shapely.area(buildings.geometry[pool]) * (scale**2 - 1.0)
    coverage = np.asarray(parcels.columns["coverage"], dtype=float)[p]
    far = np.asarray(parcels.columns["approved_far"], dtype=float)[p]
    fits = ((fig.footprint[p] + added) / fig.area[p] < coverage - 0.005) & (
        (fig.floor_area[p] + added * floors_of(buildings)[pool]) / fig.area[p] < far - 0.05
    )
    picked = _one_per_parcel(np.flatnonzero(room & fits), p, _count("grown_on_parcels", n), rng)
    return demolished, _grown(buildings, pool[picked], scale[picked])


def _changes_on_land(
    buildings: Buildings, plots: Cells, parcel_of: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[int, BaseGeometry]]:
    """Buildings demolished, raised and grown on construction land."""
    n = len(buildings.geometry)
    existing = np.flatnonzero(parcel_of < 0)
    demolished = _pick(existing[buildings.plot[existing] >= 0], _count("demolished", n), rng)
    rest = np.setdiff1d(existing, demolished)
    raised = _pick(rest, _count("raised", n), rng)
    rest = np.setdiff1d(rest, raised)
    pool = rest[buildings.plot[rest] >= 0]
    scale, room = _growth(buildings, plots, pool, rng)
    picked = _pick(np.flatnonzero(room), _count("grown", n), rng)
    return demolished, raised, _grown(buildings, pool[picked], scale[picked])


def _footprint(plots: Cells, plot: int, fill: float, rng: np.random.Generator, margin: float = 2.0) -> BaseGeometry:
    """A rectangle in plot, fill of its width and depth less margin, at random within."""
    inner = plots.size[plot] - 2.0 * margin
    size = inner * fill
    offset = rng.uniform(-0.5, 0.5, 2) * (inner - size)
    lo, hi = offset - size / 2.0, offset + size / 2.0
    return rectangles(plots, np.array([plot]), np.array([[lo[0], hi[0], lo[1], hi[1]]]))[0]


def _on_idle_parcels(parcels: Parcels, blocks: Blocks, plots: Cells, rng: np.random.Generator, new: _New) -> None:
    """One new building on each of the first half of the idle parcels, within the
    parcel's coverage, FAR and height limit."""
    idle = np.flatnonzero(parcels.role == "idle")
    cols = parcels.columns
    for k in idle[: (len(idle) + 1) // 2]:
        block = parcels.block[k]
        own = np.flatnonzero(blocks.plot_block == block)
        plot = int(own[np.argmin(np.hypot(*(plots.centre[own] - blocks.rect.centre[block]).T))])
        footprint = _footprint(plots, plot, rng.uniform(0.55, 0.85), rng)
        area = shapely.area(parcels.geometry[k])
        allowed = 0.85 * float(cols["coverage"][k]) * area
        if footprint.area > allowed:
            centre = np.asarray(footprint.centroid.coords[0])
            footprint = scale_about(footprint, centre, float(np.sqrt(allowed / footprint.area)))
        per_floor = rng.uniform(3.0, 3.4)
        by_far = int(0.9 * float(cols["approved_far"][k]) * area / footprint.area)
        by_height = int((float(cols["height_limit"][k]) - 3.0) / per_floor)
        floors = max(1, min(int(rng.integers(8, 31)), by_far, by_height))
        new.geometry.append(footprint)
        new.plot.append(plot)
        new.name.append(f"{cols['parcel_id'][k]}地块1栋")
        new.use.append(_NEW_USE[str(cols["use_code"][k])])
        new.floors.append(floors)
        new.height.append(round(floors * per_floor, 1))


def _unapproved(
    buildings: Buildings,
    parcels: Parcels,
    blocks: Blocks,
    plots: Cells,
    area: BaseGeometry | None,
    admin: Admin,
    rng: np.random.Generator,
    new: _New,
) -> None:
    """Low buildings on empty plots of no parcel (and so of no construction land)."""
    built = np.zeros(len(plots), dtype=bool)
    built[buildings.plot[buildings.plot >= 0]] = True
    free = ~built & ~np.isin(blocks.plot_block, parcels.block)
    if area is not None:
        free &= shapely.contains_xy(area, plots.centre[:, 0], plots.centre[:, 1])
    chosen = _pick(np.flatnonzero(free), _count("unapproved", len(buildings.geometry)), rng)
    street = admin.street_of_xy(plots.centre[chosen])
    for j, (plot, s) in enumerate(zip(chosen, street), start=1):
        per_floor = rng.uniform(3.0, 3.6)
        floors = int(rng.integers(1, 5))
        new.geometry.append(_footprint(plots, int(plot), rng.uniform(0.4, 0.8), rng, margin=2.5))
        new.plot.append(int(plot))
        new.name.append(f"{names.STREETS[s][1]}临时建筑{j}栋")
        new.use.append(str(rng.choice(["商业", "工业"])))
        new.floors.append(floors)
        new.height.append(round(floors * per_floor, 1))


def _changed(buildings: Buildings, raised: dict[int, int], grown: dict[int, BaseGeometry]) -> Buildings:
    """A copy of buildings with floors added (at their floor height) and footprints grown."""
    after = Buildings(**{f.name: getattr(buildings, f.name).copy() for f in fields(Buildings)})
    for b, added in raised.items():
        per_floor = buildings.height[b] / buildings.floors[b]
        after.floors[b] = buildings.floors[b] + added
        after.height[b] = round(float(buildings.height[b] + added * per_floor), 1)
    for b, footprint in grown.items():
        after.geometry[b] = footprint
    return after


def _append(old: Buildings, new: _New, admin: Admin, rng: np.random.Generator) -> Buildings:
    centre = shapely.get_coordinates(shapely.centroid(np.array(new.geometry, dtype=object)))
    added = Buildings(
        geometry=np.array(new.geometry, dtype=object),
        centre=centre,
        street=admin.street_of_xy(centre),
        name=np.array(new.name, dtype=object),
        height=np.array(new.height),
        floors=np.array(new.floors, dtype=np.int32),
        use=np.array(new.use, dtype=object),
        year_built=rng.choice(_NEW_YEARS, len(new.name)).astype(np.int32),
        plot=np.array(new.plot),
    )
    return Buildings(
        **{f.name: np.concatenate([getattr(old, f.name), getattr(added, f.name)]) for f in fields(Buildings)}
    )


def _construction_land(
    buildings: Buildings, parcels: Parcels, blocks: Blocks, plots: Cells, villages: UrbanVillages, admin: Admin
) -> Patches:
    """One polygon per block of no parcel: the union of its plots with a building (10 cm
    in, so that neighbouring blocks' polygons never overlap); then the urban villages
    with a house in the sample."""
    block_of = buildings_by_block(buildings, blocks)
    street_lattice = (buildings.plot >= 0) & ~np.isin(block_of, parcels.block)
    plot_ids = np.unique(buildings.plot[street_lattice])
    plot_block = blocks.plot_block[plot_ids]
    order = np.argsort(plot_block, kind="stable")
    plot_ids, plot_block = plot_ids[order], plot_block[order]
    starts = np.flatnonzero(np.r_[True, plot_block[1:] != plot_block[:-1]])
    block_ids = plot_block[starts]
    # a complete block built on in every plot is its rectangle; any other block the union of its built plots
    whole = blocks.complete[block_ids] & (np.diff(np.r_[starts, len(plot_ids)]) == blocks.plot_count[block_ids])
    geoms = list(blocks.outline(block_ids, 0.1))
    half = plots.size[plot_ids] / 2.0
    outlines = rectangles(plots, plot_ids, np.column_stack([-half[:, 0], half[:, 0], -half[:, 1], half[:, 1]]))
    for k, part in enumerate(np.split(outlines, starts[1:])):
        if not whole[k]:
            geoms[k] = shapely.buffer(shapely.union_all(part, grid_size=1e-3), -0.1, join_style="mitre")
    street = admin.street_of_xy(blocks.rect.centre[block_ids])
    seq = np.zeros(len(names.STREETS), dtype=int)
    labels: list[str] = []
    for s in street:
        seq[s] += 1
        labels.append(f"{names.STREETS[s][1]}存量建设用地{seq[s]:04d}")
    houses = buildings.centre[buildings.plot < 0]
    for zone, village in zip(villages.zones, villages.names):
        if shapely.contains_xy(zone, houses[:, 0], houses[:, 1]).any():
            geoms.append(zone)
            labels.append(f"{village}村存量建设用地")
    codes = [f"CL-{i:05d}" for i in range(1, len(geoms) + 1)]
    return Patches(codes, labels, np.array(geoms, dtype=object))


def build_survey(
    buildings: Buildings,
    raises: dict[int, int],
    parcels: Parcels,
    blocks: Blocks,
    plots: Cells,
    villages: UrbanVillages,
    area: BaseGeometry | None,
    admin: Admin,
    seed: int,
) -> Survey:
    """The 2026 survey from the first one's buildings (``raises``: building -> floors
    that the parcels planned to be added) and the construction land."""
    rng = _rng(seed, "survey")
    n = len(buildings.geometry)
    parcel_of_block = np.full(len(blocks) + 1, -1)
    parcel_of_block[parcels.block] = np.arange(len(parcels.block))
    parcel_of = parcel_of_block[buildings_by_block(buildings, blocks)]  # block -1 (villages): no parcel
    demolished, grown = _changes_on_parcels(buildings, parcels, plots, parcel_of, rng)
    on_land, raised_on_land, grown_on_land = _changes_on_land(buildings, plots, parcel_of, rng)
    demolished = np.union1d(demolished, on_land)
    grown |= grown_on_land
    raised = {int(b): added for b, added in raises.items()}
    raised |= {int(b): int(rng.integers(2, 4)) for b in raised_on_land}

    kept = np.setdiff1d(np.arange(n), demolished)
    new = _New([], [], [], [], [], [])
    _on_idle_parcels(parcels, blocks, plots, rng, new)
    _unapproved(buildings, parcels, blocks, plots, area, admin, rng, new)
    survey = _append(_changed(buildings, raised, grown).take(kept), new, admin, rng)
    ids = np.concatenate([building_ids(kept + 1), building_ids(np.arange(n + 1, n + 1 + len(new.name)))])
    return Survey(survey, ids, _construction_land(buildings, parcels, blocks, plots, villages, admin))
