"""Reading back what the tiler wrote, independently of tiles/: GLB chunks,
accessors, the EXT_structural_metadata property table, tileset transforms."""

from __future__ import annotations

import json
import posixpath
import struct
from pathlib import Path

import numpy as np

_COMPONENTS = {5120: "i1", 5121: "u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_SCALARS = {
    "INT16": "<i2",
    "UINT16": "<u2",
    "INT32": "<i4",
    "UINT32": "<u4",
    "INT64": "<i8",
    "FLOAT32": "<f4",
    "FLOAT64": "<f8",
}


class Glb:
    def __init__(self, data: bytes) -> None:
        magic, version, length = struct.unpack_from("<III", data, 0)
        assert magic == 0x46546C67 and version == 2 and length == len(data)
        json_len, json_type = struct.unpack_from("<II", data, 12)
        assert json_type == 0x4E4F534A
        self.json = json.loads(data[20 : 20 + json_len])
        bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
        assert bin_type == 0x004E4942
        self.bin = data[28 + json_len : 28 + json_len + bin_len]

    @classmethod
    def read(cls, path: Path) -> Glb:
        return cls(path.read_bytes())

    def view(self, index: int) -> bytes:
        v = self.json["bufferViews"][index]
        return self.bin[v.get("byteOffset", 0) : v.get("byteOffset", 0) + v["byteLength"]]

    def accessor(self, index: int) -> np.ndarray:
        a = self.json["accessors"][index]
        raw = self.view(a["bufferView"])
        arr = np.frombuffer(
            raw,
            dtype=_COMPONENTS[a["componentType"]],
            count=a["count"] * _WIDTH[a["type"]],
            offset=a.get("byteOffset", 0),
        )
        return arr.reshape(a["count"], _WIDTH[a["type"]]) if _WIDTH[a["type"]] > 1 else arr

    @property
    def primitive(self) -> dict:
        return self.json["meshes"][0]["primitives"][0]

    def attribute(self, name: str) -> np.ndarray:
        return self.accessor(self.primitive["attributes"][name])

    def indices(self) -> np.ndarray:
        return self.accessor(self.primitive["indices"])

    def metadata_class(self) -> dict[str, dict]:
        """The definitions of the property table's class: every property, those
        a tile leaves out of its table (no value there) included."""
        ext = self.json["extensions"]["EXT_structural_metadata"]
        return ext["schema"]["classes"][ext["propertyTables"][0]["class"]]["properties"]

    def property_table(self) -> dict[str, list]:
        """The columns present in the property table (raw values: ``noData`` as written)."""
        ext = self.json["extensions"]["EXT_structural_metadata"]
        table = ext["propertyTables"][0]
        cls = ext["schema"]["classes"][table["class"]]["properties"]
        out: dict[str, list] = {}
        for name, prop in table.get("properties", {}).items():
            kind = cls[name]
            if kind["type"] == "STRING":
                values = self.view(prop["values"])
                offsets = np.frombuffer(self.view(prop["stringOffsets"]), dtype="<u4")
                out[name] = [values[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(table["count"])]
            else:
                out[name] = np.frombuffer(
                    self.view(prop["values"]), dtype=_SCALARS[kind["componentType"]], count=table["count"]
                ).tolist()
        return out

    def property_table_problems(self) -> list[str]:
        """What is malformed in the property tables' buffers, as the 3D Tiles
        metadata specification has them: 8-byte aligned buffer views, numbers
        filling their view, UINT32 string offsets (count + 1 of them, rising from
        0) whose last one is the byte length of the strings' view."""
        ext = self.json["extensions"]["EXT_structural_metadata"]
        problems = []
        for t, table in enumerate(ext["propertyTables"]):
            cls = ext["schema"]["classes"][table["class"]]["properties"]
            count = table["count"]
            if count < 1:
                problems.append(f"table {t}: count {count}")
            for name, prop in table.get("properties", {}).items():
                kind = cls[name]
                views = [prop["values"]] + ([prop["stringOffsets"]] if "stringOffsets" in prop else [])
                for v in views:
                    if self.json["bufferViews"][v].get("byteOffset", 0) % 8:
                        problems.append(f"{name}: buffer view {v} is not 8-byte aligned")
                    if self.json["bufferViews"][v]["byteLength"] < 1:
                        problems.append(f"{name}: buffer view {v} is empty")
                values = self.view(prop["values"])
                if kind["type"] == "STRING":
                    if prop.get("stringOffsetType", "UINT32") != "UINT32" or "stringOffsets" not in prop:
                        problems.append(f"{name}: string offsets are not UINT32")
                        continue
                    offsets = np.frombuffer(self.view(prop["stringOffsets"]), dtype="<u4")
                    if len(offsets) != count + 1:
                        problems.append(f"{name}: {len(offsets)} string offsets for {count} strings")
                    elif offsets[0] != 0 or np.any(np.diff(offsets.astype(np.int64)) < 0):
                        problems.append(f"{name}: string offsets do not rise from 0")
                    elif offsets[-1] != len(values):
                        problems.append(f"{name}: strings end at byte {offsets[-1]}, their view has {len(values)}")
                elif len(values) != count * np.dtype(_SCALARS[kind["componentType"]]).itemsize:
                    problems.append(f"{name}: {len(values)} bytes for {count} {kind['componentType']} values")
        return problems


def tile_transforms(tileset: dict, folder: Path | None = None) -> dict[str, np.ndarray]:
    """content uri (relative to the tileset's folder) -> the 4x4 matrix from
    that tile's frame to ECEF, all transforms composed; external tilesets
    (content ending in .json, read from ``folder``) are followed."""
    out: dict[str, np.ndarray] = {}

    def walk(tile: dict, parent: np.ndarray, base: str) -> None:
        m = parent @ (np.array(tile["transform"]).reshape(4, 4).T if "transform" in tile else np.eye(4))
        if "content" in tile:
            uri = posixpath.normpath(posixpath.join(base, tile["content"]["uri"]))
            if uri.endswith(".json"):
                assert folder is not None, "an external tileset needs the folder to read it from"
                walk(json.loads((folder / uri).read_text())["root"], m, posixpath.dirname(uri))
            else:
                out[uri] = m
        for child in tile.get("children", []):
            walk(child, m, base)

    walk(tileset["root"], np.eye(4), "")
    return out


Y_UP_TO_Z_UP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)


def to_ecef(positions: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """glTF positions (y up) through the 3D Tiles y-up -> z-up rotation and the tile transform."""
    homogeneous = np.column_stack([positions.astype(np.float64), np.ones(len(positions))])
    return (homogeneous @ (transform @ Y_UP_TO_Z_UP).T)[:, :3]
