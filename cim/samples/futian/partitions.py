"""Partitions: exact, compact Voronoi splits of a region and the coverage noding behind them."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples.futian.params import NODE_GRID_M


def random_points_in(region: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
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


def voronoi_cells(region: BaseGeometry, seeds: np.ndarray) -> np.ndarray:
    """The Voronoi cell of each seed (in seed order) clipped to region."""
    if len(seeds) == 1:
        return np.array([region], dtype=object)
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=region, ordered=True)
    cells = shapely.get_parts(diagram)
    if len(cells) != len(seeds):
        raise RuntimeError("Voronoi diagram lost seeds (duplicate points?)")
    return shapely.intersection(cells, region)


def lloyd_relax(region: BaseGeometry, seeds: np.ndarray, steps: int) -> np.ndarray:
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
    mains: list[BaseGeometry] = []
    orphans: list[BaseGeometry] = []
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


def partition(
    region: BaseGeometry, n: int, rng: np.random.Generator, *, seeds: np.ndarray | None = None, lloyd_steps: int = 5
) -> np.ndarray:
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


def subdivide(
    parents: np.ndarray, total: int, rng: np.random.Generator, *, lloyd_steps: int
) -> tuple[np.ndarray, list[int], np.ndarray]:
    """One level down: ``total`` pieces shared among ``parents`` by area (at
    least 3 each), each parent partitioned exactly. Returns the pieces in
    reading order within each parent, each piece's parent, and the counts."""
    counts = apportion(total, shapely.area(parents), 3)
    pieces_all: list[BaseGeometry] = []
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
        own = faces[order[starts[i] : starts[i + 1]]]
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
