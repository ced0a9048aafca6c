"""The admin hierarchy: district -> streets -> communities -> grids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import shapely.ops
from shapely.geometry.base import BaseGeometry

from cim.samples import names
from cim.samples.futian.geometry import lonlat_to_metric
from cim.samples.futian.params import COMMUNITY_COUNT, GRID_COUNT

# imported as _rng: the functions here name their generators "rng"
from cim.samples.futian.params import rng as _rng
from cim.samples.futian.partitions import (
    node_coverage,
    partition,
    subdivide,
    union_groups,
)


@dataclass
class AdminLevel:
    """One admin layer in metres: codes, names, parent index and geometry."""

    codes: list[str]
    names: list[str]
    parent: np.ndarray  # index into the parent level (-1 for streets)
    geometry: np.ndarray


@dataclass
class Admin:
    boundary: BaseGeometry
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


def build_admin(boundary: BaseGeometry, seed: int) -> Admin:
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


def _nearest_inside(region: BaseGeometry, xy: np.ndarray) -> np.ndarray:
    """Points outside region moved to the nearest point just inside it."""
    xy = xy.copy()
    inner = shapely.buffer(region, -50.0)
    for i in np.flatnonzero(~shapely.contains_xy(region, xy[:, 0], xy[:, 1])):
        _, near = shapely.ops.nearest_points(shapely.Point(xy[i]), inner)
        xy[i] = (near.x, near.y)
    return xy
