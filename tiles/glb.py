"""Binary glTF 2.0 (GLB) for one tile: a mesh, its feature ids, its metadata.

Written by hand with numpy rather than through pygltflib (which py3dtiles
wraps): a tile is one mesh with four accessors plus the metadata buffers, and
building the JSON directly avoids a per-object dataclass layer and a second
copy of every buffer, which matters at thousands of tiles per import.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tiles.metadata import PropertyTable

ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT = 5126
UNSIGNED_SHORT = 5123
UNSIGNED_INT = 5125
_ALIGN = 8  # EXT_structural_metadata wants 8-byte aligned buffer views; it suits everything else too


@dataclass(frozen=True)
class Material:
    name: str = "white model"
    base_color: tuple[float, float, float, float] = (0.92, 0.93, 0.95, 1.0)
    metallic: float = 0.0
    roughness: float = 0.85
    blend: bool = False  # alphaMode BLEND (glass) instead of OPAQUE
    double_sided: bool = False  # for geometry whose winding cannot be trusted (BIM)
    texture: int | None = None  # index of the Image drawn with TEXCOORD_0 (base colour)
    unlit: bool = False  # KHR_materials_unlit: photographs carry their own light (oblique photography)

    def to_json(self) -> dict:
        pbr: dict[str, object] = {
            "baseColorFactor": list(self.base_color),
            "metallicFactor": self.metallic,
            "roughnessFactor": self.roughness,
        }
        if self.texture is not None:
            pbr["baseColorTexture"] = {"index": self.texture}
        out: dict[str, object] = {"name": self.name, "pbrMetallicRoughness": pbr}
        if self.unlit:
            out["extensions"] = {"KHR_materials_unlit": {}}
        if self.blend:
            out["alphaMode"] = "BLEND"
        if self.double_sided:
            out["doubleSided"] = True
        return out


@dataclass
class Primitive:
    """Triangles of one material. Positions are glTF coordinates (y up),
    float32-exact already (small offsets from the tile's origin)."""

    positions: np.ndarray  # (n, 3)
    normals: np.ndarray | None  # (n, 3); None for unlit surfaces
    feature_ids: np.ndarray | None  # (n,); None in an instanced mesh (its instances carry the ids)
    indices: np.ndarray  # (m,)
    material: Material = Material()
    texcoords: np.ndarray | None = None  # (n, 2) glTF convention: (0, 0) is the image's top-left corner


@dataclass(frozen=True)
class Image:
    """An encoded image stored in the GLB as it is (a JPEG is never re-encoded)."""

    data: bytes
    mime: str  # image/jpeg or image/png


@dataclass
class InstancedMesh:
    """One mesh drawn many times (EXT_mesh_gpu_instancing); each instance is
    a feature of its own (EXT_instance_features)."""

    primitives: list[Primitive]  # in the mesh's own frame, feature_ids None
    translations: np.ndarray  # (k, 3) glTF coordinates
    rotations: np.ndarray  # (k, 4) unit quaternions, x y z w
    feature_ids: np.ndarray  # (k,)
    scales: np.ndarray | None = None  # (k, 3); None: every instance at its mesh's size


class _Builder:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.length = 0
        self.buffer_views: list[dict] = []
        self.accessors: list[dict] = []

    def buffer_view(self, data: bytes, target: int | None = None) -> int:
        pad = (-self.length) % _ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
            self.length += pad
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.chunks.append(data)
        self.length += len(data)
        self.buffer_views.append(view)
        return len(self.buffer_views) - 1

    def accessor(
        self, array: np.ndarray, component: int, kind: str, target: int | None, *, bounds: bool = False
    ) -> int:
        view = self.buffer_view(np.ascontiguousarray(array).tobytes(), target)
        acc = {"bufferView": view, "componentType": component, "count": int(array.shape[0]), "type": kind}
        if bounds:
            acc["min"] = array.min(axis=0).astype(float).tolist()
            acc["max"] = array.max(axis=0).astype(float).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def binary(self) -> bytes:
        data = b"".join(self.chunks)
        return data + b"\0" * ((-len(data)) % 4)


def write_glb(
    primitives: list[Primitive],
    table: PropertyTable | None = None,
    instanced: Sequence[InstancedMesh] = (),
    images: Sequence[Image] = (),
) -> bytes:
    """GLB bytes: a mesh made of ``primitives`` and a node per instanced mesh;
    feature ids (of vertices or of instances) index ``table``; materials'
    ``texture`` index ``images``."""
    b = _Builder()
    materials: list[dict] = []

    def feature_ext(ids: np.ndarray) -> dict:
        # featureCount: the distinct features this attribute holds (a subset of the table in a colour's primitive)
        ext: dict = {"featureCount": len(np.unique(ids)), "attribute": 0}
        if table is not None:
            ext["propertyTable"] = 0
        return {"featureIds": [ext]}

    def mesh_primitives(prims: list[Primitive]) -> list[dict]:
        out = []
        for p in prims:
            out.append(_primitive(b, p, materials))
            if p.feature_ids is not None:
                out[-1]["extensions"] = {"EXT_mesh_features": feature_ext(p.feature_ids)}
        return out

    meshes: list[dict] = []
    nodes: list[dict] = []
    if primitives:
        meshes.append({"primitives": mesh_primitives(primitives)})
        nodes.append({"mesh": 0})
    for mesh in instanced:
        meshes.append({"primitives": mesh_primitives(mesh.primitives)})
        attributes = {
            "TRANSLATION": b.accessor(mesh.translations.astype(np.float32), FLOAT, "VEC3", None),
            "ROTATION": b.accessor(mesh.rotations.astype(np.float32), FLOAT, "VEC4", None),
            "_FEATURE_ID_0": b.accessor(mesh.feature_ids.astype(np.float32), FLOAT, "SCALAR", None),
        }
        if mesh.scales is not None:
            attributes["SCALE"] = b.accessor(mesh.scales.astype(np.float32), FLOAT, "VEC3", None)
        nodes.append(
            {
                "mesh": len(meshes) - 1,
                "extensions": {
                    "EXT_mesh_gpu_instancing": {"attributes": attributes},
                    "EXT_instance_features": feature_ext(mesh.feature_ids),
                },
            }
        )
    used = ["EXT_mesh_features"] if any(p.feature_ids is not None for p in primitives) else []
    if instanced:
        used += ["EXT_mesh_gpu_instancing", "EXT_instance_features"]
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "cim-twin tiles"},
        "extensionsUsed": used,
        "scene": 0,
        "scenes": [{"nodes": list(range(len(nodes)))}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
    }
    if instanced:
        gltf["extensionsRequired"] = ["EXT_mesh_gpu_instancing"]
    if any("KHR_materials_unlit" in m.get("extensions", {}) for m in materials):
        gltf["extensionsUsed"].append("KHR_materials_unlit")
    if images:
        gltf["images"] = [{"bufferView": b.buffer_view(image.data), "mimeType": image.mime} for image in images]
        gltf["samplers"] = [
            {"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}
        ]  # linear, mipmaps, clamp
        gltf["textures"] = [{"sampler": 0, "source": i} for i in range(len(images))]
    if table is not None:
        gltf["extensionsUsed"].append("EXT_structural_metadata")
        gltf["extensions"] = {
            "EXT_structural_metadata": {"schema": table.schema(), "propertyTables": [table.table(b.buffer_view)]}
        }
    binary = b.binary()
    gltf["accessors"] = b.accessors
    gltf["bufferViews"] = b.buffer_views
    gltf["buffers"] = [{"byteLength": len(binary)}]
    text = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((-len(text)) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<III", 0x46546C67, 2, total),
            struct.pack("<II", len(text), 0x4E4F534A),
            text,
            struct.pack("<II", len(binary), 0x004E4942),
            binary,
        ]
    )


