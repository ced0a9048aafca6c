"""Lattices: jittered rectangular cells (street blocks, building plots) and points on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cim.samples.futian.geometry import rotate_xy, to_local


@dataclass
class Cells:
    """Rectangular lattice cells (metric centre, local width/height, rotation), with
    their column and row in their lattice and which lattice (``group``) they are of."""

    centre: np.ndarray  # (n, 2)
    size: np.ndarray  # (n, 2)
    angle: np.ndarray  # (n,)
    col: np.ndarray  # (n,) int
    row: np.ndarray  # (n,) int
    group: np.ndarray  # (n,) int

    def __len__(self) -> int:
        return len(self.centre)

    @staticmethod
    def concat(parts: list[Cells]) -> Cells:
        return Cells(
            np.vstack([p.centre for p in parts]),
            np.vstack([p.size for p in parts]),
            np.concatenate([p.angle for p in parts]),
            np.concatenate([p.col for p in parts]),
            np.concatenate([p.row for p in parts]),
            np.concatenate([p.group for p in parts]),
        )

    def take(self, idx: np.ndarray) -> Cells:
        return Cells(self.centre[idx], self.size[idx], self.angle[idx], self.col[idx], self.row[idx], self.group[idx])

    def local_to_metric(self, local: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Cell-frame coordinates (..., k, 2) or (n, 2) -> metric."""
        centre, angle = (self.centre, self.angle) if idx is None else (self.centre[idx], self.angle[idx])
        if local.ndim == 3:
            return centre[:, None, :] + rotate_xy(local, angle)
        return centre + rotate_xy(local, angle)


def _breaks(lo: float, hi: float, pitch: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    steps = rng.uniform(*pitch, int(np.ceil((hi - lo) / pitch[0])) + 2)
    return lo - rng.uniform(0.0, pitch[1]) + np.concatenate([[0.0], np.cumsum(steps)])


def lattice_cells(
    region: BaseGeometry,
    angle: float,
    pitch: tuple[float, float],
    rng: np.random.Generator,
    avoid: BaseGeometry | None = None,
    group: int = 0,
) -> Cells:
    """Cells of a jittered rectangular lattice (rows/columns of random width,
    rotated by angle) lying entirely inside region and clear of avoid; ``group``
    labels them (their lattice)."""
    origin = np.array(shapely.get_coordinates(shapely.centroid(region))[0])
    local = to_local(region, origin, angle)
    x0, y0, x1, y1 = local.bounds
    xs, ys = _breaks(x0, x1, pitch, rng), _breaks(y0, y1, pitch, rng)
    gx0, gy0 = (a.ravel() for a in np.meshgrid(xs[:-1], ys[:-1]))
    gx1, gy1 = (a.ravel() for a in np.meshgrid(xs[1:], ys[1:]))
    col, row = (a.ravel() for a in np.meshgrid(np.arange(len(xs) - 1), np.arange(len(ys) - 1)))
    boxes = shapely.box(gx0, gy0, gx1, gy1)
    shapely.prepare(local)
    keep = shapely.contains(local, boxes)
    if avoid is not None and not avoid.is_empty:
        avoid_local = to_local(avoid, origin, angle)
        shapely.prepare(avoid_local)
        keep &= ~shapely.intersects(avoid_local, boxes)
    centre_local = np.column_stack([(gx0 + gx1) / 2.0, (gy0 + gy1) / 2.0])[keep]
    size = np.column_stack([gx1 - gx0, gy1 - gy0])[keep]
    return Cells(
        origin + rotate_xy(centre_local, angle),
        size,
        np.full(len(size), angle),
        col[keep],
        row[keep],
        np.full(len(size), group),
    )


def points_on_cell_edges(cells: Cells, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points on cell outlines (the lattice's street lines), metric (n, 2)."""
    idx = rng.integers(0, len(cells), n)
    w, h = cells.size[idx, 0], cells.size[idx, 1]
    t = rng.uniform(0.0, 1.0, n) * 2.0 * (w + h)
    x = np.select([t < w, t < w + h, t < 2 * w + h], [-w / 2 + t, w / 2, w / 2 - (t - w - h)], -w / 2)
    y = np.select([t < w, t < w + h, t < 2 * w + h], [-h / 2, -h / 2 + (t - w), h / 2], h / 2 - (t - 2 * w - h))
    return cells.local_to_metric(np.column_stack([x, y]), idx)


def cell_corners(cells: Cells, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random cell corners (street crossings), metric (n, 2)."""
    idx = rng.integers(0, len(cells), n)
    signs = rng.choice([-0.5, 0.5], size=(n, 2))
    return cells.local_to_metric(signs * cells.size[idx], idx)
