"""The instancing tiler: many placements of a few models -> a 3D Tiles 1.1
tileset of instanced glTF (city components: 500,000 placements of ~100 models).

Layout of the result::

    tileset.json                     root without content, one child per group
    groups/<group>/tileset.json      an external tileset per group (大类 of components),
    groups/<group>/tiles/<node>.glb  so that a client can switch a group on and off

- one local east-north-up frame at the data's centre (as in :mod:`tiles.buildings`):
  a group's root transform is that frame's ENU -> ECEF matrix, its tiles are
  translations to their own centres, so instance translations are small float32 offsets;
- a quadtree per group (:mod:`tiles.quadtree`, ADD refinement): tall models (a
  pylon) may stay in upper tiles, the rest go to the leaves; a node's geometric
  error is the size of the largest model it does not draw itself, so small
  street furniture loads only when the camera is within a few hundred metres
  (further away a client draws the components' points instead);
- each tile's GLB holds one mesh per model it draws, each a node with
  EXT_mesh_gpu_instancing (TRANSLATION, ROTATION, SCALE where not 1) and
  EXT_instance_features; every instance is a feature with its properties in an
  EXT_structural_metadata property table (one per tile, all its instances).

An instance's rotation turns the model (x east, y north = its front, z up) to
its heading (degrees clockwise from north) about its *own* vertical: the local
up at its longitude/latitude, expressed in the frame at the data's centre
(10 km from the centre the two differ by 0.09°, 1.6 cm at the top of a 10 m pole).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from py3dtiles.tileset import Tile

from tiles.geodesy import EnuFrame, lonlath_to_ecef
from tiles.glb import InstancedMesh, Material, Primitive, write_glb
from tiles.metadata import Column, PropertyTable
from tiles.models import Model
from tiles.quadtree import QuadtreeOptions, build_quadtree
from tiles.tileset import TilesetReport, ecef_box, gltf_axes, quadtree_tile, write_tileset_json

#: called with (done, total) instances
Progress = Callable[[int, int], None]

#: glTF axes from ENU: gltf = AXES @ enu (see tiles.tileset.gltf_axes)
AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: a tile holds at most this many instances; a quadrant wider than this many metres splits even when sparse
INSTANCE_OPTIONS = QuadtreeOptions(capacity=6000, max_extent=1500.0, landmark_fraction=0.05)


@dataclass
class Instances:
    """What the tiler needs: one placement per row (lon/lat in degrees,
    ellipsoidal height of its base in metres, heading in degrees clockwise
    from north, uniform scale), the model it draws (an index into the models),
    the group it belongs to, and the properties to carry as metadata."""

    lon: np.ndarray
    lat: np.ndarray
    height: np.ndarray
    heading: np.ndarray
    scale: np.ndarray
    model: np.ndarray  # int index into the models
    group: np.ndarray  # str: the external tileset it goes in
    columns: list[Column] = field(default_factory=list)
    class_id: str = "component"
    class_title: str = "城市部件"

    def __len__(self) -> int:
        return len(self.lon)


@dataclass
class GroupReport:
    group: str
    instances: int
    tiles: int
    path: str  # of its tileset.json, relative to the tileset's folder


@dataclass
class InstancedReport(TilesetReport):
    groups: list[GroupReport] = field(default_factory=list)


def heading_quaternions(frame: EnuFrame, lon: np.ndarray, lat: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """(n, 4) x y z w: the rotation (in glTF axes of ``frame``) that turns a
    model standing on its local vertical at (lon, lat) to ``heading``."""
    lam, phi = np.radians(lon), np.radians(lat)
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    zeros = np.zeros_like(lam)
    # the local east, north and up (rows) in ECEF, then in the frame's ENU
    local = np.stack(
        [
            np.column_stack([-sl, cl, zeros]),
            np.column_stack([-sp * cl, -sp * sl, cp]),
            np.column_stack([cp * cl, cp * sl, sp]),
        ],
        axis=1,
    )  # (n, 3 axes, 3 ecef)
    in_frame = local @ frame.rotation.T  # (n, 3 axes, 3 enu): row k = local axis k in the frame
    theta = -np.radians(heading)  # clockwise from north = a negative turn about up
    c, s = np.cos(theta), np.sin(theta)
    turn = np.zeros((len(lam), 3, 3))
    turn[:, 0, 0], turn[:, 0, 1], turn[:, 1, 0], turn[:, 1, 1], turn[:, 2, 2] = c, -s, s, c, 1.0
    # model -> frame ENU: columns are the local axes; then the heading about the local up
    rotation = np.transpose(in_frame, (0, 2, 1)) @ turn
    # the mesh is stored in glTF axes (AXES @ model), the instance lives in glTF axes too
    return matrix_to_quaternion(AXES @ rotation @ AXES.T)


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation matrices -> (n, 4) unit quaternions x y z w (Shepperd's method, vectorised)."""
    n = len(m)
    q = np.empty((n, 4))
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cases = np.argmax(np.column_stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]]), axis=1)
    for case in range(4):
        sel = cases == case
        if not sel.any():
            continue
        r = m[sel]
        if case == 0:
            s = np.sqrt(1.0 + trace[sel]) * 2
            q[sel] = np.column_stack(
                [(r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s, (r[:, 1, 0] - r[:, 0, 1]) / s, s / 4]
            )
        else:
            i = case - 1
            j, k = (i + 1) % 3, (i + 2) % 3
            s = np.sqrt(1.0 + r[:, i, i] - r[:, j, j] - r[:, k, k]) * 2
            out = np.empty((int(sel.sum()), 4))
            out[:, i] = s / 4
            out[:, j] = (r[:, j, i] + r[:, i, j]) / s
            out[:, k] = (r[:, k, i] + r[:, i, k]) / s
            out[:, 3] = (r[:, k, j] - r[:, j, k]) / s
            q[sel] = out
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _model_primitives(model: Model) -> list[Primitive]:
    """A model's parts as glTF primitives (y up), one material per part colour."""
    return [
        Primitive(
            positions=gltf_axes(part.positions.astype(np.float64)),
            normals=gltf_axes(part.normals.astype(np.float64)),
            feature_ids=None,
            indices=part.indices,
            material=Material(name=f"{model.source} {k}", base_color=tuple(part.colour), roughness=0.7),  # type: ignore[arg-type]
        )
        for k, part in enumerate(model.parts)
    ]


def write_instanced_tileset(
    data: Instances,
    models: Sequence[Model],
    folder: Path,
    *,
    group_titles: dict[str, str] | None = None,
    options: QuadtreeOptions = INSTANCE_OPTIONS,
    progress: Progress | None = None,
) -> InstancedReport:
    """Write the tileset into the empty ``folder`` (``tileset.json`` and
    ``groups/``); :class:`tiles.output.TilesetVersion` makes such a folder current."""
    t0 = time.perf_counter()
    n = len(data)
    if n == 0:
        raise ValueError("no instances to write")
    origin = (float(data.lon.min() + data.lon.max()) / 2, float(data.lat.min() + data.lat.max()) / 2)
    frame = EnuFrame.at(*origin, 0.0)
    enu = frame.to_enu(lonlath_to_ecef(data.lon, data.lat, data.height))
    quaternions = heading_quaternions(frame, data.lon, data.lat, data.heading)
    extents = np.array([m.extent for m in models]).reshape(len(models), 3)
    radius = np.hypot(extents[:, 0], extents[:, 1])[data.model] / 2 * data.scale  # horizontal reach of each
    top = extents[data.model, 2] * data.scale
    sizes = np.maximum(2 * radius, top)
    primitives = [_model_primitives(m) for m in models]
    group_titles = group_titles or {}

    stats = {"bytes": 0, "tiles": 0, "done": 0, "triangles": 0}
    groups: list[GroupReport] = []
    children: list[Tile] = []
    depth = 0
    for group in sorted(set(data.group.tolist())):
        members = np.flatnonzero(data.group == group)
        tree = build_quadtree(enu[members, :2], sizes[members], options)
        tree_members = {node.name: members[node.members] for node in tree.walk()}
        sub = folder / "groups" / group
        (sub / "tiles").mkdir(parents=True)
        boxes: dict[str, np.ndarray] = {}
        own: dict[str, np.ndarray] = {}
        for node in tree.walk():
            idx = tree_members[node.name]
            if len(idx) == 0:
                continue
            idx = idx[np.argsort(data.model[idx], kind="stable")]  # one instanced mesh per model
            lo = np.min(enu[idx] - np.column_stack([radius[idx], radius[idx], np.zeros(len(idx))]), axis=0)
            hi = np.max(enu[idx] + np.column_stack([radius[idx], radius[idx], top[idx]]), axis=0)
            centre = (lo + hi) / 2
            glb, triangles = _tile_glb(data, idx, enu[idx] - centre, quaternions[idx], primitives, models)
            (sub / "tiles" / f"{node.name}.glb").write_bytes(glb)
            boxes[node.name], own[node.name] = np.concatenate([lo, hi]), centre
            stats["bytes"] += len(glb)
            stats["tiles"] += 1
            stats["triangles"] += triangles
            stats["done"] += len(idx)
            if progress:
                progress(stats["done"], n)
        depth = max(depth, max(node.level for node in tree.walk()) + 1)
        group_error = float(sizes[members].max())
        root = quadtree_tile(tree, boxes, own)
        if root.content_uri is not None:
            # a client always draws a tileset's root: the models go one level down, under an empty
            # root whose error is the largest model's, so that they too load only when near
            inner, root = (
                root,
                Tile(geometric_error=group_error, bounding_volume=root.bounding_volume, refine_mode="ADD"),
            )
            root.transform, inner.transform = inner.transform, np.eye(4)
            root.children.append(inner)
        root.transform = frame.matrix() @ root.transform
        title = group_titles.get(group, group)
        write_tileset_json(sub, root, group_error, {"group": group, "title": title, "instances": len(members)})
        # the parent's tile for the group: an ECEF box (no transform), its content the external tileset
        box = np.concatenate([np.min([b[:3] for b in boxes.values()], 0), np.max([b[3:] for b in boxes.values()], 0)])
        children.append(
            Tile(
                geometric_error=group_error,
                bounding_volume=ecef_box(frame, box[:3], box[3:]),
                refine_mode="ADD",
                content_uri=f"groups/{group}/tileset.json",
            )
        )
        groups.append(GroupReport(group, len(members), len(boxes), f"groups/{group}/tileset.json"))
    reach = np.array([radius.max(), radius.max(), 0.0])
    lo_all, hi_all = enu.min(axis=0) - reach, enu.max(axis=0) + reach + [0.0, 0.0, top.max()]
    root_tile = Tile(
        geometric_error=float(sizes.max()) * 4,
        bounding_volume=ecef_box(frame, lo_all, hi_all),
        refine_mode="ADD",
    )
    root_tile.children.extend(children)
    extras = {
        "kind": "components",
        "instances": n,
        "groups": [{"group": g.group, "title": group_titles.get(g.group, g.group), "url": g.path} for g in groups],
        "origin": {"lon": origin[0], "lat": origin[1]},
    }
    path = write_tileset_json(folder, root_tile, float(sizes.max()) * 4, extras)
    return InstancedReport(
        path=path,
        buildings=n,
        tiles=stats["tiles"],
        depth=depth + 1,
        triangles=stats["triangles"],
        bytes=stats["bytes"],
        seconds=time.perf_counter() - t0,
        origin=origin,
        groups=groups,
    )


def _tile_glb(
    data: Instances,
    idx: np.ndarray,
    offsets: np.ndarray,
    quaternions: np.ndarray,
    primitives: list[list[Primitive]],
    models: Sequence[Model],
) -> tuple[bytes, int]:
    """The GLB of one tile's instances (``idx``, sorted by model), and the triangles it draws."""
    translations = gltf_axes(offsets)
    feature_ids = np.arange(len(idx))
    model_of = data.model[idx]
    starts = np.flatnonzero(np.r_[True, model_of[1:] != model_of[:-1]])
    ends = np.r_[starts[1:], len(idx)]
    meshes = []
    triangles = 0
    for a, b in zip(starts, ends):
        m = int(model_of[a])
        scale = data.scale[idx[a:b]]
        meshes.append(
            InstancedMesh(
                primitives=primitives[m],
                translations=translations[a:b],
                rotations=quaternions[a:b],
                feature_ids=feature_ids[a:b],
                scales=None if np.all(scale == 1.0) else np.repeat(scale[:, None], 3, axis=1),
            )
        )
        triangles += models[m].triangles * (b - a)
    table = PropertyTable(
        data.class_id,
        len(idx),
        [Column(c.name, np.asarray(c.values)[idx], c.kind, c.no_data, c.title) for c in data.columns],
        class_title=data.class_title,
    )
    return write_glb([], table, meshes), triangles
