"""Smoke tests of the console script: each command once as a real process
(`cim import ...` and `cim serve` have theirs beside the tests of what they
do: test_import_layer, test_buildings_tiles, test_bim, test_oblique,
test_live; `cim db ...` in test_cluster)."""

from __future__ import annotations

import json
import re

import psycopg
from psycopg import sql

from cim.config import Settings
from tests.conftest import run_cim
from tests.validator import assert_valid_3dtiles


def test_help_lists_every_command(settings):
    out = run_cim(settings, "--help", subprocess_=True)
    assert out.returncode == 0
    for command in ("db", "import", "layers", "samples", "serve", "demo"):
        assert re.search(rf"^\W*{command}\b", out.stdout, re.M), command
    out = run_cim(settings, "import", "--help", subprocess_=True)
    for kind in ("layer", "buildings", "bim", "oblique"):
        assert re.search(rf"^\W*{kind}\b", out.stdout, re.M), kind


def test_layers_lists_the_catalogue(settings, sample):
    out = run_cim(settings, "layers", subprocess_=True)
    assert out.returncode == 0
    rows = {line.split()[1]: line for line in out.stdout.splitlines() if line.startswith("│")}
    assert "1,646" in rows["grids"] and "MultiPolygon" in rows["grids"]
    assert "futian_boundary" in rows


def test_samples_writes_one_geopackage_per_layer(settings, tmp_path):
    from cim.samples.futian import LAYERS

    out = run_cim(settings, "samples", "futian", "--out", str(tmp_path), "--seed", "7", subprocess_=True)
    assert out.returncode == 0, out.stderr
    assert sorted(p.stem for p in tmp_path.glob("*.gpkg")) == sorted(LAYERS)
    assert re.search(r"grids\s+│\s+1,646", out.stdout)


def test_an_unknown_kind_and_a_missing_file_fail_in_one_line(settings, tmp_path):
    out = run_cim(settings, "import", "shapes", "x.shp", "--name", "x", subprocess_=True)
    assert out.returncode == 2 and "No such command" in out.stderr
    out = run_cim(settings, "import", "layer", str(tmp_path / "absent.gpkg"), "--name", "absent", subprocess_=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "absent.gpkg: no such file or folder" in out.stderr


def test_demo_imports_the_whole_sample(settings, db_url, tmp_path):
    """`cim demo --no-serve` into a database of its own (the suite's layers stay as they are):
    the Futian layers, the white model, and the demo's BIM model (on a parcel in Futian) and
    oblique production (its spawned workers started from the console script)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS cim_demo_smoke")
        conn.execute("CREATE DATABASE cim_demo_smoke")
    url = psycopg.conninfo.make_conninfo(db_url, dbname="cim_demo_smoke")
    demo = Settings(data_dir=tmp_path / "demo", database_url=url)
    try:
        out = run_cim(demo, "demo", "--no-serve", subprocess_=True)
        assert out.returncode == 0, out.stderr
        assert "Futian sample imported" in out.stdout
        assert "demo_bim" in out.stdout and "demo_oblique" in out.stdout
        with psycopg.connect(url) as conn:
            counts = dict(conn.execute("SELECT name, feature_count FROM cim.layers").fetchall())
            assert counts["grids"] == 1646 and counts["futian_boundary"] == 1 and len(counts) == 18
            assert counts["components"] == 10_000
            assert (
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("layers", "buildings"))
                ).fetchone()[0]
                == counts["buildings"]
                > 1000
            )
            # BIM: FZK-Haus's 90 elements, the house whole on its residential parcel, placed in that parcel's grid
            assert counts["demo_bim"] == 90 and counts["demo_bim_outline"] == 1
            placed = conn.execute(
                "SELECT p.parcel_id, (SELECT count(*) FROM layers.demo_bim WHERE grid IS NOT NULL) "
                "FROM layers.parcels p, layers.demo_bim_outline o WHERE ST_Contains(p.geom, o.geom)"
            ).fetchall()
            assert placed == [("B103-0029", 90)]
            # oblique: the production's extent and its two folders, where its metadata.xml puts them
            assert counts["demo_oblique"] == 3
            west, east = conn.execute(
                "SELECT ST_XMin(geom), ST_XMax(geom) FROM layers.demo_oblique WHERE kind = 'production'"
            ).fetchone()
            assert 113.375 < west < east < 113.385
        assert (demo.tilesets_dir / "buildings" / "tileset.json").is_file()
        bim = json.loads((demo.tilesets_dir / "demo_bim" / "tileset.json").read_text())
        storeys = [t["extras"]["storey"] for t in bim["root"]["children"]]  # one external tileset per storey
        assert {"Erdgeschoss", "Dachgeschoss"} <= set(storeys)  # FZK-Haus's two, and its terrain without one
        assert storeys == [s["name"] for s in bim["asset"]["extras"]["storeys"]]
        oblique = json.loads((demo.tilesets_dir / "demo_oblique" / "tileset.json").read_text())
        assert oblique["asset"]["extras"]["kind"] == "oblique" and oblique["asset"]["extras"]["levels"] == 6
        assert demo.viewer_config_file.is_file()
        for name in ("buildings", "demo_bim", "demo_oblique"):  # the three kinds of model `cim demo` shows
            assert_valid_3dtiles(demo.tilesets_dir / name / "tileset.json")
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS cim_demo_smoke WITH (FORCE)")
