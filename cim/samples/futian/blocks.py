"""Street blocks: the street lattices' plots grouped into rectangles of 1-4 x 1-3 plots
(about 40-250 m a side), the unit of approved parcels and of existing construction land."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from cim.samples.futian.buildings import Buildings
from cim.samples.futian.geometry import rotate_xy
from cim.samples.futian.lattice import Cells

_COL_RUNS = (np.array([1, 2, 3, 4]), np.array([0.15, 0.4, 0.3, 0.15]))  # plots per block, across
_ROW_RUNS = (np.array([1, 2, 3]), np.array([0.25, 0.5, 0.25]))  # and along
_CORNER_SIGNS = (np.array([-1.0, -1.0]), np.array([1.0, -1.0]), np.array([1.0, 1.0]), np.array([-1.0, 1.0]))


@dataclass
class Blocks:
    """Blocks of plots. ``rect`` holds each block's rectangle as cells (centre, size,
    angle; ``group`` is the street); a block is ``complete`` when every plot of its
    rectangle exists (none was left out for lying outside the street or on a hill),
    so that its rectangle is the union of its plots."""

    rect: Cells
    plot_block: np.ndarray  # (n_plots,) the block of each plot
    plot_count: np.ndarray  # (n_blocks,) plots in the block
    complete: np.ndarray  # (n_blocks,) bool

    def __len__(self) -> int:
        return len(self.rect)

    def outline(self, idx: np.ndarray, inset: np.ndarray | float = 0.0) -> np.ndarray:
        """Metric rectangles of blocks idx, each side moved in by inset (scalar, or (n, 4):
        west, east, south, north in the block's frame)."""
        inset = np.broadcast_to(np.asarray(inset, dtype=float), (len(idx), 4))
        half = self.rect.size[idx] / 2.0
        x0, x1 = -half[:, 0] + inset[:, 0], half[:, 0] - inset[:, 1]
        y0, y1 = -half[:, 1] + inset[:, 2], half[:, 1] - inset[:, 3]
        return rectangles(self.rect, idx, np.column_stack([x0, x1, y0, y1]))


def rectangles(frame: Cells, idx: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Metric polygons of rectangles given in the frames of cells idx as (n, 4) bounds
    x0, x1, y0, y1."""
    x0, x1, y0, y1 = bounds.T
    local = np.stack(
        [np.column_stack([x0, y0]), np.column_stack([x1, y0]), np.column_stack([x1, y1]), np.column_stack([x0, y1])],
        axis=1,
    )
    polygons = shapely.polygons(frame.local_to_metric(local, idx))
    assert isinstance(polygons, np.ndarray)  # (n, 4, 2) coordinates: n polygons
    return polygons


def local_bounds(geoms: np.ndarray, frame: Cells, idx: np.ndarray) -> np.ndarray:
    """Bounds (x0, x1, y0, y1) of each geometry in the frame of its cell idx, (n, 4)."""
    coords, which = shapely.get_coordinates(geoms, return_index=True)
    local = rotate_xy(coords - frame.centre[idx][which], -frame.angle[idx][which])
    out = np.empty((len(geoms), 4))
    for k, (column, reduce) in enumerate(((0, np.minimum), (0, np.maximum), (1, np.minimum), (1, np.maximum))):
        start = np.full(len(geoms), np.inf if reduce is np.minimum else -np.inf)
        reduce.at(start, which, local[:, column])
        out[:, k] = start
    return out


def _runs(n: int, lengths: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Run number of each of n consecutive indices, runs of random lengths."""
    draws = rng.choice(lengths[0], size=n, p=lengths[1])
    return np.repeat(np.arange(n), draws)[:n]


def build_blocks(plots: Cells, rng: np.random.Generator) -> Blocks:
    """Group each street lattice's plots into blocks of runs of columns x runs of rows."""
    key = np.empty((len(plots), 3), dtype=np.int64)
    expected = np.empty(len(plots), dtype=np.int64)
    for group in np.unique(plots.group):
        sel = np.flatnonzero(plots.group == group)
        col_run = _runs(int(plots.col[sel].max()) + 1, _COL_RUNS, rng)
        row_run = _runs(int(plots.row[sel].max()) + 1, _ROW_RUNS, rng)
        c, r = col_run[plots.col[sel]], row_run[plots.row[sel]]
        key[sel] = np.column_stack([np.full(len(sel), group), c, r])
        expected[sel] = np.bincount(col_run)[c] * np.bincount(row_run)[r]
    _, first, plot_block, count = np.unique(key, axis=0, return_index=True, return_inverse=True, return_counts=True)
    plot_block = plot_block.ravel()
    n = len(first)
    # each block's rectangle, from its plots' corners in the frame of its first plot
    anchor = plots.take(first)
    corners = np.concatenate([plots.local_to_metric(s * plots.size / 2.0) for s in _CORNER_SIGNS])
    owner = np.tile(plot_block, len(_CORNER_SIGNS))
    local = rotate_xy(corners - anchor.centre[owner], -anchor.angle[owner])
    lo = np.full((n, 2), np.inf)
    hi = np.full((n, 2), -np.inf)
    np.minimum.at(lo, owner, local)
    np.maximum.at(hi, owner, local)
    centre = anchor.centre + rotate_xy((lo + hi) / 2.0, anchor.angle)
    zeros = np.zeros(n, dtype=np.int64)
    rect = Cells(centre, hi - lo, anchor.angle, zeros, zeros, anchor.group)
    return Blocks(rect=rect, plot_block=plot_block, plot_count=count, complete=count == expected[first])


def buildings_by_block(buildings: Buildings, blocks: Blocks) -> np.ndarray:
    """The block of each building (-1: an urban-village house, in no block)."""
    return np.where(buildings.plot >= 0, blocks.plot_block[np.maximum(buildings.plot, 0)], -1)
