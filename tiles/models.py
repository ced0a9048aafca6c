"""Component models for instancing: read a 3D model file and normalise it.

Formats (read with trimesh): GLB/glTF (y up, metres by the glTF spec), OBJ+MTL (y up by
convention), PLY and STL (z up by convention). The result, a ``Model``, is always in metres, x east,
y north (the model's front), z up, origin at the base centre (x/y centre of the bounding box,
lowest point at z = 0), one ``ModelPart`` per colour with positions, unit normals and triangle
indices.

Normalisation, each step noted in ``Model.notes``:

* units: glTF is metres. OBJ, PLY and STL carry no unit: a model whose largest side is over 100
  (implausible in metres for a street component) is taken as millimetres when that side is over
  10,000, else as centimetres;
* up axis: y-up sources are turned z-up (x stays, y becomes z, z becomes -y: glTF's +z front
  faces south, as Cesium's y-up to z-up turn does);
* textures are reduced to one colour per material (the base colour factor times the texture's
  mean colour);
* normals are computed where the file has none (smooth across edges under 40°, split above);
* a model above ``max_triangles`` (``MAX_TRIANGLES``) is simplified by quadric decimation
  (fast-simplification, through trimesh) to at most that many triangles, its parts sharing the
  budget in proportion to their size.

Anything trimesh cannot read (a truncated GLB, a text file named .obj, a model without triangles,
an unknown suffix) fails with an ``InputError`` of one line naming the file.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from cim.components.shapes import split_normals, srgb_to_linear
from cim.errors import InputError

MAX_TRIANGLES = 5_000
MODEL_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")

_Y_UP_SUFFIXES = (".glb", ".gltf", ".obj")
_METRE_SUFFIXES = (".glb", ".gltf")
_HINT = "re-export it as GLB (metres, y up), glTF, OBJ+MTL, PLY or STL"
_DEFAULT_COLOUR = (0.6, 0.6, 0.6, 1.0)
_MAX_COLOUR_PARTS = 16  # vertex/face-coloured meshes: one part per colour up to this many, else one averaged part

# y up -> z up: x stays, y becomes z, z becomes -y (the inverse of cim.components.shapes.Z_UP_TO_Y_UP)
Y_UP_TO_Z_UP = trimesh.transformations.rotation_matrix(math.pi / 2, (1, 0, 0))


@dataclass
class ModelPart:
    """One colour of a model: positions (n, 3) float32 metres z up, unit normals, uint32 triangle indices."""

    positions: np.ndarray
    normals: np.ndarray
    indices: np.ndarray
    colour: tuple[float, float, float, float]  # glTF baseColorFactor (linear, 0-1)


@dataclass
class Model:
    """A normalised model: metres, x east, y north (front), z up, origin at the base centre."""

    parts: list[ModelPart]
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def triangles(self) -> int:
        return sum(len(p.indices) // 3 for p in self.parts)

    @property
    def extent(self) -> np.ndarray:
        if not self.parts:
            return np.zeros(3)
        pts = np.vstack([p.positions for p in self.parts])
        return np.asarray(pts.max(axis=0) - pts.min(axis=0), dtype=np.float64)


@dataclass
class _Raw:
    vertices: np.ndarray  # float64, in the source's axes and units, node transforms applied
    faces: np.ndarray  # (m, 3) int64
    normals: np.ndarray | None
    colour: tuple[float, float, float, float]


def _one_line(text: object) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= 160 else s[:157] + "..."


def _describe(error: BaseException) -> str:
    detail = _one_line(error)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def _material_colour(material: object, notes: set[str]) -> tuple[float, float, float, float]:
    """The linear RGBA of a trimesh material (PBR or simple), a texture reduced to its mean colour."""
    factor: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    image = None
    if isinstance(material, trimesh.visual.material.PBRMaterial):
        if material.baseColorFactor is not None:
            factor = tuple(float(c) / 255.0 for c in np.asarray(material.baseColorFactor).ravel()[:4])
        image = material.baseColorTexture
    elif isinstance(material, trimesh.visual.material.SimpleMaterial):
        if material.diffuse is not None:
            factor = tuple(float(c) / 255.0 for c in np.asarray(material.diffuse).ravel()[:4])
        image = material.image
    if len(factor) == 3:
        factor = (*factor, 1.0)
    if image is not None:
        try:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
            mean = srgb_to_linear([float(c) for c in pixels.mean(axis=0)])
            factor = (factor[0] * mean[0], factor[1] * mean[1], factor[2] * mean[2], factor[3])
        except Exception:  # an unreadable image: keep the factor
            pass
        notes.add("textures dropped: each material drawn in its base colour times the texture's mean colour")
    return (factor[0], factor[1], factor[2], factor[3])


def _raw_parts(mesh: trimesh.Trimesh, transform: np.ndarray, notes: set[str]) -> list[_Raw]:
    vertices = trimesh.transform_points(np.asarray(mesh.vertices, dtype=np.float64), transform)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    normals = None
    if "vertex_normals" in mesh._cache and len(mesh.vertex_normals) == len(vertices):
        normal_matrix = np.linalg.inv(transform[:3, :3]).T
        normals = np.asarray(mesh.vertex_normals, dtype=np.float64) @ normal_matrix.T
    visual = mesh.visual
    if isinstance(visual, trimesh.visual.TextureVisuals):
        return [_Raw(vertices, faces, normals, _material_colour(visual.material, notes))]
    if isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind in ("face", "vertex"):
        face_rgba = np.asarray(visual.face_colors, dtype=np.uint8)[: len(faces)]
        unique, inverse = np.unique(face_rgba, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)

        def linear(rgba: np.ndarray) -> tuple[float, float, float, float]:
            r, g, b = srgb_to_linear([float(c) for c in rgba[:3]])
            return (r, g, b, float(rgba[3]) / 255.0)

        if len(unique) <= _MAX_COLOUR_PARTS:
            return [_Raw(vertices, faces[inverse == k], normals, linear(unique[k])) for k in range(len(unique))]
        notes.add(f"{len(unique)} vertex/face colours averaged into one")
        return [_Raw(vertices, faces, normals, linear(face_rgba.astype(np.float64).mean(axis=0)))]
    return [_Raw(vertices, faces, normals, _DEFAULT_COLOUR)]


def _compact(raw: _Raw) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Drop the vertices a part does not use."""
    used, faces = np.unique(raw.faces.ravel(), return_inverse=True)
    normals = raw.normals[used] if raw.normals is not None else None
    return raw.vertices[used], normals, faces.reshape(-1, 3)


