"""Textured meshes of a level-of-detail pyramid (oblique photography) -> 3D Tiles 1.1.

Knows nothing of OSGB: an importer hands it, per tile, textured triangles in
the tileset's east-north-up frame (double precision), and the tree of tiles
with their geometric errors. Each tile's GLB holds its vertices as float32
offsets from the tile's own centre (the tile's ``transform`` is that
centre), so precision is kept to the last local offset. Photographs carry
their light: materials are unlit (KHR_materials_unlit) and the JPEGs are
stored as they came.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from py3dtiles.tileset import BoundingVolumeBox, Tile

from tiles.geodesy import EnuFrame
from tiles.glb import Image, Material, Primitive, write_glb
from tiles.tileset import ecef_box, gltf_axes, translation, write_tileset_json

#: Cesium's default maximumScreenSpaceError: a tile's geometric error is
#: chosen so that a client refines it where the source's viewer would have
_SSE_PIXELS = 16.0
#: metres-to-pixels of a typical screen (1080 rows, 60° field of view), for ranges given as distances
_PIXELS_PER_RADIAN = 1080 / (2 * np.tan(np.radians(30)))
_GREY = (0.75, 0.75, 0.75, 1.0)


@dataclass
class TexturedMesh:
    positions: np.ndarray  # (n, 3) float64, the tileset's ENU frame
    indices: np.ndarray  # (m,) triangles
    uv: np.ndarray | None  # (n, 2) glTF convention ((0, 0) = the image's top-left)
    texture: int  # index into the tile's images, -1 for none


@dataclass
class TileContent:
    """What a written tile holds: its centre and box (ENU), counts, size."""

    uri: str
    centre: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    triangles: int
    bytes: int

    def to_record(self) -> dict:
        """As JSON (a converted file's record keeps its tiles' contents)."""
        return {
            "uri": self.uri,
            "centre": self.centre.tolist(),
            "lo": self.lo.tolist(),
            "hi": self.hi.tolist(),
            "triangles": self.triangles,
            "bytes": self.bytes,
        }

    @classmethod
    def from_record(cls, record: dict) -> TileContent:
        return cls(
            record["uri"],
            np.array(record["centre"]),
            np.array(record["lo"]),
            np.array(record["hi"]),
            record["triangles"],
            record["bytes"],
        )


def lod_geometric_error(radius: float, switch: float | None, pixel_mode: bool) -> float:
    """The geometric error of a node whose own geometry gives way to its
    children at ``switch``: in pixels of the node's bounding sphere on screen
    (OpenSceneGraph's PIXEL_SIZE_ON_SCREEN, what ContextCapture writes), or in
    metres from the eye. The error is the one that makes a client at its
    default screen-space error (16 px) refine at the same point. A node
    without children is a leaf: 0."""
    if switch is None or not np.isfinite(switch) or switch <= 0:
        return 0.0
    if pixel_mode:
        return float(_SSE_PIXELS * 2.0 * radius / switch)  # the sphere's diameter shown on `switch` pixels
    return float(_SSE_PIXELS * switch / _PIXELS_PER_RADIAN)


def png_bytes(raw: bytes, width: int, height: int, channels: int) -> bytes:
    """Raw pixels (rows bottom to top, as OpenGL keeps them) as a PNG, for files that hold pixels, not JPEGs."""
    from PIL import Image as PilImage

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    pixels = np.frombuffer(raw, np.uint8)[: width * height * channels].reshape(height, width, channels)
    out = io.BytesIO()
    PilImage.fromarray(pixels[::-1].squeeze() if channels == 1 else pixels[::-1], mode).save(out, "PNG")
    return out.getvalue()


def write_mesh_tile(
    meshes: list[TexturedMesh], images: Sequence[Image | None], path: Path, uri: str
) -> TileContent | None:
    """One GLB: a primitive per mesh, unlit, textured where it has a texture.
    None when there is nothing to draw. ``images`` holds None for a texture
    that could not be decoded: no mesh refers to it."""
    meshes = [m for m in meshes if len(m.indices) and len(m.positions)]
    if not meshes:
        return None
    lo = np.min([m.positions.min(axis=0) for m in meshes], axis=0)
    hi = np.max([m.positions.max(axis=0) for m in meshes], axis=0)
    centre = (lo + hi) / 2
    used = sorted({m.texture for m in meshes if m.texture >= 0 and m.uv is not None})
    image_index = {old: new for new, old in enumerate(used)}
    primitives = []
    for m in meshes:
        textured = m.texture in image_index
        material = Material(
            name="photo" if textured else "untextured",
            base_color=(1.0, 1.0, 1.0, 1.0) if textured else _GREY,
            roughness=1.0,
            double_sided=True,
            unlit=True,
            texture=image_index[m.texture] if textured else None,
        )
        primitives.append(
            Primitive(
                positions=gltf_axes(m.positions - centre),
                normals=None,  # cast by write_glb
                feature_ids=None,
                indices=m.indices,
                material=material,
                texcoords=m.uv if textured else None,
            )
        )
    textures: list[Image] = []
    for i in used:
        image = images[i]
        assert image is not None  # a mesh whose texture could not be decoded has texture -1
        textures.append(image)
    glb = write_glb(primitives, images=textures)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(glb)
    tmp.replace(path)
    return TileContent(
        uri=uri, centre=centre, lo=lo, hi=hi, triangles=sum(len(m.indices) // 3 for m in meshes), bytes=len(glb)
    )


@dataclass
class TreeTile:
    """A tile of the pyramid: its content (or none) and its children."""

    content: TileContent | None
    geometric_error: float
    children: list[TreeTile] = field(default_factory=list)
    lo: np.ndarray | None = None  # the box of this tile and everything under it (filled by `bounds`)
    hi: np.ndarray | None = None

    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        boxes = [(self.content.lo, self.content.hi)] if self.content else []
        boxes += [b for b in (c.bounds() for c in self.children) if b is not None]
        if not boxes:
            return None
        self.lo = np.min([b[0] for b in boxes], axis=0)
        self.hi = np.max([b[1] for b in boxes], axis=0)
        return self.lo, self.hi

    def monotonic(self) -> float:
        """Make every error at least its children's (the spec's rule); returns this tile's."""
        self.geometric_error = max([self.geometric_error, *(c.monotonic() for c in self.children)])
        return self.geometric_error


