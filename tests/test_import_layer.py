"""`cim import layer`: every format, CRS and datum, repairs, and bad input."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import pytest
import shapely

from cim.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.conftest import run_cim

GEOD = pyproj.Geod(ellps="WGS84")
TO_4547 = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)


def metres(lon1, lat1, lon2, lat2) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])


@pytest.fixture(scope="module")
def truth():
    """30 points and 30 squares (40 m) in Futian, in WGS84, with attributes."""
    rng = np.random.default_rng(3)
    lon = rng.uniform(114.00, 114.09, 30)
    lat = rng.uniform(22.51, 22.58, 30)
    x, y = TO_4547.transform(lon, lat)
    squares_4547 = [shapely.box(a - 20, b - 20, a + 20, b + 20) for a, b in zip(x, y)]
    return dict(
        lon=lon,
        lat=lat,
        x=x,
        y=y,
        squares_4547=squares_4547,
        names=[f"站点{i}" for i in range(30)],
        value=np.arange(30) * 1.5,
    )


def _frame(truth, crs: int, geometry) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": truth["names"], "value": truth["value"], "n": np.arange(30)}, geometry=geometry, crs=crs
    )


def _stored_points(conn, name: str) -> np.ndarray:
    rows = conn.execute(f'SELECT n, ST_X(geom), ST_Y(geom) FROM layers."{name}" ORDER BY n').fetchall()
    return np.array(rows, dtype=float)


def _assert_points_at_truth(conn, name, truth, tol_m=0.01):
    got = _stored_points(conn, name)
    assert len(got) == 30
    worst = max(metres(truth["lon"][int(n)], truth["lat"][int(n)], x, y) for n, x, y in got)
    assert worst < tol_m, f"{name}: worst position error {worst:.4f} m"


@pytest.mark.parametrize("fmt", ["shp", "gpkg", "fgb", "geojson"])
def test_points_in_each_format_land_where_they_should(settings, conn, tmp_path, truth, fmt):
    if fmt == "geojson":  # RFC 7946: GeoJSON is lon/lat WGS84
        frame = _frame(truth, 4326, gpd.points_from_xy(truth["lon"], truth["lat"]))
    else:  # projected CGCS2000 Gauss-Krüger, as the bureau's files are
        frame = _frame(truth, 4547, gpd.points_from_xy(truth["x"], truth["y"]))
    path = tmp_path / f"points.{fmt}"
    frame.to_file(path)
    name = f"fmt_{fmt}"
    out = run_cim(
        settings, "import", "layer", str(path), "--name", name, "--no-grid-join", check=True, subprocess_=fmt == "shp"
    )  # once as the console script: its smoke test
    assert "30 Point" in out.stdout
    _assert_points_at_truth(conn, name, truth)
    row = conn.execute(
        "SELECT feature_count, geometry_type, srid, bbox FROM cim.layers WHERE name = %s", (name,)
    ).fetchone()
    assert row[:3] == (30, "Point", 4326)
    assert row[3][0] == pytest.approx(truth["lon"].min(), abs=1e-7)
    assert row[3][3] == pytest.approx(truth["lat"].max(), abs=1e-7)
    # the attributes come through with their types
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'layers' AND table_name = %s",
            (name,),
        ).fetchall()
    )
    assert types["value"] == "double precision" and types["name"] == "text"
    assert conn.execute(f'SELECT name FROM layers."{name}" WHERE n = 7').fetchone()[0] == "站点7"


def test_polygons_keep_their_area_and_have_an_index(settings, conn, tmp_path, truth):
    path = tmp_path / "squares.gpkg"
    _frame(truth, 4547, truth["squares_4547"]).to_file(path)
    run_cim(settings, "import", "layer", str(path), "--name", "squares", "--no-grid-join", check=True)
    areas = [r[0] for r in conn.execute("SELECT ST_Area(ST_Transform(geom, 4547)) FROM layers.squares").fetchall()]
    assert len(areas) == 30 and np.allclose(areas, 1600.0, atol=0.01)
    assert conn.execute("SELECT GeometryType(geom) FROM layers.squares LIMIT 1").fetchone()[0] == "MULTIPOLYGON"
    indexes = [
        r[0]
        for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'layers' AND tablename = 'squares'"
        ).fetchall()
    ]
    assert any("gist (geom)" in d for d in indexes) and any("(fid)" in d for d in indexes)


def test_csv_lonlat_and_csv_wkt_with_src_crs(settings, conn, tmp_path, truth):
    lonlat = tmp_path / "lonlat.csv"
    lines = ["n,name,lon,lat"] + [
        f"{i},{truth['names'][i]},{truth['lon'][i]:.9f},{truth['lat'][i]:.9f}" for i in range(30)
    ]
    lonlat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run_cim(settings, "import", "layer", str(lonlat), "--name", "csv_lonlat", "--no-grid-join", check=True)
    assert "assumed from the lon/lat column names" in out.stdout
    _assert_points_at_truth(conn, "csv_lonlat", truth)

    wkt = tmp_path / "wkt.csv"
    lines = ["n,name,wkt"] + [
        f'{i},{truth["names"][i]},"POINT ({truth["x"][i]:.4f} {truth["y"][i]:.4f})"' for i in range(30)
    ]
    wkt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    no_crs = run_cim(settings, "import", "layer", str(wkt), "--name", "csv_wkt", "--no-grid-join")
    assert no_crs.returncode != 0 and "no coordinate reference system" in no_crs.stderr
    run_cim(
        settings,
        "import",
        "layer",
        str(wkt),
        "--name",
        "csv_wkt",
        "--src-crs",
        "EPSG:4547",
        "--no-grid-join",
        check=True,
    )
    _assert_points_at_truth(conn, "csv_wkt", truth)


@pytest.mark.parametrize("datum, forward", [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_offset_datums_are_converted_to_wgs84(settings, conn, tmp_path, truth, datum, forward):
    olon, olat = forward(truth["lon"], truth["lat"])
    path = tmp_path / f"{datum}.geojson"
    _frame(truth, 4326, gpd.points_from_xy(olon, olat)).to_file(path)
    # as-is the points are hundreds of metres off: the trap
    assert metres(truth["lon"][0], truth["lat"][0], olon[0], olat[0]) > 200
    run_cim(
        settings,
        "import",
        "layer",
        str(path),
        "--name",
        f"datum_{datum}",
        "--datum",
        datum,
        "--no-grid-join",
        check=True,
    )
    _assert_points_at_truth(conn, f"datum_{datum}", truth, tol_m=0.5)
    got = _stored_points(conn, f"datum_{datum}")
    assert max(metres(truth["lon"][int(n)], truth["lat"][int(n)], x, y) for n, x, y in got) < 0.01


def test_invalid_geometries_are_repaired_and_missing_ones_skipped(settings, conn, tmp_path):
    bowtie = shapely.Polygon([(114.0, 22.5), (114.001, 22.501), (114.001, 22.5), (114.0, 22.501), (114.0, 22.5)])
    good = shapely.box(114.01, 22.51, 114.011, 22.511)
    assert not bowtie.is_valid
    frame = gpd.GeoDataFrame({"k": [1, 2, 3]}, geometry=[bowtie, good, None], crs=4326)
    path = tmp_path / "repair.gpkg"
    frame.to_file(path)
    out = run_cim(settings, "import", "layer", str(path), "--name", "repair", "--no-grid-join", check=True)
    assert "1 invalid geometries" in out.stdout and "record 3: no geometry" in out.stdout
    rows = conn.execute("SELECT k, ST_IsValid(geom), ST_Area(geom::geography) FROM layers.repair ORDER BY k").fetchall()
    assert [r[0] for r in rows] == [1, 2] and all(r[1] for r in rows)
    assert rows[0][2] > 1000  # the bow-tie's two triangles survive as area, not as a collapsed line
    row = conn.execute(
        "SELECT repaired_count, skipped_count, feature_count FROM cim.layers WHERE name = 'repair'"
    ).fetchone()
    assert row == (1, 1, 2)


# --- bad input: one line naming the file and problem, non-zero exit, old layer intact ---


def _layer_state(conn, name):
    meta = conn.execute("SELECT version, feature_count, bbox FROM cim.layers WHERE name = %s", (name,)).fetchone()
    rows = conn.execute(
        f"SELECT md5(string_agg(fid::text || ST_AsEWKB(geom)::text, ',' ORDER BY fid)) FROM layers.\"{name}\""
    ).fetchone()[0]
    return meta, rows


@pytest.fixture(scope="module")
def victim(settings, tmp_path_factory, truth):
    """A layer whose previous version every bad import must leave intact."""
    path = tmp_path_factory.mktemp("victim") / "v.gpkg"
    _frame(truth, 4547, gpd.points_from_xy(truth["x"], truth["y"])).to_file(path)
    run_cim(settings, "import", "layer", str(path), "--name", "victim", "--no-grid-join", check=True)
    return "victim"


def _bad_files(tmp_path, truth):
    garbage = tmp_path / "garbage.geojson"
    garbage.write_bytes(b"\x00\x01\x02 this is not json {{{" * 50)
    empty = tmp_path / "empty.gpkg"
    empty.write_bytes(b"")
    no_prj = tmp_path / "noprj.shp"
    frame = _frame(truth, 4547, gpd.points_from_xy(truth["x"], truth["y"]))
    frame.to_file(no_prj)
    no_prj.with_suffix(".prj").unlink()
    no_features = tmp_path / "nofeatures.geojson"
    no_features.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    wrong_crs = tmp_path / "wrongcrs.gpkg"  # projected metres labelled as lon/lat
    frame.set_crs(4326, allow_override=True).to_file(wrong_crs)
    mixed = tmp_path / "mixed.geojson"
    feats = [
        {
            "type": "Feature",
            "properties": {"i": i},
            "geometry": {"type": "Point", "coordinates": [114.0 + i / 1000, 22.5]},
        }
        for i in range(5)
    ]
    feats[3]["geometry"] = {"type": "LineString", "coordinates": [[114.0, 22.5], [114.01, 22.51]]}
    mixed.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    truncated = tmp_path / "truncated.gpkg"
    frame.to_file(truncated)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    return {
        "garbage": (garbage, [], "not a vector file"),
        "empty": (empty, [], "is empty"),
        "no_crs": (no_prj, [], "no coordinate reference system"),
        "no_features": (no_features, [], "has no features"),
        "wrong_crs": (wrong_crs, [], "record 1: coordinates"),
        "mixed": (mixed, [], "record 4: is a LineString in a layer of points"),
        "truncated": (truncated, [], "truncated.gpkg"),
        "bad_src_crs": (no_prj, ["--src-crs", "EPSG:999999"], "not a coordinate reference system"),
        "missing": (tmp_path / "nope.shp", [], "no such file"),
    }


@pytest.mark.parametrize(
    "case", ["garbage", "empty", "no_crs", "no_features", "wrong_crs", "mixed", "truncated", "bad_src_crs", "missing"]
)
def test_bad_input_is_refused_and_the_old_layer_stays(settings, conn, tmp_path, truth, victim, case):
    path, extra, expected = _bad_files(tmp_path, truth)[case]
    before = _layer_state(conn, victim)
    out = run_cim(settings, "import", "layer", str(path), "--name", victim, "--no-grid-join", *extra)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and str(path.name) in lines[0] and expected in lines[0], lines[0]
    assert "Traceback" not in out.stderr + out.stdout
    assert _layer_state(conn, victim) == before


def test_a_good_reimport_bumps_the_version_and_replaces_the_rows(settings, conn, tmp_path, truth, victim):
    before = _layer_state(conn, victim)
    path = tmp_path / "v2.gpkg"
    _frame(truth, 4547, gpd.points_from_xy(truth["x"], truth["y"])).iloc[:10].to_file(path)
    run_cim(settings, "import", "layer", str(path), "--name", victim, "--no-grid-join", check=True)
    meta, _ = _layer_state(conn, victim)
    assert meta[0] == before[0][0] + 1 and meta[1] == 10
    assert conn.execute("SELECT count(*) FROM layers.victim").fetchone()[0] == 10
    # no staging or half-built tables are left behind
    assert (
        conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'cim_staging'").fetchall()
        == []
    )


@pytest.mark.parametrize(
    "bad", ["Robert'); DROP TABLE cim.layers;--", "1abc", "has space", "a__new", "trailing_", "", "x" * 64, "名称"]
)
def test_bad_layer_names_are_refused(bad):
    from cim.errors import InputError
    from layers.schema import validate_layer_name

    with pytest.raises(InputError, match="not a usable layer name"):
        validate_layer_name(bad)


def test_a_bad_layer_name_fails_the_command_before_reading(settings, tmp_path):
    out = run_cim(settings, "import", "layer", str(tmp_path / "absent.gpkg"), "--name", "has space")
    assert out.returncode == 2 and "not a usable layer name" in out.stderr


def test_ewkb_hex_matches_geos():
    from layers.load import ewkb_hex

    geoms = np.array(
        [
            shapely.Point(114.05, 22.54),
            shapely.box(0, 0, 1, 1),
            shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3)]),
            shapely.Polygon(shapely.box(0, 0, 3, 3).exterior, [shapely.box(1, 1, 2, 2).exterior]),
            shapely.MultiLineString([[(0, 0), (1, 1)]]),
            shapely.MultiPoint([(1, 2), (3, 4)]),
        ]
    )
    expected = shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True)
    assert [h.upper() for h in ewkb_hex(geoms)] == list(expected)


def test_dates_and_times_arrive_exactly(settings, conn, tmp_path):
    import pandas as pd

    aware = pd.to_datetime(
        ["2026-03-01T08:15:30.123456+08:00", None, "1999-12-31T23:59:59+00:00"], utc=True, format="ISO8601"
    )
    frame = gpd.GeoDataFrame(
        {
            "at": aware,
            "naive": pd.to_datetime(["2026-03-01 08:15:30.5", "2001-01-01 00:00:00", None], format="ISO8601"),
            "day": pd.to_datetime(["2026-03-01", "2020-02-29", "1970-01-01"]).date,
        },
        geometry=gpd.points_from_xy([114.0, 114.01, 114.02], [22.5, 22.51, 22.52]),
        crs=4326,
    )
    path = tmp_path / "times.gpkg"
    pyogrio.write_dataframe(frame, path, use_arrow=True)  # the Arrow path writes date objects as DATE
    run_cim(settings, "import", "layer", str(path), "--name", "times", "--no-grid-join", check=True)
    rows = conn.execute(
        "SELECT at AT TIME ZONE 'UTC', naive, day, pg_typeof(at)::text, pg_typeof(naive)::text "
        "FROM layers.times ORDER BY fid"
    ).fetchall()
    got = [r[0] for r in rows]
    # GeoPackage keeps milliseconds
    assert got[0].isoformat() == "2026-03-01T00:15:30.123000" and got[1] is None
    assert got[2].isoformat() == "1999-12-31T23:59:59"
    import datetime as dt

    # GeoPackage has no naive datetimes: GDAL reads them back as UTC
    assert rows[0][1] == dt.datetime(2026, 3, 1, 8, 15, 30, 500000, tzinfo=dt.UTC) and rows[2][1] is None
    assert [r[2].isoformat() for r in rows] == ["2026-03-01", "2020-02-29", "1970-01-01"]
    assert rows[0][3] == "timestamp with time zone"
    assert conn.execute("SELECT pg_typeof(day)::text FROM layers.times LIMIT 1").fetchone()[0] == "date"


def test_long_column_names_that_collide_when_cut_get_distinct_names(settings, conn, tmp_path):
    long = "建筑物" * 20  # 180 bytes: PostgreSQL keeps 63
    frame = gpd.GeoDataFrame({long + "甲": [1], long + "乙": [2]}, geometry=[shapely.Point(114.0, 22.5)], crs=4326)
    path = tmp_path / "long.gpkg"
    frame.to_file(path)
    run_cim(settings, "import", "layer", str(path), "--name", "long_names", "--no-grid-join", check=True)
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'layers' AND table_name = 'long_names' ORDER BY ordinal_position"
        )
    ]
    assert len(columns) == 4 and len(set(columns)) == 4  # fid, two attributes, geom


def test_a_file_of_only_unrepairable_geometries_is_refused(settings, tmp_path):
    path = tmp_path / "degenerate.geojson"
    line_polygon = {"type": "Polygon", "coordinates": [[[114.0, 22.5], [114.0, 22.5], [114.0, 22.5], [114.0, 22.5]]]}
    path.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": line_polygon}]}
        )
    )
    out = run_cim(settings, "import", "layer", str(path), "--name", "degenerate", "--no-grid-join")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "degenerate.geojson" in out.stderr


# --- text encodings: GBK from Excel and older Shapefiles ---

GUESSED = "text decoded as GB18030: the file is not UTF-8 and names no encoding; pass --encoding to choose"


def _chinese_names(truth) -> list[str]:
    """Names with a character GBK has and GB2312 lacks (喆), and GBK punctuation."""
    return [f"{n}·喆园{i % 3}号" for i, n in enumerate(truth["names"])]


def _gbk_csv(tmp_path, truth, name="gbk.csv", kind="类型") -> tuple:
    path = tmp_path / name
    names = _chinese_names(truth)
    lines = [f"n,name,{kind},lon,lat"] + [
        f"{i},{names[i]},{'住宅' if i % 2 else '商业'},{truth['lon'][i]:.9f},{truth['lat'][i]:.9f}" for i in range(30)
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))  # as Excel saves "CSV" on Chinese Windows
    return path, names


def _gbk_shapefile(tmp_path, truth, name="gbk.shp", kind="类型") -> tuple:
    path = tmp_path / name
    names = _chinese_names(truth)
    frame = gpd.GeoDataFrame(
        {"name": names, kind: ["住宅" if i % 2 else "商业" for i in range(30)], "n": np.arange(30)},
        geometry=gpd.points_from_xy(truth["x"], truth["y"]),
        crs=4547,
    )
    frame.to_file(path, encoding="gbk")
    path.with_suffix(".cpg").unlink()  # as older software writes them: nothing says GBK
    dbf = path.with_suffix(".dbf").read_bytes()
    assert names[7].encode("gbk") in dbf and kind.encode("gbk") in dbf and names[7].encode("utf-8") not in dbf
    assert dbf[29] == 0  # no language driver id either
    return path, names


def _names(conn, layer: str) -> list[str]:
    return [r[0] for r in conn.execute(f'SELECT name FROM layers."{layer}" ORDER BY fid')]


def test_a_gbk_csv_is_read_as_gb18030_and_says_so(settings, conn, tmp_path, truth):
    path, names = _gbk_csv(tmp_path, truth)
    out = run_cim(settings, "import", "layer", str(path), "--name", "gbk_csv", "--no-grid-join", check=True)
    assert GUESSED in out.stdout
    assert _names(conn, "gbk_csv") == names
    assert conn.execute('SELECT "类型" FROM layers.gbk_csv WHERE n = 1').fetchone()[0] == "住宅"
    _assert_points_at_truth(conn, "gbk_csv", truth)


def test_a_gbk_shapefile_without_cpg_is_read_as_gb18030_and_says_so(settings, conn, tmp_path, truth):
    path, names = _gbk_shapefile(tmp_path, truth)
    out = run_cim(settings, "import", "layer", str(path), "--name", "gbk_shp", "--no-grid-join", check=True)
    assert GUESSED in out.stdout
    assert _names(conn, "gbk_shp") == names
    assert conn.execute('SELECT "类型" FROM layers.gbk_shp WHERE n = 1').fetchone()[0] == "住宅"
    _assert_points_at_truth(conn, "gbk_shp", truth)


@pytest.mark.parametrize("kind", ["csv", "shp"])
def test_encoding_given_is_used(settings, conn, tmp_path, truth, kind):
    path, names = (_gbk_csv if kind == "csv" else _gbk_shapefile)(tmp_path, truth)
    name = f"gbk_given_{kind}"
    out = run_cim(
        settings, "import", "layer", str(path), "--name", name, "--encoding", "gbk", "--no-grid-join", check=True
    )
    assert "text decoded as GBK (--encoding)" in out.stdout and GUESSED not in out.stdout
    assert _names(conn, name) == names


def test_utf8_files_get_no_encoding_note(settings, conn, tmp_path, truth):
    path = tmp_path / "utf8.shp"
    _frame(truth, 4547, gpd.points_from_xy(truth["x"], truth["y"])).to_file(path)
    out = run_cim(settings, "import", "layer", str(path), "--name", "utf8_shp", "--no-grid-join", check=True)
    assert "text decoded" not in out.stdout
    assert _names(conn, "utf8_shp") == truth["names"]


def _encoding_failures(tmp_path, truth) -> dict:
    gbk_csv, _ = _gbk_csv(tmp_path, truth, kind="kind")  # field names in ASCII: the first failure is a record's
    gbk_shp, _ = _gbk_shapefile(tmp_path, truth, kind="kind")
    chinese_header, _ = _gbk_csv(tmp_path, truth, "chinese_header.csv")
    cpg_lies, _ = _gbk_shapefile(tmp_path, truth, "cpg_lies.shp", kind="kind")
    cpg_lies.with_suffix(".cpg").write_text("UTF-8")  # a wrong declaration
    head = b"n,name,lon,lat\n"
    gbk_row = "0,福田站,114.05,22.54\n".encode("gbk")
    # a UTF-8 row GB18030 cannot decode (an odd number of bytes before the comma): no guess decodes the file
    no_guess = tmp_path / "no_guess.csv"
    no_guess.write_bytes(head + gbk_row + "1,华强北,114.06,22.55\n".encode())
    raw = no_guess.read_bytes()
    for codec in ("utf-8", "gb18030"):
        with pytest.raises(UnicodeDecodeError):
            raw.decode(codec)
    # UTF-8 rows GB18030 decodes, into nonsense: the file still mixes encodings
    mojibake = tmp_path / "mojibake.csv"
    mojibake.write_bytes(head + gbk_row + "1,华强北站,114.06,22.55\n2,莲花山顶,114.07,22.56\n".encode())
    with pytest.raises(UnicodeDecodeError):
        mojibake.read_bytes().decode("utf-8")
    assert "华强北站" not in mojibake.read_bytes().decode("gb18030")
    neither = tmp_path / "neither.csv"
    neither.write_bytes(head + gbk_row + b"1,\xff\xfe\x80,114.06,22.55\n")
    return {
        "csv_as_utf8": (gbk_csv, ["--encoding", "utf-8"], "record 1: field 'name' is not UTF-8 text"),
        "shp_as_utf8": (gbk_shp, ["--encoding", "utf-8"], "record 1: field 'name' is not UTF-8 text"),
        "header_as_utf8": (chinese_header, ["--encoding", "utf-8"], "field name '类型' is not UTF-8 text"),
        "cpg_lies": (cpg_lies, [], "record 1: field 'name' is not UTF-8 text"),
        "no_guess": (
            no_guess,
            [],
            "record 2: field 'name' is UTF-8 text, but record 1, field 'name' is not: the file mixes encodings (save",
        ),
        "mojibake": (
            mojibake,
            [],
            "record 2: field 'name' is UTF-8 text, but record 1, field 'name' is not: the file mixes encodings (save",
        ),
        "neither": (neither, [], "record 2: field 'name' is neither UTF-8 nor GB18030 text: bytes ff fe 80"),
        "unknown": (gbk_csv, ["--encoding", "klingon"], "--encoding 'klingon' is not a text encoding"),
    }


@pytest.mark.parametrize(
    "case", ["csv_as_utf8", "shp_as_utf8", "header_as_utf8", "cpg_lies", "no_guess", "mojibake", "neither", "unknown"]
)
def test_text_that_does_not_decode_is_named_in_one_line(settings, conn, tmp_path, truth, victim, case):
    path, extra, expected = _encoding_failures(tmp_path, truth)[case]
    before = _layer_state(conn, victim)
    out = run_cim(settings, "import", "layer", str(path), "--name", victim, "--no-grid-join", *extra)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {path}") and expected in lines[0], lines[0]
    assert "UTF8" not in lines[0] and "Traceback" not in out.stderr + out.stdout  # never the database's error
    assert _layer_state(conn, victim) == before


def test_import_buildings_takes_encoding(settings):
    out = run_cim(settings, "import", "buildings", "--help", check=True)
    assert "--encoding" in out.stdout


def test_detect_encoding():
    from import_scripts.vector import UndecodableText, check_encoding, detect_encoding

    def cells(*values: bytes) -> list[tuple[int, bytes, bytes]]:
        return [(0, b"name", b"name"), *((i + 1, b"name", v) for i, v in enumerate(values))]

    assert detect_encoding(cells(b"plain", b"ascii")) is None
    assert detect_encoding(cells("福田".encode(), "华强北".encode())) is None  # UTF-8: nothing to decode
    gbk = [s.encode("gbk") for s in ("福田", "华强北", "喆园", "莲花山公园·北")]
    assert detect_encoding(cells(*gbk)) == "gb18030"
    assert detect_encoding(cells(*(s.encode("gb2312") for s in ("福田", "华强北")))) == "gb18030"
    # a GBK field name
    assert detect_encoding([(0, "名称".encode("gbk"), "名称".encode("gbk"))]) == "gb18030"

    with pytest.raises(UndecodableText) as neither:
        detect_encoding(cells(gbk[0], b"\xff\xfe"))
    assert (neither.value.record, neither.value.field) == (2, b"name") and "neither" in neither.value.problem
    with pytest.raises(UndecodableText, match="record 1, field 'name' is not: the file mixes"):
        detect_encoding(cells(gbk[0], "华强北站".encode()))  # UTF-8 that GB18030 decodes, into nonsense

    # a DBF writer may cut a character at the field's width
    cut = "福田".encode("gbk")[:-1]
    with pytest.raises(UndecodableText):
        detect_encoding(cells(gbk[0], cut))
    assert detect_encoding(cells(gbk[0], cut), cut_ok=True) == "gb18030"

    check_encoding(cells(*gbk), "gbk")
    with pytest.raises(UndecodableText, match="is not UTF-8 text: bytes b8 a3"):
        check_encoding(cells(b"ok", gbk[0]), "utf-8")
