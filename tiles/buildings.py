"""The buildings tiler: LOD1 footprints + heights -> a 3D Tiles 1.1 tileset.

Layout of the result (``tileset.json`` + ``tiles/<level>-<x>-<y>.glb``):

- one local east-north-up frame at the data's centre; the root tile's
  transform is that frame's ENU -> ECEF matrix, every other tile's is a
  translation to its own centre, so GLB vertices are small offsets that
  float32 holds to well under a millimetre;
- a quadtree (:mod:`tiles.quadtree`) with ADD refinement: large buildings
  in the upper tiles, the rest in the leaves; geometric error from content;
- each building one feature (EXT_mesh_features) with its attributes in an
  EXT_structural_metadata property table.

The tileset JSON uses py3dtiles' TileSet/Tile/BoundingVolumeBox classes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from tiles.extrude import Mesh, extrude
from tiles.geodesy import EnuFrame, lonlath_to_ecef
from tiles.glb import Primitive, write_glb
from tiles.metadata import Column, PropertyTable
from tiles.quadtree import Node, QuadtreeOptions, build_quadtree
from tiles.tileset import TilesetReport, gltf_axes, quadtree_tile, write_tileset_json

#: called with (done, total) buildings
Progress = Callable[[int, int], None]


@dataclass
class Buildings:
    """What the tiler needs: valid lon/lat footprints, base and height in
    metres (one per building), and the attributes to carry as metadata."""

    footprints: np.ndarray
    base: np.ndarray
    height: np.ndarray
    columns: list[Column] = field(default_factory=list)
    class_title: str = "建筑"

    def __len__(self) -> int:
        return len(self.footprints)


def _sizes_m(footprints: np.ndarray, height: np.ndarray) -> np.ndarray:
    """A building's size: its height or its footprint's diagonal, whichever is larger."""
    b = shapely.bounds(footprints)
    lat = np.radians((b[:, 1] + b[:, 3]) / 2)
    dx = (b[:, 2] - b[:, 0]) * 111_320.0 * np.cos(lat)
    dy = (b[:, 3] - b[:, 1]) * 110_574.0
    return np.maximum(height, np.hypot(dx, dy))


def write_buildings_tileset(
    data: Buildings, folder: Path, *, options: QuadtreeOptions = QuadtreeOptions(), progress: Progress | None = None
) -> TilesetReport:
    """Write the tileset into the empty ``folder`` (``tileset.json`` and ``tiles/``);
    :class:`tiles.output.TilesetVersion` makes such a folder current."""
    t0 = time.perf_counter()
    n = len(data)
    b = shapely.total_bounds(data.footprints)
    origin = (float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2)
    frame = EnuFrame.at(*origin, 0.0)
    centroids_ll = shapely.get_coordinates(shapely.centroid(data.footprints))
    centroids = frame.to_enu(lonlath_to_ecef(centroids_ll[:, 0], centroids_ll[:, 1], data.base))[:, :2]
    top = data.base + data.height
    sizes = _sizes_m(data.footprints, data.height)
    tree = build_quadtree(centroids, sizes, options)

    stats = {"triangles": 0, "bytes": 0, "tiles": 0, "done": 0}
    (folder / "tiles").mkdir()
    boxes: dict[str, np.ndarray] = {}  # node name -> (6,) absolute ENU mins/maxs of the subtree
    own: dict[str, np.ndarray] = {}  # node name -> its content's centre (ENU)
    for node in tree.walk():
        if len(node.members) == 0:
            continue
        mesh = extrude(data.footprints[node.members], data.base[node.members], top[node.members], frame)
        if mesh.triangle_count == 0:
            continue  # footprints under a millimetre: nothing to draw
        glb, mins_maxs, centre = _tile_glb(mesh, node, data)
        (folder / "tiles" / f"{node.name}.glb").write_bytes(glb)
        boxes[node.name], own[node.name] = mins_maxs, centre
        stats["triangles"] += mesh.triangle_count
        stats["bytes"] += len(glb)
        stats["tiles"] += 1
        stats["done"] += len(node.members)
        if progress:
            progress(stats["done"], n)
    root_tile = quadtree_tile(tree, boxes, own)
    root_tile.transform = frame.matrix() @ root_tile.transform
    # not drawing the root at all misses the largest building
    write_tileset_json(
        folder, root_tile, max(sizes.max(), 1.0), {"buildings": n, "origin": {"lon": origin[0], "lat": origin[1]}}
    )
    return TilesetReport(
        path=folder / "tileset.json",
        buildings=n,
        tiles=stats["tiles"],
        depth=max(node.level for node in tree.walk()) + 1,
        triangles=stats["triangles"],
        bytes=stats["bytes"],
        seconds=time.perf_counter() - t0,
        origin=origin,
    )


def _tile_glb(mesh: Mesh, node: Node, data: Buildings) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The GLB of one node's buildings, their ENU box and the tile's centre."""
    lo, hi = mesh.positions.min(axis=0), mesh.positions.max(axis=0)
    centre = (lo + hi) / 2
    local = mesh.positions - centre  # float32-exact from here on: offsets of at most a tile's size
    table = PropertyTable(
        "building",
        len(node.members),
        [Column(c.name, np.asarray(c.values)[node.members], c.kind, c.no_data, c.title) for c in data.columns],
        class_title=data.class_title,
    )
    glb = write_glb([Primitive(gltf_axes(local), gltf_axes(mesh.normals), mesh.feature_ids, mesh.indices)], table)
    return glb, np.concatenate([lo, hi]), centre
