"""The BIM tiler: elements (triangles in ECEF, colours per triangle, a storey)
-> a 3D Tiles 1.1 tileset with one tile per storey (split when large).

Each element is one feature (EXT_mesh_features) with its properties in an
EXT_structural_metadata property table. Triangles are grouped by IFC surface
colour, one primitive (and material) per colour; translucent ones (glass,
spaces) blend. Corners are shared only where position, normal and element
agree, so shading stays flat; materials are double-sided because IFC
exporters do not agree on winding. Repeated geometry is instanced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from py3dtiles.tileset import BoundingVolumeBox, Tile

from tiles.geodesy import EnuFrame, ecef_to_lonlath
from tiles.glb import InstancedMesh, Material, Primitive, write_glb
from tiles.metadata import Column, PropertyTable
from tiles.tileset import TilesetReport, ecef_box, gltf_axes, translation, write_tileset_json

MIN_TRIANGLE_M2 = 1e-8


@dataclass
class Part:
    """One element's geometry: vertices in ECEF, triangles, their RGBA; and,
    for repeated geometry, the same vertices in the element's own frame and
    the key it shares with its repeats."""

    ecef: np.ndarray
    faces: np.ndarray
    face_rgba: np.ndarray
    group: str  # the storey (tiles never mix storeys)
    local: np.ndarray | None = None
    prototype: str | None = None


@dataclass
class BimModel:
    parts: list[Part]
    columns: list[Column] = field(default_factory=list)
    class_title: str = "构件"


MIN_INSTANCED_TRIANGLES = 12  # below this, a repeat costs less as plain triangles than as an instance
MAX_FIT_ERROR_M = 0.005  # an instance must reproduce every vertex to 5 mm, or it is drawn plainly


def _material(rgba: np.ndarray) -> Material:
    """The material of one IFC surface colour: in the material rather than per
    vertex, which every client draws (deck.gl ignores COLOR_0 in PBR)."""
    r, g, b, a = (float(v) for v in rgba)
    translucent = a < 0.99
    return Material(
        name=f"ifc {int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}{int(a * 255):02x}",
        base_color=(r, g, b, a),
        roughness=0.2 if translucent else 0.8,
        blend=translucent,
        double_sided=True,
    )


def rigid_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotation R and translation t with dst ~ src @ R.T + t (Kabsch), and the worst residual."""
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    t = cd - r @ cs
    return r, t, float(np.linalg.norm(src @ r.T + t - dst, axis=1).max())


def quaternion(r: np.ndarray) -> np.ndarray:
    """x, y, z, w of a rotation matrix (Shepperd: from its largest component,
    so that half turns, where w is 0, keep their signs)."""
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    k = int(np.argmax([trace, r[0, 0], r[1, 1], r[2, 2]]))
    if k == 0:
        w = np.sqrt(1 + trace) / 2
        q = [(r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w), w]
    elif k == 1:
        x = np.sqrt(1 + r[0, 0] - r[1, 1] - r[2, 2]) / 2
        q = [x, (r[0, 1] + r[1, 0]) / (4 * x), (r[0, 2] + r[2, 0]) / (4 * x), (r[2, 1] - r[1, 2]) / (4 * x)]
    elif k == 2:
        y = np.sqrt(1 - r[0, 0] + r[1, 1] - r[2, 2]) / 2
        q = [(r[0, 1] + r[1, 0]) / (4 * y), y, (r[1, 2] + r[2, 1]) / (4 * y), (r[0, 2] - r[2, 0]) / (4 * y)]
    else:
        z = np.sqrt(1 - r[0, 0] - r[1, 1] + r[2, 2]) / 2
        q = [(r[0, 2] + r[2, 0]) / (4 * z), (r[1, 2] + r[2, 1]) / (4 * z), z, (r[1, 0] - r[0, 1]) / (4 * z)]
    quat = np.array(q)
    return quat / np.linalg.norm(quat)


_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # ENU -> glTF, as gltf_axes


