"""The EXT_structural_metadata encoder (tiles/metadata.py), without a database:
column buffers, properties without a value in a tile, UTF-8 byte lengths,
noData; a GLB with such a table read back and checked by the CesiumGS validator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.gltf_read import Glb
from tests.validator import assert_valid_3dtiles
from tiles.glb import Primitive, write_glb
from tiles.metadata import Column, PropertyTable


def strings(*values: str | None) -> np.ndarray:
    return np.array(values, dtype=object)


def offsets(buffer: bytes) -> list[int]:
    return np.frombuffer(buffer, dtype="<u4").tolist()


def encoded_table(table: PropertyTable) -> tuple[dict, list[bytes]]:
    views: list[bytes] = []

    def add(data: bytes) -> int:
        views.append(data)
        return len(views) - 1

    return table.table(add), views


def test_all_empty_strings_have_no_value_and_are_left_out_of_the_table():
    for values in (strings("", "", ""), strings(None, None, None), strings(None, "", None)):
        column = Column("street", values)
        assert column.is_empty()
        with pytest.raises(ValueError, match="no value"):  # never a 1-byte filler that offsets say is 0 bytes
            column.encode()
    table = PropertyTable(
        "building", 3, [Column("fid", np.array([1, 2, 3]), "UINT32"), Column("street", strings("", None, ""))]
    )
    out, views = encoded_table(table)
    assert set(out["properties"]) == {"fid"} and out["count"] == 3
    assert len(views) == 1 and views[0] == np.array([1, 2, 3], dtype="<u4").tobytes()
    assert "street" in table.schema()["classes"]["building"]["properties"]  # the class still defines it
    assert "required" not in table.schema()["classes"]["building"]["properties"]["street"]


def test_mixed_empty_and_non_empty_strings():
    values, offs = Column("name", strings("a", None, "", "bc", None)).encode()
    assert values == b"abc"
    assert offsets(offs) == [0, 1, 1, 1, 3, 3]  # UINT32, count + 1, the last is the values' byte length
    values, offs = Column("name", strings(None, "x"), no_data="-").encode()  # a missing string is the noData value
    assert values == b"-x" and offsets(offs) == [0, 1, 2]
    assert Column("name", strings(None, "-"), no_data="-").is_empty()
    assert Column("name", strings(None, "x"), no_data="-").definition() == {"type": "STRING", "noData": "-"}


def test_chinese_strings_are_counted_in_utf8_bytes():
    text = ["福田街道", "", "莲花北社区 A-3", "网格"]
    values, offs = Column("street", strings(*text)).encode()
    assert values == "".join(text).encode("utf-8")
    lengths = [len(t.encode("utf-8")) for t in text]
    assert lengths == [12, 0, 19, 6]  # three bytes a Chinese character, one an ASCII one
    assert offsets(offs) == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    decoded = [values[a:b].decode("utf-8") for a, b in zip(offsets(offs), offsets(offs)[1:])]
    assert decoded == text


def test_numbers_with_no_data():
    floors = Column("floors", np.array([3.0, np.nan, 12.0]), "INT16", no_data=-1)
    assert np.frombuffer(floors.encode()[0], dtype="<i2").tolist() == [3, -1, 12]
    assert floors.definition() == {"type": "SCALAR", "componentType": "INT16", "noData": -1}
    assert not floors.is_empty()
    assert np.frombuffer(Column("floors", strings(None, 7), "INT16", no_data=-1).encode()[0], "<i2").tolist() == [-1, 7]
    height = Column("height", np.array([np.nan, 4.5]), "FLOAT32", no_data=-9999.0)
    assert np.frombuffer(height.encode()[0], dtype="<f4").tolist() == [-9999.0, 4.5]
    # all missing: still written, as noData (a number never needs an empty buffer)
    assert not Column("floors", np.array([-1, -1]), "INT16", no_data=-1).is_empty()
    all_missing = Column("floors", np.array([np.nan, np.nan]), "INT16", no_data=-1)
    assert not all_missing.is_empty() and np.frombuffer(all_missing.encode()[0], "<i2").tolist() == [-1, -1]
    assert np.isnan(np.frombuffer(Column("h", np.array([np.nan]), "FLOAT32").encode()[0], "<f4")).all()
    with pytest.raises(ValueError, match="noData"):
        Column("floors", strings(None, 7), "INT16").encode()
    with pytest.raises(ValueError, match="does not fit"):
        Column("floors", np.array([70_000]), "INT16").encode()


def test_a_table_checks_its_counts():
    with pytest.raises(ValueError, match="2 values for 3 features"):
        encoded_table(PropertyTable("c", 3, [Column("a", strings("x", "y"))]))
    with pytest.raises(ValueError, match="at least one feature"):
        encoded_table(PropertyTable("c", 0, []))
    out, _ = encoded_table(PropertyTable("c", 1, [Column("a", strings(None))]))
    assert "properties" not in out  # at least one when it is there


def _glb(table: PropertyTable) -> bytes:
    n = table.count
    # one triangle per feature, side by side
    positions = np.array([[i * 2.0 + dx, 0.0, dz] for i in range(n) for dx, dz in ((0, 0), (1, 0), (0, -1))])
    normals = np.tile([0.0, 1.0, 0.0], (3 * n, 1))
    ids = np.repeat(np.arange(n), 3)
    return write_glb([Primitive(positions, normals, ids, np.arange(3 * n))], table)


def _table() -> PropertyTable:
    return PropertyTable(
        "building",
        3,
        [
            Column("fid", np.array([7, 8, 9]), "UINT32", title="要素号"),
            Column("name", strings("市民中心", None, "平安金融中心"), title="名称"),
            Column("street", strings(None, "", None), title="街道"),
            Column("use", strings("a", "bc", "d")),  # 4 bytes: the next view starts misaligned without padding
            Column("floors", np.array([np.nan, np.nan, np.nan]), "INT16", no_data=-1, title="层数"),
            Column("height", np.array([30.5, 12.0, 599.1]), "FLOAT64", title="高度"),
        ],
        class_title="建筑",
    )


def test_the_glb_table_reads_back_with_aligned_views():
    glb = Glb(_glb(_table()))
    assert glb.property_table_problems() == []
    for view in glb.json["bufferViews"]:
        assert view["byteOffset"] % 8 == 0 and view["byteLength"] > 0
    table = glb.property_table()
    assert set(table) == {"fid", "name", "use", "floors", "height"}  # street has no value here
    assert table["floors"] == [-1, -1, -1] and glb.metadata_class()["floors"]["noData"] == -1
    assert set(glb.metadata_class()) == {"fid", "name", "street", "use", "floors", "height"}
    assert table["name"] == ["市民中心", "", "平安金融中心"]
    assert table["fid"] == [7, 8, 9] and table["use"] == ["a", "bc", "d"] and table["height"] == [30.5, 12.0, 599.1]


def test_the_glb_passes_the_cesium_3d_tiles_validator(tmp_path: Path):
    (tmp_path / "t.glb").write_bytes(_glb(_table()))
    tileset = {
        "asset": {"version": "1.1"},
        "geometricError": 10.0,
        "root": {
            "boundingVolume": {"box": [3, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1]},
            "geometricError": 0.0,
            "refine": "ADD",
            "content": {"uri": "t.glb"},
        },
    }
    (tmp_path / "tileset.json").write_text(json.dumps(tileset))
    assert_valid_3dtiles(tmp_path / "tileset.json")
