"""Built-in procedural models of the component classes (small, multi-part, coloured).

Every shape is a function ``(size, colour) -> trimesh.Scene``: metres, z up, origin at the base
centre (x/y centre of the bounding box, lowest point at z = 0), front facing +y (north). The
result fills the box ``size`` = (width x, depth y, height z) exactly. Parts are coloured by PBR
materials: the class colour on the part that identifies the class, neutral colours (grey steel,
dark iron, brown wood, warm lamp light...) elsewhere. Each model stays small (≤ ~300 triangles)
as it is instanced hundreds of thousands of times.

``build(cls)`` gives a class's model, ``to_glb(scene)`` writes it as GLB (glTF: y up, metres).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import trimesh
from trimesh.visual.material import PBRMaterial

if TYPE_CHECKING:
    from cim.components.catalogue import ComponentClass

Size = tuple[float, float, float]
Rgb = tuple[int, int, int]
ShapeFn = Callable[[Size, Rgb], trimesh.Scene]

# Neutral part colours (sRGB).
STEEL: Rgb = (150, 152, 156)
DARK: Rgb = (62, 64, 68)
CONCRETE: Rgb = (185, 182, 175)
WOOD: Rgb = (150, 105, 62)
TRUNK: Rgb = (105, 78, 52)
LIGHT: Rgb = (255, 226, 140)
GLASS: Rgb = (160, 200, 225)
WHITE: Rgb = (238, 238, 235)
WATER: Rgb = (90, 160, 215)
RED: Rgb = (215, 45, 40)
AMBER: Rgb = (245, 175, 30)
GREEN: Rgb = (40, 175, 80)
SOIL: Rgb = (110, 85, 60)

_Part = tuple[trimesh.Trimesh, Rgb]


def srgb_to_linear(rgb: Sequence[float]) -> tuple[float, ...]:
    """sRGB 0-255 -> linear 0-1 (glTF baseColorFactor is linear)."""
    out = []
    for v in rgb:
        c = float(v) / 255.0
        out.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return tuple(out)


def split_normals(
    vertices: np.ndarray, faces: np.ndarray, crease_deg: float = 40.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex normals smooth across edges flatter than ``crease_deg``, split (new vertices) at sharper edges.

    Returns (vertices, normals, faces) with float32/float32/uint32; numpy only (no scipy).
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) == 0:
        return v.astype(np.float32), np.zeros_like(v, dtype=np.float32), np.zeros(0, dtype=np.uint32)
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    length = np.linalg.norm(cross, axis=1)
    unit = cross / np.where(length > 0, length, 1.0)[:, None]
    corner_vertex = f.ravel()
    corner_face = np.repeat(np.arange(len(f)), 3)
    order = np.argsort(corner_vertex, kind="stable")
    sorted_vertex = corner_vertex[order]
    starts = np.flatnonzero(np.r_[True, sorted_vertex[1:] != sorted_vertex[:-1]])
    counts = np.diff(np.r_[starts, len(sorted_vertex)])
    group_start = np.repeat(starts, counts)  # per sorted corner
    group_count = np.repeat(counts, counts)
    # all pairs (i, j) of corners sharing a vertex
    i_sorted = np.repeat(np.arange(len(sorted_vertex)), group_count)
    first = np.repeat(np.cumsum(group_count) - group_count, group_count)
    j_sorted = np.repeat(group_start, group_count) + (np.arange(len(i_sorted)) - first)
    fi = corner_face[order[i_sorted]]
    fj = corner_face[order[j_sorted]]
    keep = np.einsum("ij,ij->i", unit[fi], unit[fj]) >= math.cos(math.radians(crease_deg))
    keep |= fi == fj
    acc = np.zeros((len(sorted_vertex), 3))
    np.add.at(acc, i_sorted[keep], cross[fj[keep]])
    norm = np.linalg.norm(acc, axis=1)
    normals_sorted = np.where(norm[:, None] > 0, acc / np.where(norm > 0, norm, 1.0)[:, None], [0.0, 0.0, 1.0])
    corner_normal = np.empty_like(normals_sorted)
    corner_normal[order] = normals_sorted
    # merge corners of the same vertex with the same normal
    key = np.column_stack([corner_vertex.astype(np.float64), np.round(corner_normal, 4)])
    _, first_idx, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    new_vertices = v[corner_vertex[first_idx]].astype(np.float32)
    new_normals = corner_normal[first_idx].astype(np.float32)
    return new_vertices, new_normals, inverse.reshape(-1).astype(np.uint32)


def _material(rgb: Rgb) -> PBRMaterial:
    r, g, b = srgb_to_linear(rgb)
    return PBRMaterial(baseColorFactor=[r, g, b, 1.0], metallicFactor=0.0, roughnessFactor=0.8)


# --- primitives (all return meshes in metres, z up) -------------------------------------------------


def _box(cx: float, cy: float, z0: float, w: float, d: float, h: float) -> trimesh.Trimesh:
    """An axis-aligned box: centre (cx, cy), from z0 up by h."""
    return trimesh.creation.box(
        extents=(w, d, h), transform=trimesh.transformations.translation_matrix((cx, cy, z0 + h / 2))
    )


def _cyl(cx: float, cy: float, z0: float, r: float, h: float, sections: int = 10) -> trimesh.Trimesh:
    """A vertical cylinder standing at (cx, cy, z0)."""
    m = trimesh.creation.cylinder(radius=r, height=h, sections=sections)
    m.apply_translation((cx, cy, z0 + h / 2))
    return m


def _hcyl(centre: Sequence[float], r: float, length: float, axis: str, sections: int = 8) -> trimesh.Trimesh:
    """A horizontal cylinder along the x or y axis, centred at ``centre``."""
    m = trimesh.creation.cylinder(radius=r, height=length, sections=sections)
    angle, rot_axis = (math.pi / 2, (0, 1, 0)) if axis == "x" else (math.pi / 2, (1, 0, 0))
    m.apply_transform(trimesh.transformations.rotation_matrix(angle, rot_axis))
    m.apply_translation(centre)
    return m


def _cone(cx: float, cy: float, z0: float, r: float, h: float, sections: int = 10) -> trimesh.Trimesh:
    m = trimesh.creation.cone(radius=r, height=h, sections=sections)
    m.apply_translation((cx, cy, z0))
    return m


def _ball(cx: float, cy: float, cz: float, rx: float, ry: float, rz: float) -> trimesh.Trimesh:
    """A low-poly ellipsoid (icosphere, 80 triangles)."""
    m = trimesh.creation.icosphere(subdivisions=1, radius=1.0)
    m.apply_scale((rx, ry, rz))
    m.apply_translation((cx, cy, cz))
    return m


_HEXA_FACES = np.array(
    [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
     [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]]
)  # fmt: skip


def _hexa(points: Sequence[Sequence[float]]) -> trimesh.Trimesh:
    """A six-sided solid from 8 corners: bottom (-x-y, +x-y, +x+y, -x+y), then the top in the same order."""
    return trimesh.Trimesh(vertices=np.asarray(points, dtype=float), faces=_HEXA_FACES, process=False)


def _frustum(w0: float, d0: float, w1: float, d1: float, z0: float, z1: float) -> trimesh.Trimesh:
    """A square frustum from a w0 x d0 base at z0 to a w1 x d1 top at z1."""
    corners = ((-1, -1), (1, -1), (1, 1), (-1, 1))
    pts = [(sx * w0 / 2, sy * d0 / 2, z0) for sx, sy in corners] + [
        (sx * w1 / 2, sy * d1 / 2, z1) for sx, sy in corners
    ]
    return _hexa(pts)


def _tapered(r0: float, r1: float, z0: float, z1: float, sections: int = 10) -> trimesh.Trimesh:
    """A round frustum (radius r0 at z0, r1 at z1), closed at both ends."""
    a = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    ring0 = np.column_stack([r0 * np.cos(a), r0 * np.sin(a), np.full(sections, z0)])
    ring1 = np.column_stack([r1 * np.cos(a), r1 * np.sin(a), np.full(sections, z1)])
    verts = np.vstack([ring0, ring1, [(0, 0, z0), (0, 0, z1)]])
    i = np.arange(sections)
    j = (i + 1) % sections
    b, t = 2 * sections, 2 * sections + 1
    faces = np.vstack(
        [
            np.column_stack([i, j, j + sections]),
            np.column_stack([i, j + sections, i + sections]),
            np.column_stack([np.full(sections, b), j, i]),
            np.column_stack([np.full(sections, t), i + sections, j + sections]),
        ]
    )
    return trimesh.Trimesh(vertices=verts, faces=faces, process=False)


def _scene(parts: list[_Part], size: Size) -> trimesh.Scene:
    """Fit the parts to the box ``size`` (base centre at the origin) and make a scene, one node per colour."""
    allv = np.vstack([m.vertices for m, _ in parts])
    lo, hi = allv.min(axis=0), allv.max(axis=0)
    ext = hi - lo
    target = np.asarray(size, dtype=float)
    scale = np.where(ext > 1e-9, target / np.where(ext > 1e-9, ext, 1.0), 1.0)
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    by_colour: dict[Rgb, list[trimesh.Trimesh]] = {}
    for mesh, rgb in parts:
        by_colour.setdefault(rgb, []).append(mesh)
    scene = trimesh.Scene()
    for k, (rgb, meshes) in enumerate(by_colour.items()):
        verts, faces, offset = [], [], 0
        for m in meshes:
            verts.append((np.asarray(m.vertices) - centre) * scale)
            faces.append(np.asarray(m.faces) + offset)
            offset += len(m.vertices)
        v, n, f = split_normals(np.vstack(verts), np.vstack(faces))
        mesh = trimesh.Trimesh(vertices=v, faces=f.reshape(-1, 3), vertex_normals=n, process=False)
        mesh.visual = trimesh.visual.TextureVisuals(material=_material(rgb))
        scene.add_geometry(mesh, geom_name=f"part{k}", node_name=f"part{k}")
    return scene


# --- shapes ---------------------------------------------------------------------------------------


def manhole(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) / 2
    if abs(w - d) > 0.05:  # rectangular cover
        return _scene([(_box(0, 0, 0, w, d, h * 0.6), DARK), (_box(0, 0, 0, w * 0.88, d * 0.84, h), colour)], size)
    return _scene([(_cyl(0, 0, 0, r, h * 0.6, 16), DARK), (_cyl(0, 0, 0, r * 0.86, h, 16), colour)], size)


def grate(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    parts: list[_Part] = [(_box(0, 0, 0, w, d, h * 0.5), DARK)]
    n = 5
    for i in range(n):
        x = -w / 2 + w * (i + 0.5) / n
        parts.append((_box(x, 0, 0, w / n * 0.55, d, h), colour))
    return _scene(parts, size)


def hydrant(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) * 0.35
    return _scene(
        [
            (_cyl(0, 0, 0, r * 1.3, h * 0.08, 10), DARK),
            (_cyl(0, 0, h * 0.08, r, h * 0.74, 10), colour),
            (_cone(0, 0, h * 0.82, r * 1.15, h * 0.18, 10), colour),
            (_hcyl((0, 0, h * 0.6), r * 0.4, w, "x"), colour),
            (_hcyl((0, d / 4, h * 0.5), r * 0.5, d / 2, "y"), STEEL),
        ],
        size,
    )


def pole(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) / 2
    return _scene([(_cyl(0, 0, 0, r * 0.5, h, 8), STEEL), (_cyl(0, 0, 0, r, h * 0.1, 8), colour)], size)


def lamp(size: Size, colour: Rgb) -> trimesh.Scene:
    """A street lamp: grey pole at the back, arm reaching forward (+y), warm light, class colour base."""
    w, d, h = size
    r = w * 0.2
    y0 = -d / 2 + w / 2
    return _scene(
        [
            (_cyl(0, y0, 0, w / 2, h * 0.08, 8), colour),
            (_cyl(0, y0, 0, r, h * 0.96, 8), STEEL),
            (_box(0, y0 + (d - w / 2) / 2, h * 0.94, r * 1.2, d - w / 2, r * 1.2), STEEL),
            (_box(0, d / 2 - w * 0.45, h * 0.93, w * 0.9, w * 0.9, h * 0.07), LIGHT),
        ],
        size,
    )


def post_light(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) / 2
    return _scene(
        [
            (_cyl(0, 0, 0, r * 0.8, h * 0.1, 8), colour),
            (_cyl(0, 0, 0, r * 0.25, h * 0.85, 8), colour),
            (_ball(0, 0, h - r, r, r, r), LIGHT),
        ],
        size,
    )


def smart_pole(size: Size, colour: Rgb) -> trimesh.Scene:
    """A smart pole (智慧灯杆): thick pole, light arm forward, camera, screen and 5G antenna box."""
    w, d, h = size
    y0 = -d / 2 + w / 2
    r = w * 0.3
    return _scene(
        [
            (_cyl(0, y0, 0, w / 2, h * 0.06, 8), DARK),
            (_cyl(0, y0, 0, r, h, 8), STEEL),
            (_box(0, y0, h * 0.35, w * 0.9, w * 0.5, h * 0.15), colour),
            (_box(0, y0, h * 0.7, w * 0.8, w * 0.8, h * 0.1), colour),
            (_box(0, y0 + (d - w / 2) / 2, h * 0.9, r, d - w / 2, r), STEEL),
            (_box(0, d / 2 - w * 0.4, h * 0.89, w * 0.8, w * 0.8, h * 0.04), LIGHT),
            (_box(0, y0 + w * 0.6, h * 0.6, w * 0.3, w * 0.4, w * 0.3), DARK),
        ],
        size,
    )


def mast(size: Size, colour: Rgb) -> trimesh.Scene:
    """A thin mast with a class-coloured equipment box at the top and a cabinet at the foot."""
    w, d, h = size
    return _scene(
        [
            (_box(0, 0, 0, w, d * 0.6, h * 0.15), DARK),
            (_cyl(0, 0, 0, min(w, d) * 0.15, h, 8), STEEL),
            (_box(0, 0, h * 0.8, w * 0.6, d * 0.6, h * 0.2), colour),
        ],
        size,
    )


def sign(size: Size, colour: Rgb) -> trimesh.Scene:
    """A sign on a post: the panel, facing +y, takes the upper third."""
    w, d, h = size
    r = min(w * 0.06, 0.05)
    return _scene(
        [
            (_cyl(0, -d / 4, 0, r, h * 0.95, 8), STEEL),
            (_box(0, d / 4, h * 0.62, w, d / 2, h * 0.38), colour),
        ],
        size,
    )


def plate(size: Size, colour: Rgb) -> trimesh.Scene:
    """A small plate on a slim post: white border, class colour face."""
    w, d, h = size
    return _scene(
        [
            (_box(0, -d / 4, 0, w * 0.1, d / 2, h * 0.9), STEEL),
            (_box(0, -d / 4, h * 0.82, w, d / 2, h * 0.18), WHITE),
            (_box(0, d / 4, h * 0.84, w * 0.9, d / 2, h * 0.14), colour),
        ],
        size,
    )


def board(size: Size, colour: Rgb) -> trimesh.Scene:
    """A board on two legs (billboards, notice boards, light boxes): class colour panel facing +y."""
    w, d, h = size
    leg = min(0.25, w * 0.08)
    return _scene(
        [
            (_box(-w * 0.35, 0, 0, leg, leg, h * 0.5), STEEL),
            (_box(w * 0.35, 0, 0, leg, leg, h * 0.5), STEEL),
            (_box(0, -d * 0.2, h * 0.4, w, d * 0.6, h * 0.6), DARK),
            (_box(0, d * 0.3, h * 0.43, w * 0.94, d * 0.4, h * 0.54), colour),
        ],
        size,
    )


def box(size: Size, colour: Rgb) -> trimesh.Scene:
    """A cabinet or small hut: dark plinth, class colour body, grey lid."""
    w, d, h = size
    return _scene(
        [
            (_box(0, 0, 0, w * 0.96, d * 0.96, h * 0.06), DARK),
            (_box(0, 0, h * 0.06, w * 0.94, d * 0.94, h * 0.88), colour),
            (_box(0, 0, h * 0.94, w, d, h * 0.06), STEEL),
            (_box(0, d * 0.47, h * 0.35, w * 0.5, d * 0.03, h * 0.4), STEEL),
        ],
        size,
    )


def booth(size: Size, colour: Rgb) -> trimesh.Scene:
    """A kiosk: class colour body, glass front (+y), overhanging roof."""
    w, d, h = size
    return _scene(
        [
            (_box(0, 0, 0, w * 0.9, d * 0.9, h * 0.88), colour),
            (_box(0, d * 0.45, h * 0.35, w * 0.7, d * 0.05, h * 0.45), GLASS),
            (_box(0, 0, h * 0.88, w, d, h * 0.12), STEEL),
        ],
        size,
    )


def bin_(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) / 2
    return _scene(
        [
            (_cyl(0, 0, 0, r * 0.92, h * 0.88, 12), colour),
            (_cyl(0, 0, h * 0.86, r, h * 0.14, 12), DARK),
        ],
        size,
    )


def bin_station(size: Size, colour: Rgb) -> trimesh.Scene:
    """A sorted-waste point: four bins (recyclable blue, hazardous red, kitchen green, other grey) under a roof."""
    w, d, h = size
    parts: list[_Part] = [(_box(0, -d * 0.4, 0, w, d * 0.2, h), colour), (_box(0, 0, h * 0.9, w, d, h * 0.1), colour)]
    for i, rgb in enumerate(((40, 110, 200), RED, GREEN, (110, 110, 110))):
        x = -w / 2 + w * (i + 0.5) / 4
        parts.append((_cyl(x, d * 0.1, 0, min(w / 10, d * 0.35), h * 0.45, 10), rgb))
    return _scene(parts, size)


def bench(size: Size, colour: Rgb) -> trimesh.Scene:
    """A bench facing +y: class colour seat and back, dark legs."""
    w, d, h = size
    return _scene(
        [
            (_box(-w * 0.4, 0, 0, w * 0.06, d * 0.8, h * 0.5), DARK),
            (_box(w * 0.4, 0, 0, w * 0.06, d * 0.8, h * 0.5), DARK),
            (_box(0, d * 0.05, h * 0.5, w, d * 0.8, h * 0.07), colour),
            (_box(0, -d * 0.45, h * 0.55, w, d * 0.1, h * 0.45), colour),
        ],
        size,
    )


def tree(size: Size, colour: Rgb) -> trimesh.Scene:
    """A broadleaf tree: brown trunk, two low-poly crown lobes in the class colour."""
    w, d, h = size
    return _scene(
        [
            (_cyl(0, 0, 0, min(w, d) * 0.05, h * 0.5, 8), TRUNK),
            (_ball(0, 0, h * 0.62, w * 0.5, d * 0.5, h * 0.3), colour),
            (_ball(w * 0.08, -d * 0.06, h * 0.82, w * 0.3, d * 0.3, h * 0.18), colour),
        ],
        size,
    )


def palm(size: Size, colour: Rgb) -> trimesh.Scene:
    """A palm: slender trunk, six drooping fronds."""
    w, d, h = size
    parts: list[_Part] = [(_cyl(0, 0, 0, min(w, d) * 0.04, h * 0.9, 8), TRUNK)]
    for k in range(6):
        a = 2 * math.pi * k / 6
        frond = trimesh.creation.box(extents=(w * 0.5, w * 0.12, h * 0.02))
        frond.apply_translation((w * 0.25, 0, 0))
        frond.apply_transform(trimesh.transformations.rotation_matrix(math.radians(25), (0, 1, 0)))
        frond.apply_transform(trimesh.transformations.rotation_matrix(a, (0, 0, 1)))
        frond.apply_translation((0, 0, h * 0.92))
        parts.append((frond, colour))
    parts.append((_ball(0, 0, h * 0.93, w * 0.06, d * 0.06, h * 0.05), colour))
    return _scene(parts, size)


def shrub(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    return _scene(
        [
            (_ball(-w * 0.2, 0, h * 0.45, w * 0.3, d * 0.35, h * 0.45), colour),
            (_ball(w * 0.2, d * 0.05, h * 0.4, w * 0.3, d * 0.3, h * 0.4), colour),
        ],
        size,
    )


def hedge(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    return _scene(
        [(_box(0, 0, 0, w, d, h * 0.15), SOIL), (_box(0, 0, h * 0.1, w * 0.97, d * 0.9, h * 0.9), colour)], size
    )


def tree_guard(size: Size, colour: Rgb) -> trimesh.Scene:
    """A tree guard: a grate at the foot, four posts, a ring rail."""
    w, d, h = size
    parts: list[_Part] = [(_box(0, 0, 0, w, d, h * 0.05), DARK)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((_box(sx * w * 0.45, sy * d * 0.45, 0, w * 0.05, d * 0.05, h), colour))
    parts += [
        (_box(0, d * 0.45, h * 0.85, w * 0.95, d * 0.04, h * 0.08), colour),
        (_box(0, -d * 0.45, h * 0.85, w * 0.95, d * 0.04, h * 0.08), colour),
        (_box(w * 0.45, 0, h * 0.85, w * 0.04, d * 0.95, h * 0.08), colour),
        (_box(-w * 0.45, 0, h * 0.85, w * 0.04, d * 0.95, h * 0.08), colour),
    ]
    return _scene(parts, size)


def planter(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) / 2
    return _scene(
        [
            (_cyl(0, 0, 0, r * 0.4, h * 0.3, 10), CONCRETE),
            (_tapered(r * 0.45, r, h * 0.3, h * 0.65, 12), colour),
            (_ball(0, 0, h * 0.75, r * 0.85, r * 0.85, h * 0.25), (220, 90, 140)),
        ],
        size,
    )


def sculpture(size: Size, colour: Rgb) -> trimesh.Scene:
    """A stone pedestal with an upright ring."""
    w, d, h = size
    ring = trimesh.creation.torus(major_radius=0.35 * w, minor_radius=0.08 * w, major_sections=12, minor_sections=6)
    ring.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, (1, 0, 0)))
    ring.apply_translation((0, 0, h * 0.3 + 0.43 * w))
    return _scene([(_box(0, 0, 0, w * 0.6, d * 0.6, h * 0.3), CONCRETE), (ring, colour)], size)


def fountain(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) / 2
    return _scene(
        [
            (_cyl(0, 0, 0, r, h * 0.25, 16), CONCRETE),
            (_cyl(0, 0, 0, r * 0.9, h * 0.27, 16), WATER),
            (_cyl(0, 0, 0, r * 0.12, h * 0.8, 8), CONCRETE),
            (_cyl(0, 0, h * 0.7, r * 0.35, h * 0.08, 12), colour),
            (_cone(0, 0, h * 0.78, r * 0.15, h * 0.22, 8), WATER),
        ],
        size,
    )


def shelter(size: Size, colour: Rgb) -> trimesh.Scene:
    """A bus shelter open to +y: class colour roof and advertising panel, glass back wall, bench."""
    w, d, h = size
    return _scene(
        [
            (_box(-w * 0.45, -d * 0.35, 0, 0.1, 0.1, h * 0.9), STEEL),
            (_box(w * 0.45, -d * 0.35, 0, 0.1, 0.1, h * 0.9), STEEL),
            (_box(0, -d * 0.4, h * 0.1, w * 0.85, d * 0.04, h * 0.75), GLASS),
            (_box(-w * 0.47, 0, h * 0.1, w * 0.04, d * 0.6, h * 0.75), colour),
            (_box(0, -d * 0.25, h * 0.2, w * 0.5, d * 0.2, h * 0.05), WOOD),
            (_box(0, 0, h * 0.9, w, d, h * 0.1), colour),
        ],
        size,
    )


def bollard(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    r = min(w, d) / 2
    return _scene(
        [
            (_cyl(0, 0, 0, r, h * 0.7, 10), colour),
            (_cyl(0, 0, h * 0.7, r, h * 0.12, 10), WHITE),
            (_cone(0, 0, h * 0.82, r, h * 0.18, 10), colour),
        ],
        size,
    )


def barrier(size: Size, colour: Rgb) -> trimesh.Scene:
    """A railing along x: posts at the ends and middle, two rails."""
    w, d, h = size
    parts: list[_Part] = []
    for x in (-w / 2 + d / 2, 0.0, w / 2 - d / 2):
        parts.append((_box(x, 0, 0, d, d, h), STEEL))
    parts.append((_box(0, 0, h * 0.45, w, d * 0.6, h * 0.08), colour))
    parts.append((_box(0, 0, h * 0.88, w, d * 0.8, h * 0.12), colour))
    return _scene(parts, size)


def wall(size: Size, colour: Rgb) -> trimesh.Scene:
    w, d, h = size
    parts: list[_Part] = [(_box(0, 0, 0, w, d * 0.4, h), colour)]
    for x in (-w / 2 + d / 2, 0.0, w / 2 - d / 2):
        parts.append((_box(x, 0, 0, d, d, h), STEEL))
    return _scene(parts, size)


def block(size: Size, colour: Rgb) -> trimesh.Scene:
    """A water-filled separation block: wide foot, narrower top, white band."""
    w, d, h = size
    return _scene(
        [
            (_frustum(w, d, w * 0.9, d * 0.5, 0, h * 0.6), colour),
            (_box(0, 0, h * 0.6, w * 0.9, d * 0.5, h * 0.2), WHITE),
            (_box(0, 0, h * 0.8, w * 0.9, d * 0.5, h * 0.2), colour),
        ],
        size,
    )


def post(size: Size, colour: Rgb) -> trimesh.Scene:
    """A parking meter: a post with a class colour head."""
    w, d, h = size
    return _scene(
        [
            (_cyl(0, 0, 0, min(w, d) * 0.2, h * 0.7, 8), DARK),
            (_box(0, 0, h * 0.65, w, d, h * 0.35), colour),
        ],
        size,
    )


def camera_pole(size: Size, colour: Rgb) -> trimesh.Scene:
    """A camera pole: pole at the back, short arm forward (+y), class colour camera."""
    w, d, h = size
    y0 = -d / 2 + w / 2
    return _scene(
        [
            (_cyl(0, y0, 0, w * 0.3, h, 8), STEEL),
            (_box(0, y0 + d * 0.35, h * 0.92, w * 0.3, d * 0.7, w * 0.3), STEEL),
            (_box(0, d / 2 - w * 0.6, h * 0.8, w * 0.6, w * 1.2, h * 0.08), colour),
        ],
        size,
    )


def camera_arm(size: Size, colour: Rgb) -> trimesh.Scene:
    """A traffic enforcement gantry arm over the road (+y) with cameras and a flash lamp."""
    w, d, h = size
    y0 = -d / 2 + w / 2
    parts: list[_Part] = [
        (_cyl(0, y0, 0, w * 0.4, h, 8), colour),
        (_box(0, y0 + (d - w / 2) / 2, h * 0.93, w * 0.5, d - w / 2, w * 0.5), STEEL),
    ]
    for k in range(3):
        y = y0 + (d - w) * (k + 1) / 3.5
        parts.append((_box(0, y, h * 0.84, w * 0.6, w * 1.0, h * 0.07), DARK))
    parts.append((_box(0, d / 2 - w / 2, h * 0.84, w, w, h * 0.07), WHITE))
    return _scene(parts, size)


def traffic_light(size: Size, colour: Rgb) -> trimesh.Scene:
    """A signal pole at the back, arm forward (+y), dark signal head with red, amber and green lamps."""
    w, d, h = size
    y0 = -d / 2 + w / 2
    hy = d / 2 - w / 2
    return _scene(
        [
            (_cyl(0, y0, 0, w * 0.3, h, 8), colour),
            (_box(0, y0 + (d - w / 2) / 2, h * 0.95, w * 0.3, d - w / 2, w * 0.3), colour),
            (_box(0, hy, h * 0.62, w, w, h * 0.3), DARK),
            (_box(0, hy - w * 0.5, h * 0.82, w * 0.5, w * 0.1, h * 0.07), RED),
            (_box(0, hy - w * 0.5, h * 0.73, w * 0.5, w * 0.1, h * 0.07), AMBER),
            (_box(0, hy - w * 0.5, h * 0.64, w * 0.5, w * 0.1, h * 0.07), GREEN),
        ],
        size,
    )


def tower(size: Size, colour: Rgb) -> trimesh.Scene:
    """A lattice pylon, simplified: tapered body, top mast, class colour cross arms."""
    w, d, h = size
    return _scene(
        [
            (_frustum(w * 0.5, d * 0.5, w * 0.1, d * 0.1, 0, h * 0.75), STEEL),
            (_box(0, 0, h * 0.75, w * 0.08, d * 0.08, h * 0.25), STEEL),
            (_box(0, 0, h * 0.62, w, d * 0.06, h * 0.02), colour),
            (_box(0, 0, h * 0.78, w * 0.8, d * 0.06, h * 0.02), colour),
            (_box(0, 0, h * 0.92, w * 0.6, d * 0.06, h * 0.02), colour),
        ],
        size,
    )


def bridge(size: Size, colour: Rgb) -> trimesh.Scene:
    """A bridge along y: class colour deck on two piers, railings."""
    w, d, h = size
    return _scene(
        [
            (_box(0, -d * 0.3, 0, w * 0.3, w * 0.3, h * 0.8), CONCRETE),
            (_box(0, d * 0.3, 0, w * 0.3, w * 0.3, h * 0.8), CONCRETE),
            (_box(0, 0, h * 0.8, w, d, h * 0.08), colour),
            (_box(-w * 0.48, 0, h * 0.88, w * 0.04, d, h * 0.12), STEEL),
            (_box(w * 0.48, 0, h * 0.88, w * 0.04, d, h * 0.12), STEEL),
        ],
        size,
    )


def pier(size: Size, colour: Rgb) -> trimesh.Scene:
    """A viaduct pier with its cap beam and a deck segment."""
    w, d, h = size
    return _scene(
        [
            (_box(0, 0, 0, w * 0.15, d * 0.6, h * 0.8), CONCRETE),
            (_frustum(w * 0.2, d * 0.6, w * 0.7, d * 0.8, h * 0.7, h * 0.85), CONCRETE),
            (_box(0, 0, h * 0.85, w, d, h * 0.15), colour),
        ],
        size,
    )


def gantry(size: Size, colour: Rgb) -> trimesh.Scene:
    """A variable message sign gantry: two posts, a beam across x, the sign facing +y."""
    w, d, h = size
    return _scene(
        [
            (_box(-w * 0.47, 0, 0, w * 0.06, d * 0.5, h), STEEL),
            (_box(w * 0.47, 0, 0, w * 0.06, d * 0.5, h), STEEL),
            (_box(0, 0, h * 0.9, w, d * 0.4, h * 0.1), STEEL),
            (_box(0, d * 0.25, h * 0.6, w * 0.6, d * 0.5, h * 0.3), colour),
            (_box(0, d * 0.49, h * 0.63, w * 0.55, d * 0.02, h * 0.24), DARK),
        ],
        size,
    )


def entrance(size: Size, colour: Rgb) -> trimesh.Scene:
    """A stair or ramp entrance open to +y: side walls, glass back, class colour roof."""
    w, d, h = size
    return _scene(
        [
            (_box(-w * 0.46, 0, 0, w * 0.08, d, h * 0.9), GLASS),
            (_box(w * 0.46, 0, 0, w * 0.08, d, h * 0.9), GLASS),
            (_box(0, -d * 0.47, 0, w, d * 0.06, h * 0.9), CONCRETE),
            (_box(0, 0, 0, w * 0.84, d, h * 0.05), DARK),
            (_box(0, 0, h * 0.88, w, d, h * 0.12), colour),
        ],
        size,
    )


def canopy(size: Size, colour: Rgb) -> trimesh.Scene:
    """A petrol station canopy on four columns, two pumps."""
    w, d, h = size
    parts: list[_Part] = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((_box(sx * w * 0.3, sy * d * 0.25, 0, 0.5, 0.5, h * 0.85), WHITE))
        parts.append((_box(sx * w * 0.3, 0, 0, 1.0, 0.6, min(1.9, h * 0.35)), colour))
    parts.append((_box(0, 0, h * 0.85, w, d, h * 0.15), colour))
    return _scene(parts, size)


def rack(size: Size, colour: Rgb) -> trimesh.Scene:
    """A bicycle rack: a foot rail and inverted-U hoops across y."""
    w, d, h = size
    parts: list[_Part] = [(_box(0, 0, 0, w, 0.08, 0.05), DARK)]
    n = 5
    for i in range(n):
        x = -w / 2 + w * (i + 0.5) / n
        parts.append((_box(x, -d * 0.45, 0, 0.05, 0.05, h), colour))
        parts.append((_box(x, d * 0.45, 0, 0.05, 0.05, h), colour))
        parts.append((_box(x, 0, h * 0.94, 0.05, d, h * 0.06), colour))
    return _scene(parts, size)


def rack_station(size: Size, colour: Rgb) -> trimesh.Scene:
    """A public bicycle station: docks along x, a terminal, a canopy."""
    w, d, h = size
    parts: list[_Part] = [(_box(0, -d * 0.3, 0, w, d * 0.15, h * 0.4), DARK)]
    for i in range(6):
        x = -w / 2 + w * (i + 0.5) / 6
        parts.append((_box(x, -d * 0.1, 0, w * 0.04, d * 0.3, h * 0.45), STEEL))
    parts.append((_box(-w * 0.47, -d * 0.3, 0, w * 0.06, d * 0.3, h * 0.8), colour))
    parts.append((_box(0, 0, h * 0.9, w, d, h * 0.1), colour))
    parts.append((_box(w * 0.47, -d * 0.4, 0, w * 0.04, d * 0.1, h * 0.9), STEEL))
    return _scene(parts, size)


def mirror(size: Size, colour: Rgb) -> trimesh.Scene:
    """A convex traffic mirror facing +y on a post."""
    w, d, h = size
    r = w / 2
    return _scene(
        [
            (_cyl(0, -d * 0.3, 0, 0.04, h * 0.75, 8), STEEL),
            (_hcyl((0, d * 0.1, h - r), r, d * 0.6, "y", 14), colour),
            (_hcyl((0, d * 0.45, h - r), r * 0.85, d * 0.1, "y", 14), GLASS),
        ],
        size,
    )


def fitness(size: Size, colour: Rgb) -> trimesh.Scene:
    """Outdoor fitness equipment: posts and bars in the class colour, a dark base."""
    w, d, h = size
    parts: list[_Part] = [(_box(0, 0, 0, w, d, h * 0.03), DARK)]
    for x in (-w * 0.45, 0.0, w * 0.45):
        parts.append((_cyl(x, 0, 0, 0.06, h, 8), colour))
    parts.append((_hcyl((0, 0, h * 0.95), 0.04, w * 0.9, "x"), colour))
    parts.append((_hcyl((-w * 0.22, 0, h * 0.55), 0.04, w * 0.45, "x"), STEEL))
    parts.append((_hcyl((w * 0.22, d * 0.25, h * 0.3), 0.04, d * 0.5, "y"), STEEL))
    return _scene(parts, size)


def playground(size: Size, colour: Rgb) -> trimesh.Scene:
    """A play tower: platform on posts, pyramid roof, slide to +y."""
    w, d, h = size
    lo = [(-w * 0.1, -d * 0.05, h * 0.4), (w * 0.1, -d * 0.05, h * 0.4), (w * 0.1, d / 2, 0.0), (-w * 0.1, d / 2, 0.0)]
    slide = _hexa(lo + [(x, y, z + 0.03) for x, y, z in lo])
    parts: list[_Part] = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((_box(sx * w * 0.2, -d * 0.25 + sy * d * 0.2, 0, 0.1, 0.1, h * 0.75), STEEL))
    parts += [
        (_box(0, -d * 0.25, h * 0.4, w * 0.5, d * 0.5, h * 0.05), WOOD),
        (_cone(0, -d * 0.25, h * 0.72, w * 0.4, h * 0.28, 4), colour),
        (slide, colour),
    ]
    return _scene(parts, size)


def tank(size: Size, colour: Rgb) -> trimesh.Scene:
    """A storage tank (major hazard): vertical cylinder, dome, warning band."""
    w, d, h = size
    r = min(w, d) / 2
    return _scene(
        [
            (_cyl(0, 0, 0, r, h * 0.75, 14), WHITE),
            (_cyl(0, 0, h * 0.45, r * 1.001, h * 0.12, 14), colour),
            (_ball(0, 0, h * 0.75, r, r, h * 0.25), WHITE),
        ],
        size,
    )


def outfall(size: Size, colour: Rgb) -> trimesh.Scene:
    """A river outfall: concrete headwall with a pipe discharging to +y."""
    w, d, h = size
    return _scene(
        [
            (_box(0, -d * 0.25, 0, w, d * 0.5, h), CONCRETE),
            (_hcyl((0, d * 0.2, h * 0.4), min(w, h) * 0.3, d * 0.6, "y", 12), colour),
        ],
        size,
    )


SHAPES: dict[str, ShapeFn] = {
    "manhole": manhole,
    "grate": grate,
    "hydrant": hydrant,
    "pole": pole,
    "lamp": lamp,
    "post_light": post_light,
    "smart_pole": smart_pole,
    "mast": mast,
    "sign": sign,
    "plate": plate,
    "board": board,
    "box": box,
    "booth": booth,
    "bin": bin_,
    "bin_station": bin_station,
    "bench": bench,
    "tree": tree,
    "palm": palm,
    "shrub": shrub,
    "hedge": hedge,
    "tree_guard": tree_guard,
    "planter": planter,
    "sculpture": sculpture,
    "fountain": fountain,
    "shelter": shelter,
    "bollard": bollard,
    "barrier": barrier,
    "wall": wall,
    "block": block,
    "post": post,
    "camera_pole": camera_pole,
    "camera_arm": camera_arm,
    "traffic_light": traffic_light,
    "tower": tower,
    "bridge": bridge,
    "pier": pier,
    "gantry": gantry,
    "entrance": entrance,
    "canopy": canopy,
    "rack": rack,
    "rack_station": rack_station,
    "mirror": mirror,
    "fitness": fitness,
    "playground": playground,
    "tank": tank,
    "outfall": outfall,
}


def build(cls: ComponentClass) -> trimesh.Scene:
    """The class's built-in model: its shape at its size and colour (an unknown shape is a box)."""
    return SHAPES.get(cls.shape, box)(cls.size, cls.colour)


