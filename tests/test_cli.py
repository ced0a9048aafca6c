"""Smoke tests of the console script: each command once as a real process
(`cim import ...` and `cim serve` have theirs beside the tests of what they
do: test_import_layer, test_buildings_tiles, test_bim, test_oblique,
test_live; `cim db ...` in test_cluster)."""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from cim.config import Settings
from tests.conftest import run_cim


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
    """`cim demo --no-serve` into a database of its own (the suite's layers stay as they are)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS cim_demo_smoke")
        conn.execute("CREATE DATABASE cim_demo_smoke")
    url = psycopg.conninfo.make_conninfo(db_url, dbname="cim_demo_smoke")
    demo = Settings(data_dir=tmp_path / "demo", database_url=url)
    try:
        out = run_cim(demo, "demo", "--no-serve", subprocess_=True)
        assert out.returncode == 0, out.stderr
        assert "Futian sample imported" in out.stdout
        with psycopg.connect(url) as conn:
            counts = dict(conn.execute("SELECT name, feature_count FROM cim.layers").fetchall())
            assert counts["grids"] == 1646 and counts["futian_boundary"] == 1 and len(counts) == 12
            assert (
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("layers", "buildings"))
                ).fetchone()[0]
                == counts["buildings"]
                > 1000
            )
        assert (demo.tilesets_dir / "buildings" / "tileset.json").is_file()
        assert demo.viewer_config_file.is_file()
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS cim_demo_smoke WITH (FORCE)")
