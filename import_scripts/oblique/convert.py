"""One source tile file -> its GLBs and a small JSON record beside them.

This is the unit of work a worker process does, and the unit of resuming:
the record (``<file>.json``) is written last, by rename, so a record that
exists with the source's size and time stamp means the file is converted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from import_scripts.oblique.osgb import OsgbFile, OsgbReader, Texture
from import_scripts.oblique.production import Georef, Placement
from tiles.geodesy import EnuFrame
from tiles.glb import Image
from tiles.oblique import TexturedMesh, lod_geometric_error, png_bytes, write_mesh_tile

_CHANNELS = {6407: 3, 6408: 4, 6409: 1, 6410: 2, 32992: 3, 32993: 4}  # RGB RGBA L LA BGR BGRA
_BGR = (32992, 32993)


@dataclass(frozen=True)
class Job:
    source: str  # the tile file
    record: str  # where its JSON record goes; GLBs go beside it
    georef: Georef
    frame: EnuFrame  # the tileset's ENU frame
    root: bool = False  # a folder's root tile: its footprint is the folder's


def stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def finished(job: Job) -> dict | None:
    """The record of an earlier run, if it converted this same file."""
    try:
        record = json.loads(Path(job.record).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("stamp") == stamp(Path(job.source)) else None


_reader: OsgbReader | None = None


def _image(texture: Texture) -> Image | None:
    if texture.data is None:
        return None
    if texture.mime:
        return Image(texture.data, texture.mime)
    channels = _CHANNELS.get(texture.pixel_format)
    if channels is None:
        return None
    raw = texture.data
    if texture.pixel_format in _BGR:
        px = np.frombuffer(raw, np.uint8).reshape(-1, channels).copy()
        px[:, [0, 2]] = px[:, [2, 0]]
        raw = px.tobytes()
    return Image(png_bytes(raw, texture.width, texture.height, channels), "image/png")


def _footprint(file: OsgbFile, placement: Placement) -> list[list[float]] | None:
    """The convex hull of the file's vertices in lon/lat (a sample of them: the hull of a surface
    model's top level is its coverage)."""
    points = [g.positions[:: max(1, len(g.positions) // 2000)] for g in file.geometries]
    if not points:
        return None
    llh = placement.to_lonlath(np.concatenate(points))
    hull = shapely.convex_hull(shapely.multipoints(llh[:, :2]))
    if not isinstance(hull, shapely.Polygon):
        return None
    return [list(c) for c in hull.exterior.coords]


def convert(job: Job) -> dict:
    """Read the file, write a GLB per PagedLOD node, write the record; returns the record."""
    global _reader
    if _reader is None:
        _reader = OsgbReader()
    source = Path(job.source)
    record: dict = {
        "source": source.name,
        "stamp": stamp(source),
        "nodes": [],
        "loose": None,
        "error": None,
        "triangles": 0,
        "vertices": 0,
        "textures": 0,
        "unsupported_textures": [],
        "footprint": None,
        "z": None,
    }
    file = _reader.read(source)
    if file.error:
        record["error"] = file.error
    else:
        placement = Placement.of(job.georef)
        images = [_image(t) for t in file.textures]
        record["unsupported_textures"] = [t.name for t, i in zip(file.textures, images) if i is None]
        record["textures"] = sum(i is not None for i in images)
        by_node: dict[int, list[TexturedMesh]] = {}
        z = []
        for g in file.geometries:
            enu = job.frame.to_enu(placement.to_ecef(g.positions))
            z.append((float(g.positions[:, 2].min()), float(g.positions[:, 2].max())))
            uv = None
            if g.uv is not None and g.texture >= 0 and images[g.texture] is not None:
                uv = np.column_stack([g.uv[:, 0], 1.0 - g.uv[:, 1]])  # OpenGL t -> glTF v
            by_node.setdefault(g.node, []).append(TexturedMesh(enu, g.indices, uv, g.texture if uv is not None else -1))
            record["triangles"] += len(g.indices) // 3
            record["vertices"] += len(g.positions)
        if z:
            record["z"] = [job.georef.origin[2] + min(a for a, _ in z), job.georef.origin[2] + max(b for _, b in z)]
        out = Path(job.record)
        stem = out.name[: -len(".json")]

        def write(key: str, meshes: list[TexturedMesh]) -> dict | None:
            content = write_mesh_tile(meshes, images, out.with_name(f"{stem}_{key}.glb"), f"{stem}_{key}.glb")
            return None if content is None else content.to_record()

        for k, node in enumerate(file.nodes):
            record["nodes"].append(
                {
                    "content": write(str(k), by_node.get(k, [])),
                    "children": node.child_files,
                    "geometric_error": lod_geometric_error(node.radius, node.switch_range(), node.pixel_mode),
                }
            )
        if -1 in by_node:  # geometry outside any PagedLOD (an OBJ tile, a plain OSGB)
            record["loose"] = write("all", by_node[-1])
        if job.root:
            record["footprint"] = _footprint(file, placement)
    tmp = Path(job.record + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(job.record)
    return record