def _instanced(
    model: BimModel, members: list[int], frame: EnuFrame, centre: np.ndarray
) -> tuple[list[InstancedMesh], list[int]]:
    """Instanced meshes for the repeated geometry among ``members`` (local
    feature ids are positions in ``members``), and the members left plain."""
    groups: dict[str, list[tuple[int, np.ndarray]]] = {}  # (local id, vertices in the part's own frame)
    for local_id, i in enumerate(members):
        part = model.parts[i]
        if part.prototype is not None and part.local is not None and len(part.faces) >= MIN_INSTANCED_TRIANGLES:
            groups.setdefault(part.prototype, []).append((local_id, part.local))
    meshes: list[InstancedMesh] = []
    instanced: set[int] = set()
    for group in groups.values():
        if len(group) < 2:
            continue
        ids = [k for k, _ in group]
        fits = [rigid_fit(local, frame.to_enu(model.parts[members[k]].ecef)) for k, local in group]
        if max(f[2] for f in fits) > MAX_FIT_ERROR_M:
            continue
        first_id, first_local = group[0]
        parts = _triangles([(0, first_local, model.parts[members[first_id]])])
        primitives = [
            _welded(p["tri"].reshape(-1, 3), np.repeat(p["normal"], 3, axis=0), None, p["material"], axes=False)
            for p in parts
        ]
        meshes.append(
            InstancedMesh(
                primitives=primitives,
                translations=np.array([_Y_UP @ (t - centre) for _, t, _ in fits]),
                rotations=np.array([quaternion(_Y_UP @ r) for r, _, _ in fits]),
                feature_ids=np.array(ids),
            )
        )
        instanced.update(ids)
    return meshes, [i for k, i in enumerate(members) if k not in instanced]


def _chunks(model: BimModel, max_triangles: int) -> list[tuple[str, list[int]]]:
    """Element indices per tile: by storey, then in runs of at most ``max_triangles``."""
    groups: dict[str, list[int]] = {}
    for i, part in enumerate(model.parts):
        groups.setdefault(part.group, []).append(i)
    out = []
    for group, members in groups.items():
        run: list[int] = []
        count = 0
        for i in members:
            n = len(model.parts[i].faces)
            if run and count + n > max_triangles:
                out.append((group, run))
                run, count = [], 0
            run.append(i)
            count += n
        out.append((group, run))
    return out


def _triangles(items: list[tuple[int, np.ndarray, Part]]) -> list[dict]:
    """Unwelded triangles of (feature id, vertices, part) items, grouped by colour."""
    positions, rgba, ids = [], [], []  # per triangle
    for local_id, vertices, part in items:
        positions.append(vertices[part.faces].reshape(-1, 3, 3))
        rgba.append(part.face_rgba)
        ids.append(np.full(len(part.faces), local_id))
    tri = np.concatenate(positions)
    rgba = np.concatenate(rgba)
    ids = np.concatenate(ids)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area2 = np.linalg.norm(normal, axis=1)
    keep = area2 > 2 * MIN_TRIANGLE_M2
    tri, rgba, ids, normal = tri[keep], rgba[keep], ids[keep], normal[keep] / area2[keep, None]
    rgba = np.clip(np.rint(rgba * 255), 0, 255) / 255.0  # colours that look the same are the same
    colours, which = np.unique(rgba, axis=0, return_inverse=True)
    which = which.ravel()
    parts = []
    for c, colour in enumerate(colours):
        mask = which == c
        parts.append({"tri": tri[mask], "ids": ids[mask], "normal": normal[mask], "material": _material(colour)})
    return parts


