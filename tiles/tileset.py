"""What every tiler shares: glTF's axes, tile transforms, tileset.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from py3dtiles.constants import SpecVersion
from py3dtiles.tileset import BoundingVolumeBox, Tile, TileSet

from tiles.geodesy import EnuFrame
from tiles.quadtree import Node


@dataclass
class TilesetReport:
    """What a tiler wrote (``buildings`` counts the features: buildings or elements)."""

    path: Path
    buildings: int
    tiles: int
    depth: int
    triangles: int
    bytes: int
    seconds: float
    origin: tuple[float, float]


def gltf_axes(enu: np.ndarray) -> np.ndarray:
    """ENU (z up) -> glTF (y up): clients rotate glTF content by +90° about x."""
    return np.column_stack([enu[:, 0], enu[:, 2], -enu[:, 1]])


def translation(offset: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = offset
    return m


def ecef_box(frame: EnuFrame, lo: np.ndarray, hi: np.ndarray) -> BoundingVolumeBox:
    """An ENU-aligned box, written as an oriented box in ECEF (for tiles without a transform)."""
    centre = frame.to_ecef(((lo + hi) / 2)[None, :])[0]
    half = (hi - lo) / 2
    axes = frame.rotation * half[:, None]  # rows: east, north, up, each scaled by its half-size
    return BoundingVolumeBox.from_list(np.concatenate([centre, axes.ravel()]))


def write_tileset_json(
    folder: Path, root: Tile, geometric_error: float, extras: dict, filename: str = "tileset.json"
) -> Path:
    """``folder/tileset.json`` (3D Tiles 1.1) with py3dtiles' TileSet."""
    tileset = TileSet(geometric_error=float(geometric_error), spec_version=SpecVersion.V1_1)
    tileset.root_tile = root
    tileset.asset.extras = {"generator": "cim-twin tiles", **extras}
    path = folder / filename
    path.write_text(json.dumps(tileset.to_dict(), ensure_ascii=False, indent=1))
    return path


def quadtree_tile(
    node: Node,
    boxes: dict[str, np.ndarray],
    own: dict[str, np.ndarray],
    parent_centre: np.ndarray | None = None,
    folder: str = "tiles",
) -> Tile:
    """The py3dtiles Tile of a quadtree ``node`` (ADD refinement) and its subtree.
    ``boxes``: node name -> (6,) ENU mins/maxs of the node's own content (a node
    without an entry has no content); ``own``: node name -> its content's centre
    (the origin of its GLB's positions). A tile's transform is a translation
    relative to its parent's (the root's: relative to the frame's origin; the
    caller puts the frame's matrix in front). Content at ``folder/<node>.glb``."""
    parent = np.zeros(3) if parent_centre is None else parent_centre
    subtree = _subtree_box(node, boxes)
    mins, maxs = subtree[:3], subtree[3:]
    centre = own.get(node.name, (mins + maxs) / 2)  # an empty node centres on its children
    children = [child for child in node.children if _has_content(child, boxes)]
    child_tiles = [quadtree_tile(child, boxes, own, centre, folder) for child in children]
    tile = Tile(
        geometric_error=node.geometric_error,
        bounding_volume=BoundingVolumeBox.from_mins_maxs(np.concatenate([mins - centre, maxs - centre])),
        transform=translation(centre - parent),
        refine_mode="ADD",
        content_uri=f"{folder}/{node.name}.glb" if node.name in boxes else None,
    )
    # not Tile.add_child: py3dtiles 12.1 grows the parent's box by the child's
    # box moved by the *inverse of the parent's transform* as well, though a
    # child's transform is already relative to its parent; our boxes are exact
    tile.children.extend(child_tiles)
    return tile


def _has_content(node: Node, boxes: dict[str, np.ndarray]) -> bool:
    return any(n.name in boxes for n in node.walk())


def _subtree_box(node: Node, boxes: dict[str, np.ndarray]) -> np.ndarray:
    parts = [boxes[n.name] for n in node.walk() if n.name in boxes]
    return np.concatenate([np.min([p[:3] for p in parts], axis=0), np.max([p[3:] for p in parts], axis=0)])