def _py3dtiles_tile(node: TreeTile, parent_centre: np.ndarray | None, frame: EnuFrame) -> Tile:
    lo, hi = node.lo, node.hi
    assert lo is not None and hi is not None  # set by bounds(); a tile without is skipped by its parent
    centre = node.content.centre if node.content else (lo + hi) / 2
    transform = frame.matrix() @ translation(centre) if parent_centre is None else translation(centre - parent_centre)
    tile = Tile(
        geometric_error=node.geometric_error,
        transform=transform,
        refine_mode="REPLACE",
        bounding_volume=BoundingVolumeBox.from_mins_maxs(np.concatenate([lo - centre, hi - centre])),
        content_uri=node.content.uri if node.content else None,
    )
    tile.children.extend(_py3dtiles_tile(c, centre, frame) for c in node.children if c.lo is not None)
    return tile


def write_tree_tileset(
    folder: Path, filename: str, root: TreeTile, frame: EnuFrame, extras: dict, ref_uri: str
) -> Tile | None:
    """``folder/filename``: the pyramid under ``root`` (REPLACE refinement,
    the root's transform is ``frame``'s, each tile translated to its centre).
    Returns the tile that refers to it (as ``ref_uri``) from a parent
    tileset (an oriented box in ECEF), or None when the pyramid holds nothing."""
    box = root.bounds()
    if box is None:
        return None
    lo, hi = box
    root.monotonic()
    error = max(float(np.linalg.norm(hi - lo)), root.geometric_error)  # at least the box's diagonal
    write_tileset_json(folder, _py3dtiles_tile(root, None, frame), error, extras, filename=filename)
    return Tile(
        geometric_error=error, bounding_volume=ecef_box(frame, lo, hi), refine_mode="REPLACE", content_uri=ref_uri
    )


def write_root_tileset(
    folder: Path, refs: list[tuple[Tile, np.ndarray, np.ndarray]], frame: EnuFrame, extras: dict
) -> tuple[np.ndarray, np.ndarray]:
    """``folder/tileset.json`` over the folders' tilesets (``refs``: tile, ENU box)."""
    lo = np.min([r[1] for r in refs], axis=0)
    hi = np.max([r[2] for r in refs], axis=0)
    diagonal = max([float(np.linalg.norm(hi - lo)), *(r[0].geometric_error for r in refs)])
    root = Tile(geometric_error=diagonal, bounding_volume=ecef_box(frame, lo, hi), refine_mode="REPLACE")
    root.children.extend(r[0] for r in refs)  # not add_child: see tiles/buildings.py
    write_tileset_json(folder, root, diagonal, extras)
    return lo, hi