def _welded(
    positions: np.ndarray, normals: np.ndarray, ids: np.ndarray | None, material: Material, *, axes: bool = True
) -> Primitive:
    """One primitive, with the corners that agree in position, normal and
    element stored once: neighbouring coplanar triangles share them and the
    shading stays flat (a wall's two triangles need 4 corners, not 6).
    ``axes``: turn ENU into glTF's y-up (an instanced mesh's rotation does it instead)."""
    pos32 = (gltf_axes(positions) if axes else positions).astype(np.float32)
    nor32 = (gltf_axes(normals) if axes else normals).astype(np.float32)
    key_ids = np.zeros(len(pos32), np.uint32) if ids is None else ids.astype(np.uint32)
    key = np.concatenate([pos32.view(np.uint32), nor32.view(np.uint32), key_ids.reshape(-1, 1)], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return Primitive(
        positions=pos32[first],
        normals=nor32[first],
        feature_ids=None if ids is None else ids[first],
        indices=inverse.ravel().astype(np.uint32),
        material=material,
    )


def write_bim_tileset(model: BimModel, folder: Path, *, max_triangles: int = 300_000) -> TilesetReport:
    """Write the tileset into the empty ``folder``: ``tileset.json`` refers to
    one external tileset per storey (``storeys/<k>.json``, each usable on its
    own: a viewer switches storeys by loading or hiding them), which refer to
    the GLBs in ``tiles/``."""
    t0 = time.perf_counter()
    centre_ecef = np.concatenate([p.ecef for p in model.parts]).mean(axis=0)
    lon, lat, _ = ecef_to_lonlath(centre_ecef[None, :])[0]
    frame = EnuFrame.at(lon, lat, 0.0)
    (folder / "tiles").mkdir()
    (folder / "storeys").mkdir()
    storey_tiles: dict[str, list[tuple[Tile, np.ndarray, np.ndarray]]] = {}
    triangles = size = count = 0
    for k, (group, members) in enumerate(_chunks(model, max_triangles)):
        enu = [frame.to_enu(model.parts[i].ecef) for i in members]
        lo = np.min([e.min(axis=0) for e in enu], axis=0)
        hi = np.max([e.max(axis=0) for e in enu], axis=0)
        centre = (lo + hi) / 2
        instanced, plain = _instanced(model, members, frame, centre)
        local_id = {i: n for n, i in enumerate(members)}
        primitives = []
        if plain:
            parts = _triangles([(local_id[i], enu[local_id[i]], model.parts[i]) for i in plain])
            for p in parts:
                primitives.append(
                    _welded(
                        p["tri"].reshape(-1, 3) - centre,
                        np.repeat(p["normal"], 3, axis=0),
                        np.repeat(p["ids"], 3),
                        p["material"],
                    )
                )
        triangles += sum(len(model.parts[i].faces) for i in members)
        table = PropertyTable(
            "element",
            len(members),
            [
                Column(
                    c.name,
                    np.asarray(c.values, dtype=object if c.kind == "STRING" else None)[members],
                    c.kind,
                    c.no_data,
                    c.title,
                )
                for c in model.columns
            ],
            class_title=model.class_title,
        )
        glb = write_glb(primitives, table, instanced)
        (folder / "tiles" / f"{k}.glb").write_bytes(glb)
        size += len(glb)
        count += 1
        tile = Tile(
            geometric_error=0.0,
            bounding_volume=BoundingVolumeBox.from_mins_maxs(np.concatenate([lo - centre, hi - centre])),
            transform=translation(centre),
            refine_mode="ADD",
            content_uri=f"../tiles/{k}.glb",
        )
        storey_tiles.setdefault(group, []).append((tile, lo, hi))

    storeys, refs, extents = [], [], []
    for s, (group, tiles) in enumerate(storey_tiles.items()):
        lo = np.min([t[1] for t in tiles], axis=0)
        hi = np.max([t[2] for t in tiles], axis=0)
        diagonal = float(np.linalg.norm(hi - lo))
        root = Tile(
            geometric_error=diagonal,
            bounding_volume=BoundingVolumeBox.from_mins_maxs(np.concatenate([lo, hi])),
            transform=frame.matrix(),
            refine_mode="ADD",
        )
        root.children.extend(t[0] for t in tiles)  # not add_child: see tiles/buildings.py
        storey_folder = folder / "storeys"
        write_tileset_json(storey_folder, root, diagonal, {"storey": group}, filename=f"{s}.json")
        ref = Tile(
            geometric_error=diagonal,
            bounding_volume=ecef_box(frame, lo, hi),
            refine_mode="ADD",
            content_uri=f"storeys/{s}.json",
        )
        ref.extras = {"storey": group}
        storeys.append({"name": group, "url": f"storeys/{s}.json"})
        refs.append(ref)
        extents.append((lo, hi))
    lo = np.min([b[0] for b in extents], axis=0)
    hi = np.max([b[1] for b in extents], axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    root = Tile(geometric_error=diagonal, bounding_volume=ecef_box(frame, lo, hi), refine_mode="ADD")
    root.children.extend(refs)
    write_tileset_json(
        folder,
        root,
        diagonal,
        {"elements": len(model.parts), "storeys": storeys, "origin": {"lon": float(lon), "lat": float(lat)}},
    )
    return TilesetReport(
        path=folder / "tileset.json",
        buildings=len(model.parts),
        tiles=count,
        depth=3,
        triangles=triangles,
        bytes=size,
        seconds=time.perf_counter() - t0,
        origin=(float(lon), float(lat)),
    )