def _simplify(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    if len(mesh.faces) <= target:
        return np.asarray(mesh.vertices), np.asarray(mesh.faces)
    out = mesh.simplify_quadric_decimation(face_count=max(int(target), 4))
    return np.asarray(out.vertices), np.asarray(out.faces)


def model_from_scene(
    scene: trimesh.Scene | trimesh.Trimesh, source: str, *, up: str = "z", max_triangles: int = MAX_TRIANGLES
) -> Model:
    """Normalise a trimesh scene or mesh (metres, ``up`` = "z" or "y") into a Model.

    Units are not changed here (``read_model`` decides them); raises ValueError when the scene
    holds no triangles.
    """
    return _normalise(scene, source, up=up, max_triangles=max_triangles, scale=1.0, notes=[])


def _normalise(
    scene: trimesh.Scene | trimesh.Trimesh, source: str, *, up: str, max_triangles: int, scale: float, notes: list[str]
) -> Model:
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z', not {up!r}")
    if isinstance(scene, trimesh.Trimesh):
        scene = trimesh.Scene(scene)
    found: set[str] = set()
    raws: list[_Raw] = []
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        mesh = scene.geometry.get(name)
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            continue
        raws.extend(_raw_parts(mesh, np.asarray(transform, dtype=np.float64), found))
    raws = [r for r in raws if len(r.faces)]
    if not raws:
        raise ValueError("holds no triangles")
    matrix = np.eye(4)
    if up == "y":
        matrix = Y_UP_TO_Z_UP.copy()
    matrix[:3, :3] *= scale
    # merge parts of the same colour
    by_colour: dict[tuple[float, ...], list[_Raw]] = {}
    for r in raws:
        by_colour.setdefault(tuple(round(c, 4) for c in r.colour), []).append(r)
    merged: list[tuple[np.ndarray, np.ndarray | None, np.ndarray, tuple[float, float, float, float]]] = []
    for group in by_colour.values():
        verts, norms, faces, offset = [], [], [], 0
        has_normals = all(r.normals is not None for r in group)
        for r in group:
            v, n, f = _compact(r)
            verts.append(trimesh.transform_points(v, matrix))
            if has_normals and n is not None:
                norms.append(n @ matrix[:3, :3].T)
            faces.append(f + offset)
            offset += len(v)
        merged.append((np.vstack(verts), np.vstack(norms) if has_normals else None, np.vstack(faces), group[0].colour))
    total = sum(len(f) for _, _, f, _ in merged)
    if total > max_triangles:
        parts_out: list[tuple[np.ndarray, np.ndarray | None, np.ndarray, tuple[float, float, float, float]]] = []
        budget = max_triangles
        for _attempt in range(4):
            parts_out = []
            for v, _n, f, colour in merged:
                target = max(4, math.floor(len(f) * budget / total))
                sv, sf = _simplify(v, f, target)
                parts_out.append((sv, None, sf, colour))
            if sum(len(f) for _, _, f, _ in parts_out) <= max_triangles:
                break
            budget = int(budget * 0.85)
        after = sum(len(f) for _, _, f, _ in parts_out)
        notes.append(f"simplified from {total:,} to {after:,} triangles (limit {max_triangles:,})")
        merged = parts_out
    parts: list[ModelPart] = []
    computed = False
    for v, n, f, colour in merged:
        if n is None or not np.all(np.isfinite(n)):
            pv, pn, pi = split_normals(v, f)
            computed = True
        else:
            length = np.linalg.norm(n, axis=1)
            pn = (n / np.where(length > 0, length, 1.0)[:, None]).astype(np.float32)
            pv, pi = v.astype(np.float32), f.reshape(-1).astype(np.uint32)
        parts.append(ModelPart(np.asarray(pv, np.float32), np.asarray(pn, np.float32), pi, colour))
    if computed:
        notes.append("normals computed (none in the file, or after simplification)")
    pts = np.vstack([p.positions for p in parts]).astype(np.float64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    origin = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    for p in parts:
        p.positions = (p.positions.astype(np.float64) - origin).astype(np.float32)
    notes.extend(sorted(found))
    return Model(parts=parts, source=source, notes=notes)


def read_model(path: Path, *, max_triangles: int = MAX_TRIANGLES) -> Model:
    """Read and normalise a model file; any failure is an InputError of one line naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise InputError(str(path), f"unknown model format {suffix or '(no suffix)'!r}", hint=_HINT)
    if not path.is_file():
        raise InputError(str(path), "no such model file", hint=_HINT)
    log = logging.getLogger("trimesh")
    level = log.level
    log.setLevel(logging.CRITICAL)  # trimesh logs tracebacks of optional dependencies; our error says it all
    try:
        if suffix in (".glb", ".ply", ".stl"):
            data = path.read_bytes()
            if not data:
                raise ValueError("the file is empty")
            loaded = trimesh.load(io.BytesIO(data), file_type=suffix[1:], force="scene", process=False)
        else:
            loaded = trimesh.load(str(path), force="scene", process=False)
    except InputError:
        raise
    except Exception as e:
        raise InputError(str(path), f"cannot be read as {suffix[1:].upper()} ({_describe(e)})", hint=_HINT) from None
    finally:
        log.setLevel(level)
    if not isinstance(loaded, trimesh.Scene):
        loaded = trimesh.Scene(loaded)
    notes: list[str] = []
    scale = 1.0
    if suffix not in _METRE_SUFFIXES and len(loaded.geometry):
        try:
            bounds = loaded.bounds
        except Exception:
            bounds = None
        if bounds is not None and np.all(np.isfinite(bounds)):
            largest = float(np.max(bounds[1] - bounds[0]))
            if largest > 10_000:
                scale = 0.001
                notes.append(
                    f"units taken as millimetres (largest side {largest:,.0f}, no unit in {suffix[1:].upper()})"
                )
            elif largest > 100:
                scale = 0.01
                notes.append(
                    f"units taken as centimetres (largest side {largest:,.0f}, no unit in {suffix[1:].upper()})"
                )
    up = "y" if suffix in _Y_UP_SUFFIXES else "z"
    try:
        return _normalise(loaded, path.name, up=up, max_triangles=max_triangles, scale=scale, notes=notes)
    except ValueError as e:
        raise InputError(str(path), _one_line(e), hint=_HINT) from None
    except Exception as e:
        raise InputError(str(path), f"cannot be used as a model ({_describe(e)})", hint=_HINT) from None
