"""A quadtree of features for ADD-refined tilesets, with geometric error
derived from the content.

A node holding more than ``capacity`` features, or wider than
``max_extent`` metres, splits into four quadrants by feature centroid; it
keeps for itself the features that are large for its size (landmarks: a
300 m tower shows from afar, a kiosk only close up). A node's geometric
error is the size of the largest feature it does not draw itself: what the
viewer misses by not refining it. Leaves have error 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Node:
    level: int
    x: int
    y: int
    bounds: tuple[float, float, float, float]  # minx, miny, maxx, maxy of the quadrant (metres)
    members: np.ndarray  # indices of the features this node draws
    children: list[Node] = field(default_factory=list)
    geometric_error: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.level}-{self.x}-{self.y}"

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class QuadtreeOptions:
    capacity: int = 1500  # most features one tile draws
    max_extent: float = 2000.0  # a tile wider than this (metres) splits even when sparse
    landmark_fraction: float = 0.05  # a feature this large relative to the node stays in it (1/20)
    max_depth: int = 16


def build_quadtree(centroids: np.ndarray, sizes: np.ndarray, options: QuadtreeOptions = QuadtreeOptions()) -> Node:
    """``centroids`` (n, 2) and ``sizes`` (n,) in metres of a local frame."""
    lo = centroids.min(axis=0)
    hi = centroids.max(axis=0)
    side = float(max(hi - lo)) or 1.0
    root = Node(
        0, 0, 0, (float(lo[0]), float(lo[1]), float(lo[0]) + side, float(lo[1]) + side), np.arange(len(centroids))
    )
    _split(root, centroids, sizes, options)
    _set_errors(root, sizes)
    return root


def _split(node: Node, centroids: np.ndarray, sizes: np.ndarray, options: QuadtreeOptions) -> None:
    idx = node.members
    minx, miny, maxx, maxy = node.bounds
    extent = maxx - minx
    if (len(idx) <= options.capacity and extent <= options.max_extent) or node.level >= options.max_depth:
        return
    if len(idx) > 1 and np.ptp(centroids[idx], axis=0).max() == 0:
        return  # all at one point: no split can separate them
    big = sizes[idx] >= options.landmark_fraction * extent
    keep = idx[big]
    if len(keep) > options.capacity // 4:  # too many landmarks: the largest stay, the rest go down
        order = np.argsort(-sizes[keep], kind="stable")
        keep = keep[order[: options.capacity // 4]]
    rest = np.setdiff1d(idx, keep, assume_unique=True)
    node.members = keep
    midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
    east = centroids[rest, 0] >= midx
    north = centroids[rest, 1] >= midy
    for qx, qy, mask in ((0, 0, ~east & ~north), (1, 0, east & ~north), (0, 1, ~east & north), (1, 1, east & north)):
        members = rest[mask]
        if len(members) == 0:
            continue
        bounds = (
            minx if qx == 0 else midx,
            miny if qy == 0 else midy,
            midx if qx == 0 else maxx,
            midy if qy == 0 else maxy,
        )
        child = Node(node.level + 1, node.x * 2 + qx, node.y * 2 + qy, bounds, members)
        _split(child, centroids, sizes, options)
        node.children.append(child)


def _set_errors(node: Node, sizes: np.ndarray) -> float:
    """Set every node's error; return the largest size drawn in the subtree."""
    largest_below = 0.0
    for child in node.children:
        largest_below = max(largest_below, _set_errors(child, sizes))
    node.geometric_error = largest_below
    own = float(sizes[node.members].max()) if len(node.members) else 0.0
    return max(own, largest_below)
