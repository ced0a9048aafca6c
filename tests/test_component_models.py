"""City components: the class catalogue, the built-in shapes and the model reader (tiles.models)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import trimesh

from cim.components.catalogue import (
    CLASSES,
    CODE_PATTERN,
    MAJORS,
    UNCLASSIFIED,
    builtin_class,
    major_of,
    user_class,
)
from cim.components.shapes import SHAPES, build, to_glb
from cim.errors import InputError
from tiles.models import MAX_TRIANGLES, MODEL_SUFFIXES, Model, model_from_scene, read_model


def _bounds(model: Model) -> tuple[np.ndarray, np.ndarray]:
    pts = np.vstack([p.positions for p in model.parts]).astype(np.float64)
    return pts.min(axis=0), pts.max(axis=0)


def _assert_base_centred(model: Model) -> None:
    lo, hi = _bounds(model)
    assert abs(lo[2]) < 1e-6, f"base at z={lo[2]}"
    assert abs(lo[0] + hi[0]) < 1e-6 and abs(lo[1] + hi[1]) < 1e-6, f"not centred: {lo} {hi}"


# --- catalogue -------------------------------------------------------------------------------------


def test_catalogue_has_103_classes_in_6_majors_with_unique_codes() -> None:
    assert len(CLASSES) == 103
    assert [m.code for m in MAJORS] == ["01", "02", "03", "04", "05", "06"]
    assert [m.name_zh for m in MAJORS] == ["公用设施", "道路交通", "市容环境", "园林绿化", "房屋土地", "其他设施"]
    codes = [c.code for c in CLASSES]
    assert len(set(codes)) == 103
    assert codes == sorted(codes)
    assert all(re.match(CODE_PATTERN, c) for c in codes)
    assert {c.major for c in CLASSES} == {m.code for m in MAJORS}
    assert builtin_class("0101") is not None and builtin_class("0101").name_zh == "上水井盖"  # type: ignore[union-attr]
    assert builtin_class("0104").name_zh == "雨水箅子"  # type: ignore[union-attr]
    for c in CLASSES:
        assert c.builtin and c.name_zh and c.name_en and c.department, c
        assert c.shape in SHAPES, c
        assert all(0.01 <= v <= 60 for v in c.size), c
        assert all(0 <= v <= 255 for v in c.colour), c


def test_colours_distinct_within_each_major() -> None:
    for m in MAJORS:
        colours = [c.colour for c in CLASSES if c.major == m.code]
        assert len(set(colours)) == len(colours), m.code


def test_unclassified_user_classes_and_majors() -> None:
    assert builtin_class("0000") is UNCLASSIFIED and UNCLASSIFIED.name_en == "Unclassified"
    assert builtin_class("9999") is None
    u = user_class("0701")
    assert (u.builtin, u.name_zh, u.name_en, u.size, u.shape) == (
        False,
        "自定义部件 0701",
        "User class 0701",
        (1, 1, 1),
        "box",
    )
    assert u.colour == user_class("0701").colour and u.colour != user_class("0702").colour
    v = user_class("0702", name_zh="井盖", size=(0.5, 0.5, 0.1), colour=(1, 2, 3), department="区水务局")
    assert (v.name_zh, v.size, v.colour, v.department) == ("井盖", (0.5, 0.5, 0.1), (1, 2, 3), "区水务局")
    for bad in ("701", "07a1", "07011", ""):
        with pytest.raises(ValueError):
            user_class(bad)
    assert major_of("0305") == MAJORS[2]
    g = major_of("0701")
    assert (g.code, g.name_zh, g.name_en) == ("07", "自定义大类 07", "User group 07")


# --- shapes ----------------------------------------------------------------------------------------


def test_every_shape_builds_small_and_fills_its_size() -> None:
    for name, fn in SHAPES.items():
        scene = fn((1.0, 2.0, 3.0), (200, 100, 50))
        ext = scene.bounds[1] - scene.bounds[0]
        assert np.allclose(ext, (1.0, 2.0, 3.0), atol=1e-6), name
    for c in CLASSES:
        scene = build(c)
        tris = sum(len(g.faces) for g in scene.geometry.values())
        assert 0 < tris <= 300, (c.code, tris)
        lo, hi = scene.bounds
        assert np.allclose(hi - lo, c.size, atol=1e-6), c.code
        assert abs(lo[2]) < 1e-9 and np.allclose(lo[:2], -hi[:2], atol=1e-9), c.code


def test_lamp_is_a_grey_pole_with_a_warm_light_reaching_forward(tmp_path: Path) -> None:
    lamp = builtin_class("0125")
    assert lamp is not None and lamp.shape == "lamp"
    path = tmp_path / "0125.glb"
    path.write_bytes(to_glb(build(lamp)))
    model = read_model(path)
    assert len(model.parts) >= 3
    light = max(model.parts, key=lambda p: p.colour[0] + p.colour[1] - p.colour[2])  # the yellowest part
    assert light.colour[0] > 0.9 and light.colour[2] < 0.4
    centre = light.positions.mean(axis=0)
    assert centre[1] > 0.5 and centre[2] > 9.0  # at the front (+y), at the top


def test_built_shapes_round_trip_through_glb(tmp_path: Path) -> None:
    for c in CLASSES:
        scene = build(c)
        path = tmp_path / f"{c.code}.glb"
        path.write_bytes(to_glb(scene))
        model = read_model(path)
        assert model.source == f"{c.code}.glb"
        assert np.allclose(model.extent, c.size, atol=1e-3), (c.code, model.extent, c.size)
        _assert_base_centred(model)
        assert model.triangles == sum(len(g.faces) for g in scene.geometry.values())
        assert model.notes == [], (c.code, model.notes)  # metres, normals in the file, small
        for p in model.parts:
            assert p.positions.dtype == np.float32 and p.indices.dtype == np.uint32
            assert np.allclose(np.linalg.norm(p.normals, axis=1), 1.0, atol=1e-4)
        # the same model straight from the scene
        direct = model_from_scene(scene, f"built-in {c.shape}")
        assert np.allclose(direct.extent, model.extent, atol=1e-3)


# --- reading files ---------------------------------------------------------------------------------


def test_obj_in_centimetres_y_up_is_read_as_metres_z_up(tmp_path: Path) -> None:
    # a post 50 cm wide (x), 300 cm tall (y, OBJ's up), 40 cm deep (z, OBJ's front-back), off the origin
    post = trimesh.creation.box(extents=(50, 300, 40))
    post.apply_translation((1000, 150, -7))
    path = tmp_path / "0224.obj"
    path.write_text(trimesh.exchange.obj.export_obj(post, include_normals=False))
    model = read_model(path)
    assert np.allclose(model.extent, (0.5, 0.4, 3.0), atol=1e-6)
    _assert_base_centred(model)
    assert any("centimetres" in n for n in model.notes)
    assert any("normals computed" in n for n in model.notes)


def test_obj_in_millimetres_and_obj_mtl_colours(tmp_path: Path) -> None:
    big = trimesh.creation.box(extents=(800, 12_000, 300))  # 12 m tall in millimetres
    (tmp_path / "big.obj").write_text(trimesh.exchange.obj.export_obj(big, include_normals=False))
    model = read_model(tmp_path / "big.obj")
    assert np.allclose(model.extent, (0.8, 0.3, 12.0), atol=1e-6)
    assert any("millimetres" in n for n in model.notes)
    (tmp_path / "m.mtl").write_text("newmtl red\nKd 1.0 0.0 0.0\nnewmtl blue\nKd 0.0 0.0 1.0\n")
    (tmp_path / "m.obj").write_text(
        "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\n"
        "usemtl red\nf 1 2 3\nf 1 3 4\nusemtl blue\nf 1 2 5\n"
    )
    model = read_model(tmp_path / "m.obj")
    colours = sorted((p.colour, len(p.indices) // 3) for p in model.parts)
    assert colours == [((0.0, 0.0, 1.0, 1.0), 1), ((1.0, 0.0, 0.0, 1.0), 2)]
    assert np.allclose(model.extent, (1.0, 1.0, 1.0))


def test_ply_and_stl_are_read_z_up(tmp_path: Path) -> None:
    cyl = trimesh.creation.cylinder(radius=0.2, height=1.0, sections=16)
    cyl.apply_translation((5.0, -3.0, 2.0))
    (tmp_path / "a.stl").write_bytes(trimesh.exchange.stl.export_stl(cyl))
    red = cyl.copy()
    red.visual.face_colors = [255, 0, 0, 255]
    (tmp_path / "a.ply").write_bytes(trimesh.exchange.ply.export_ply(red))
    for name in ("a.stl", "a.ply"):
        model = read_model(tmp_path / name)
        assert np.allclose(model.extent, (0.4, 0.4, 1.0), atol=1e-6), name
        assert model.triangles == 64
        _assert_base_centred(model)
    ply = read_model(tmp_path / "a.ply")
    assert len(ply.parts) == 1 and ply.parts[0].colour == (1.0, 0.0, 0.0, 1.0)


def test_heavy_model_is_simplified(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=1.0)
    assert len(sphere.faces) == 81_920
    (tmp_path / "heavy.stl").write_bytes(trimesh.exchange.stl.export_stl(sphere))
    model = read_model(tmp_path / "heavy.stl")
    assert MAX_TRIANGLES // 2 < model.triangles <= MAX_TRIANGLES
    assert any("simplified from 81,920 to" in n for n in model.notes)
    assert np.allclose(model.extent, (2.0, 2.0, 2.0), rtol=0.02)
    _assert_base_centred(model)
    light = read_model(tmp_path / "heavy.stl", max_triangles=500)
    assert light.triangles <= 500


def test_unreadable_models_fail_in_one_line_naming_the_file(tmp_path: Path) -> None:
    glb = to_glb(build(CLASSES[0]))
    (tmp_path / "0101.glb").write_bytes(glb[: len(glb) // 2])
    (tmp_path / "0102.obj").write_text("this is not a model\njust some text\n")
    (tmp_path / "0103.stl").write_bytes(b"")
    (tmp_path / "0104.fbx").write_bytes(b"\x00" * 10)
    (tmp_path / "0105.gltf").write_text("{not json")
    for name in ("0101.glb", "0102.obj", "0103.stl", "0104.fbx", "0105.gltf", "0106.ply"):
        with pytest.raises(InputError) as info:
            read_model(tmp_path / name)
        message = str(info.value)
        assert name in message and "\n" not in message, message
    assert ".fbx" not in MODEL_SUFFIXES and set(MODEL_SUFFIXES) == {".glb", ".gltf", ".obj", ".ply", ".stl"}