def _primitive(b: _Builder, p: Primitive, materials: list[dict]) -> dict:
    attributes = {"POSITION": b.accessor(p.positions.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER, bounds=True)}
    if p.normals is not None:
        attributes["NORMAL"] = b.accessor(p.normals.astype(np.float32), FLOAT, "VEC3", ARRAY_BUFFER)
    if p.texcoords is not None:
        attributes["TEXCOORD_0"] = b.accessor(p.texcoords.astype(np.float32), FLOAT, "VEC2", ARRAY_BUFFER)
    if p.feature_ids is not None:
        # FLOAT, not UNSIGNED_SHORT: vertex attributes must be 4-byte aligned per
        # element, and floats hold every id exactly up to 2**24
        attributes["_FEATURE_ID_0"] = b.accessor(p.feature_ids.astype(np.float32), FLOAT, "SCALAR", ARRAY_BUFFER)
    small = len(p.positions) <= 65535
    index_acc = b.accessor(
        p.indices.astype(np.uint16 if small else np.uint32),
        UNSIGNED_SHORT if small else UNSIGNED_INT,
        "SCALAR",
        ELEMENT_ARRAY_BUFFER,
    )
    material = p.material.to_json()
    if material not in materials:
        materials.append(material)
    return {"attributes": attributes, "indices": index_acc, "mode": 4, "material": materials.index(material)}