# z up -> y up (glTF): x stays, z becomes y, y becomes -z; tiles.models.read_model turns it back.
Z_UP_TO_Y_UP = trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0))


def to_glb(scene: trimesh.Scene) -> bytes:
    """A GLB of the scene in glTF's axes (y up, metres), with its normals and PBR materials."""
    out = trimesh.Scene()
    for k, node in enumerate(scene.graph.nodes_geometry):
        transform, name = scene.graph[node]
        mesh = scene.geometry[name]
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            continue
        matrix = Z_UP_TO_Y_UP @ np.asarray(transform, dtype=float)
        if "vertex_normals" in mesh._cache:  # normals given (the built-in shapes give theirs)
            verts, faces, normals = np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.vertex_normals)
        else:
            verts, normals, flat = split_normals(mesh.vertices, mesh.faces)
            faces = flat.reshape(-1, 3)
        verts = trimesh.transform_points(verts, matrix)
        normal_matrix = np.linalg.inv(matrix[:3, :3]).T
        normals = normals @ normal_matrix.T
        normals /= np.maximum(np.linalg.norm(normals, axis=1), 1e-12)[:, None]
        copy = trimesh.Trimesh(vertices=verts, faces=faces, vertex_normals=normals, process=False)
        copy.visual = mesh.visual.copy() if isinstance(mesh.visual, trimesh.visual.TextureVisuals) else mesh.visual
        out.add_geometry(copy, geom_name=f"part{k}", node_name=f"part{k}")
    data = out.export(file_type="glb", include_normals=True)
    return bytes(data)
