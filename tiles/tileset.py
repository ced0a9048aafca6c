"""What every tiler shares: glTF's axes, tile transforms, tileset.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from py3dtiles.constants import SpecVersion
from py3dtiles.tileset import BoundingVolumeBox, Tile, TileSet

from tiles.geodesy import EnuFrame


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
