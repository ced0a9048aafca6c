"""The shared pieces every importer and route stands on, tested as functions:
the tileset-version lifecycle, the report builder, the bbox parser, the
error-to-status map."""

from __future__ import annotations

import json

import psycopg
import pytest

from cim.bbox import parse_bbox
from cim.errors import CimError, ConfigError, CrsError, DatabaseError, InputError, NotFoundError
from cim.live.records import RecordError
from cim.server.errors import status_of
from import_scripts.report import NAMED, ReportBuilder, named
from tiles.output import TilesetVersion


def _write(version: TilesetVersion, text: str) -> None:
    (version.folder / "tileset.json").write_text(json.dumps({"asset": {"version": "1.1"}, "text": text}))


def _current(root, name) -> str:
    return json.loads((root / name / "tileset.json").read_text())["text"]


def test_a_version_is_committed_when_the_block_ends(tmp_path):
    with TilesetVersion.writing(tmp_path, "city") as version:
        _write(version, "first")
        assert not (tmp_path / "city").exists()  # nothing is served before the commit
    assert version.tileset == tmp_path / "city" / "tileset.json" and _current(tmp_path, "city") == "first"
    with TilesetVersion.writing(tmp_path, "city") as second:
        _write(second, "second")
    assert _current(tmp_path, "city") == "second"
    assert (tmp_path / "city").resolve() == second.folder.resolve()


def test_a_failed_block_discards_its_version_and_keeps_the_previous(tmp_path):
    with TilesetVersion.writing(tmp_path, "city") as first:
        _write(first, "first")
    with pytest.raises(RuntimeError, match="broken"), TilesetVersion.writing(tmp_path, "city") as failed:
        _write(failed, "half")
        raise RuntimeError("broken")
    assert _current(tmp_path, "city") == "first" and failed.tileset is None and not failed.folder.exists()
    assert sorted(p.name for p in (tmp_path / ".versions").iterdir()) == [first.folder.name]


def test_a_resumable_version_is_kept_and_resumed_under_the_same_key(tmp_path):
    with pytest.raises(KeyboardInterrupt), TilesetVersion.writing(tmp_path, "oblique", resume_key="k1") as v:
        (v.folder / "done.json").write_text("1")
        raise KeyboardInterrupt
    assert v.folder.name == "oblique-partial" and (v.folder / "done.json").is_file()
    with TilesetVersion.writing(tmp_path, "oblique", resume_key="k1") as again:
        assert (again.folder / "done.json").is_file()  # the finished work is there to skip
        _write(again, "resumed")
    assert _current(tmp_path, "oblique") == "resumed" and "partial" not in again.folder.name
    with pytest.raises(KeyboardInterrupt), TilesetVersion.writing(tmp_path, "oblique", resume_key="k1") as v:
        (v.folder / "done.json").write_text("1")
        raise KeyboardInterrupt
    with TilesetVersion.writing(tmp_path, "oblique", resume_key="k2") as other:  # other source: start afresh
        assert not (other.folder / "done.json").exists()
        _write(other, "fresh")


def test_named_lists_the_first_few():
    items = [f"record {i}" for i in range(1, 26)]
    assert named(items[:3]) == "record 1, record 2, record 3"
    assert named(items).endswith(f"record {NAMED} ...") and named(items).count(",") == NAMED - 1


def test_the_report_builder_counts_and_names_what_it_skips():
    report = ReportBuilder("layer", "roads", "roads.shp")
    report.skip([f"record {i}: no geometry" for i in range(1, 6)], count=40)
    report.skip([f"record {i}: invalid" for i in range(100, 130)])
    report.note_named("3 buildings got the default", ["record 1", "record 2", "record 3"])
    report.note_named("0 textures drawn grey", [])
    assert report.skipped_count == 70 and len(report.skipped) == NAMED and report.skipped[5] == "record 100: invalid"
    assert report.notes == ["3 buildings got the default: record 1, record 2, record 3"]


@pytest.mark.parametrize(
    "text, box",
    [
        (None, None),
        ("", None),
        ("113.9,22.4,114.2,22.7", (113.9, 22.4, 114.2, 22.7)),
        (" -180, -90, 180, 90 ", (-180.0, -90.0, 180.0, 90.0)),
        ("1,1,1,1", (1.0, 1.0, 1.0, 1.0)),
    ],
)
def test_a_bbox_is_four_numbers_in_order(text, box):
    assert parse_bbox(text) == box


@pytest.mark.parametrize(
    "text",
    [
        "1,2,3",
        "1,2,3,4,5",
        "a,b,c,d",
        "114.2,22.4,113.9,22.7",
        "1,3,2,2",
        "-181,0,0,1",
        "0,0,1,91",
        "nan,0,1,1",
        "0,0,inf,1",
    ],
)
def test_a_bad_bbox_is_an_input_error_naming_the_parameter(text):
    with pytest.raises(InputError) as info:
        parse_bbox(text, "bbox")
    assert str(info.value).startswith(f"bbox: {text!r} is not west,south,east,north")


@pytest.mark.parametrize(
    "error, status",
    [
        (NotFoundError("no layer named 'x'"), 404),
        (InputError("bbox", "bad"), 400),
        (CrsError("f.shp", "no CRS"), 400),
        (RecordError("no time zone"), 400),
        (psycopg.errors.InvalidTextRepresentation("invalid input syntax for type integer"), 400),
        (DatabaseError("cannot connect"), 503),
        (psycopg.OperationalError("server closed the connection"), 503),
        (ConfigError("CIM_PORT"), 500),
        (CimError("give --height-field or --floors-field, not both"), 400),
        (KeyError("surprise"), 500),
    ],
)
def test_one_map_gives_every_error_its_status(error, status):
    assert status_of(error) == status
