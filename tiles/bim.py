"""The BIM tiler: elements (triangles in ECEF, colours per triangle, a storey)
-> a 3D Tiles 1.1 tileset with one tile per storey (split when large).

Each element is one feature (EXT_mesh_features) with its properties in an
EXT_structural_metadata property table. Opaque and translucent triangles
(glass, spaces) go to separate primitives so the translucent ones can blend.
Triangles are unwelded so every face keeps its own normal (flat shading);
materials are double-sided because IFC exporters do not agree on winding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from py3dtiles.tileset import BoundingVolumeBox, Tile

from tiles.buildings import TilesetReport
from tiles.geodesy import EnuFrame, ecef_to_lonlath
from tiles.glb import Material, Primitive, write_glb
from tiles.metadata import Column, PropertyTable
from tiles.tileset import gltf_axes, translation, write_tileset_json

OPAQUE = Material(name="bim", base_color=(1.0, 1.0, 1.0, 1.0), roughness=0.8, double_sided=True)
TRANSLUCENT = Material(name="bim translucent", base_color=(1.0, 1.0, 1.0, 1.0), roughness=0.2, blend=True,
                       double_sided=True)
MIN_TRIANGLE_M2 = 1e-8


@dataclass
class Part:
    """One element's geometry: vertices in ECEF, triangles, their RGBA."""

    ecef: np.ndarray
    faces: np.ndarray
    face_rgba: np.ndarray
    group: str  # the storey (tiles never mix storeys)


@dataclass
class BimModel:
    parts: list[Part]
    columns: list[Column] = field(default_factory=list)
    class_title: str = "构件"


def _chunks(model: BimModel, max_triangles: int) -> list[tuple[str, list[int]]]:
    """Element indices per tile: by storey, then in runs of at most ``max_triangles``."""
    groups: dict[str, list[int]] = {}
    for i, part in enumerate(model.parts):
        groups.setdefault(part.group, []).append(i)
    out = []
    for group, members in groups.items():
        run, count = [], 0
        for i in members:
            n = len(model.parts[i].faces)
            if run and count + n > max_triangles:
                out.append((group, run))
                run, count = [], 0
            run.append(i)
            count += n
        out.append((group, run))
    return out


def _tile_primitives(model: BimModel, members: list[int], frame: EnuFrame) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Unwelded triangles of ``members`` (ENU), split opaque/translucent; and their box."""
    positions, rgba, ids = [], [], []
    for local_id, i in enumerate(members):
        part = model.parts[i]
        enu = frame.to_enu(part.ecef)
        positions.append(enu[part.faces].reshape(-1, 3, 3))
        rgba.append(part.face_rgba)
        ids.append(np.full(len(part.faces), local_id))
    tri = np.concatenate(positions)
    rgba = np.concatenate(rgba)
    ids = np.concatenate(ids)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area2 = np.linalg.norm(normal, axis=1)
    keep = area2 > 2 * MIN_TRIANGLE_M2
    tri, rgba, ids, normal = tri[keep], rgba[keep], ids[keep], normal[keep] / area2[keep, None]
    flat = tri.reshape(-1, 3)
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    parts = []
    for translucent in (False, True):
        mask = (rgba[:, 3] < 0.99) if translucent else (rgba[:, 3] >= 0.99)
        if mask.any():
            parts.append({"tri": tri[mask], "rgba": rgba[mask], "ids": ids[mask], "normal": normal[mask],
                          "material": TRANSLUCENT if translucent else OPAQUE})
    return parts, lo, hi


def write_bim_tileset(model: BimModel, folder: Path, *, max_triangles: int = 300_000) -> TilesetReport:
    """Write the tileset into the empty ``folder`` (``tileset.json`` + ``tiles/``)."""
    t0 = time.perf_counter()
    centre_ecef = np.concatenate([p.ecef for p in model.parts]).mean(axis=0)
    lon, lat, _ = ecef_to_lonlath(centre_ecef[None, :])[0]
    frame = EnuFrame.at(lon, lat, 0.0)
    (folder / "tiles").mkdir()
    children, boxes = [], []
    triangles = size = 0
    for k, (group, members) in enumerate(_chunks(model, max_triangles)):
        parts, lo, hi = _tile_primitives(model, members, frame)
        centre = (lo + hi) / 2
        primitives = []
        for p in parts:
            n = len(p["tri"])
            local = p["tri"].reshape(-1, 3) - centre
            primitives.append(Primitive(
                positions=gltf_axes(local), normals=gltf_axes(np.repeat(p["normal"], 3, axis=0)),
                feature_ids=np.repeat(p["ids"], 3), indices=np.arange(3 * n, dtype=np.uint32),
                material=p["material"], colors=np.repeat(p["rgba"], 3, axis=0)))
            triangles += n
        table = PropertyTable("element", len(members),
                              [Column(c.name, np.asarray(c.values, dtype=object if c.kind == "STRING" else None)[members],
                                      c.kind, c.no_data, c.title) for c in model.columns], class_title=model.class_title)
        glb = write_glb(primitives, table)
        uri = f"tiles/{k}.glb"
        (folder / uri).write_bytes(glb)
        size += len(glb)
        tile = Tile(geometric_error=0.0, bounding_volume=BoundingVolumeBox.from_mins_maxs(
            np.concatenate([lo - centre, hi - centre])), transform=translation(centre), refine_mode="ADD",
            content_uri=uri)
        tile.extras = {"storey": group}
        children.append(tile)
        boxes.append((lo, hi))
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    root = Tile(geometric_error=diagonal, bounding_volume=BoundingVolumeBox.from_mins_maxs(np.concatenate([lo, hi])),
                transform=frame.matrix(), refine_mode="ADD")
    root.children.extend(children)  # not add_child: see tiles/buildings.py
    write_tileset_json(folder, root, diagonal, {"elements": len(model.parts), "origin": {"lon": float(lon), "lat": float(lat)},
                                                "storeys": list(dict.fromkeys(p.group for p in model.parts))})
    return TilesetReport(path=folder / "tileset.json", buildings=len(model.parts), tiles=len(children), depth=2,
                         triangles=triangles, bytes=size, seconds=time.perf_counter() - t0, origin=(float(lon), float(lat)))
