"""Land supervision (土地批后监管), on constructed cases: every finding kind
triggered and not triggered, figures against shapely in a local metric CRS,
two epochs, follow-up states that survive a re-check, one parcel re-checked,
bad parcels, and the HTTP interface with its roles."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import box

from tests.conftest import client_of, run_cim

AS_OF = "2026-06-30"
SRID = 4547  # CGCS2000 / 3-degree Gauss-Kruger CM 114E: the checks' local projection here
X0, Y0 = 500_000.0 - 3_000, 2_494_000.0  # metres in EPSG:4547, near 114.02 E, 22.54 N (Futian)
LAYER = "land_parcels"


def _at(col: int, row: int = 0) -> tuple[float, float]:
    """The south-west corner of parcel slot (col, row): 100 m squares 300 m apart."""
    return X0 + col * 300.0, Y0 + row * 300.0


def _square(col: int, row: int = 0, size: float = 100.0):
    x, y = _at(col, row)
    return box(x, y, x + size, y + size)


def _b(col: int, dx: float, dy: float, w: float, h: float, row: int = 0):
    x, y = _at(col, row)
    return box(x + dx, y + dy, x + dx + w, y + dy + h)


PARCEL = {
    "use": "居住用地",
    "approved_far": 3.0,
    "coverage": 0.5,
    "height_limit": 100.0,
    "approval_date": "2020-01-01",
    "start_deadline": "2021-01-01",
    "completion_deadline": "2024-01-01",
    "status": "已竣工",
}

#: parcel id -> (slot, attributes that differ from PARCEL)
PARCELS = {
    "P-OK": (0, {}),
    "P-FAR": (1, {"approved_far": 1.0}),
    "P-COV": (2, {"coverage": 0.2, "approved_far": 5.0}),
    "P-HGT": (3, {"height_limit": 24.0}),
    "P-OUT": (4, {}),
    "P-FARM": (5, {}),
    "P-FOREST": (6, {}),
    "P-ECO": (7, {}),
    "P-IDLE": (8, {"start_deadline": "2025-01-01", "completion_deadline": "2028-01-01", "status": "未开工"}),
    "P-IDLE-NOT-YET": (9, {"start_deadline": "2025-12-01", "completion_deadline": "2028-01-01", "status": "未开工"}),
    "P-LATE": (10, {"completion_deadline": "2026-01-01", "status": "在建"}),
}

#: (id, slot, dx, dy, width, depth, height, floors); floors 0: from the height
BUILDINGS = [
    ("B-OK", 0, 30, 30, 40, 40, 30.0, 10),
    ("B-OK-EDGE", 0, 98.01, 10, 2, 20, 9.0, 3),  # crosses the line by 0.01 m x 20 m = 0.2 m2: not a finding
    ("B-FAR", 1, 30, 30, 40, 40, 30.0, 10),
    ("B-COV", 2, 20, 20, 60, 60, 6.0, 2),
    ("B-HGT", 3, 40, 40, 20, 20, 30.0, 0),  # floors from the height: round(30 / 3) = 10
    ("B-OUT", 4, 82, 40, 20, 20, 9.0, 3),  # 2 m x 20 m = 40 m2 outside
    ("B-FARM", 5, 40, 40, 20, 20, 9.0, 3),
    ("B-FOREST", 6, 40, 40, 20, 20, 9.0, 3),
    ("B-ECO", 7, 40, 40, 20, 20, 9.0, 3),
    ("B-LATE", 10, 30, 30, 20, 20, 9.0, 3),
    ("B-UNAPPROVED", 11, 30, 30, 20, 20, 6.0, 2),  # on no parcel
    ("B-ROAD", 12, 30, 30, 20, 20, 6.0, 2),  # on no parcel but on the exempt roads layer
]

EXPECTED = {
    "P-OK": set(),
    "P-FAR": {"far_exceeded"},
    "P-COV": {"coverage_exceeded"},
    "P-HGT": {"height_exceeded"},
    "P-OUT": {"outside_parcel"},
    "P-FARM": {"on_farmland"},
    "P-FOREST": {"on_forest"},
    "P-ECO": {"on_eco_redline"},
    "P-IDLE": {"idle"},
    "P-IDLE-NOT-YET": set(),
    "P-LATE": {"overdue_completion"},
}


def _frame(rows: list[dict], geoms: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=SRID).to_crs(4326)


def _write(path, frame: gpd.GeoDataFrame) -> str:
    frame.to_file(path, driver="GeoJSON")
    return str(path)


def _buildings(rows=BUILDINGS) -> gpd.GeoDataFrame:
    return _frame(
        [{"id": i, "name": f"楼 {i}", "height": h, "floors": f} for i, *_, h, f in rows],
        [_b(slot, dx, dy, w, d) for _, slot, dx, dy, w, d, _, _ in rows],
    )


def _parcels() -> gpd.GeoDataFrame:
    return _frame(
        [{"parcel_id": pid, **PARCEL, **extra} for pid, (_, extra) in PARCELS.items()],
        [_square(slot) for slot, _ in PARCELS.values()],
    )


def _zone(slot: int, code: str) -> gpd.GeoDataFrame:
    """A protected polygon over the east half of a slot's building (and a stray one touching P-OK's west side)."""
    x, y = _at(slot)
    stray_x, stray_y = _at(0)
    return _frame(
        [{"code": code, "name": f"{code} 01"}, {"code": code + "-2", "name": f"{code} 02"}],
        [box(x + 50, y + 30, x + 90, y + 70), box(stray_x - 50, stray_y, stray_x + 5, stray_y + 100)],
    )


@pytest.fixture(scope="module")
def checked(settings, tmp_path_factory, sample):
    folder = tmp_path_factory.mktemp("land")
    sources = {
        LAYER: _write(folder / "parcels.geojson", _parcels()),
        "land_b1": _write(folder / "b1.geojson", _buildings()),
        "land_farm": _write(folder / "farm.geojson", _zone(5, "GD")),
        "land_forest": _write(folder / "forest.geojson", _zone(6, "LD")),
        "land_eco": _write(folder / "eco.geojson", _zone(7, "STHX")),
        "land_roads": _write(folder / "roads.geojson", _frame([{"name": "路"}], [_square(12)])),
    }
    for name, path in sources.items():
        run_cim(settings, "import", "layer", path, "--name", name, "--no-grid-join", check=True)
    out = run_cim(settings, "land", "check", *_options("land_b1", "2024"), check=True).stdout
    return {"folder": folder, "out": out}


def _options(buildings: str, epoch: str | None = None) -> list[str]:
    return [
        "--parcels", LAYER, "--buildings", buildings, "--as-of", AS_OF,
        "--farmland", "land_farm", "--forest", "land_forest", "--eco-redline", "land_eco", "--exempt", "land_roads",
        *(["--epoch", epoch] if epoch else []),
    ]  # fmt: skip


def _open_findings(conn, parcel_id: str) -> dict[str, dict]:
    rows = conn.execute(
        "SELECT kind, id, state, evidence FROM land.findings WHERE parcels_layer = %s AND parcel_id = %s "
        "AND closed_at IS NULL",
        (LAYER, parcel_id),
    ).fetchall()
    return {kind: {"id": fid, "state": state, "evidence": ev} for kind, fid, state, ev in rows}


def test_every_finding_kind_is_triggered_by_its_case_and_by_no_other(checked, conn):
    for parcel_id, kinds in EXPECTED.items():
        assert set(_open_findings(conn, parcel_id)) == kinds, parcel_id
    unapproved = conn.execute(
        "SELECT key FROM land.findings WHERE parcels_layer = %s AND kind = 'unapproved_building' AND closed_at IS NULL",
        (LAYER,),
    ).fetchall()
    assert [k for (k,) in unapproved] == ["unapproved|land_b1:B-UNAPPROVED"]  # B-ROAD is on the exempt layer
    verdicts = dict(conn.execute("SELECT parcel_id, verdict FROM land.parcels WHERE parcels_layer = %s", (LAYER,)))
    assert verdicts["P-OK"] == verdicts["P-IDLE-NOT-YET"] == "合规"
    assert verdicts["P-LATE"] == "预警"
    assert {p for p, v in verdicts.items() if v == "违规"} == {p for p, k in EXPECTED.items() if k} - {"P-LATE"}
    assert "parcels" in checked["out"] and "11 checked" in checked["out"] and "违规" in checked["out"]


def test_figures_match_shapely_in_a_local_metric_crs(checked, conn):
    parcels = _parcels().to_crs(SRID).set_index("parcel_id")
    buildings = _buildings().to_crs(SRID)
    for parcel_id, parcel in parcels.iterrows():
        inside = buildings.geometry.intersection(parcel.geometry).area
        on = inside > 1.0
        footprint = float(inside[on].sum())
        floor_area = float(
            (inside[on] * buildings.floors.where(buildings.floors > 0, (buildings.height / 3).round()))[on].sum()
        )
        area = parcel.geometry.area
        row = conn.execute(
            "SELECT area_m2, footprint_area, floor_area, far, coverage, max_height, building_count FROM land.parcels "
            "WHERE parcels_layer = %s AND parcel_id = %s",
            (LAYER, parcel_id),
        ).fetchone()
        assert row[0] == pytest.approx(area, rel=0.005)
        assert row[1] == pytest.approx(footprint, rel=0.005, abs=0.01)
        assert row[2] == pytest.approx(floor_area, rel=0.005, abs=0.01)
        assert row[3] == pytest.approx(floor_area / area, rel=0.005, abs=1e-6)
        assert row[4] == pytest.approx(footprint / area, rel=0.005, abs=1e-6)
        assert row[6] == int(on.sum())
        if on.any():
            assert row[5] == pytest.approx(float(buildings.height[on].max()))
    far = _open_findings(conn, "P-FAR")["far_exceeded"]["evidence"]
    assert far["value"] == pytest.approx(1.6, rel=0.005) and far["limit"] == 1.0
    assert [b["id"] for b in far["buildings"]] == ["B-FAR"]
    out = _open_findings(conn, "P-OUT")["outside_parcel"]["evidence"]
    assert out["buildings"][0]["outside_m2"] == pytest.approx(40.0, rel=0.005)
    farm = _open_findings(conn, "P-FARM")["on_farmland"]["evidence"]
    assert farm["layer"] == "land_farm" and farm["value"] == pytest.approx(10 * 20, rel=0.005)  # x 50..60, y 40..60
    assert farm["buildings"][0]["features"] == [{"code": "GD", "name": "GD 01"}]


def test_a_second_epoch_reports_changes_keeps_states_and_closes_what_no_longer_holds(checked, settings, conn, tmp_path):
    height = _open_findings(conn, "P-HGT")["height_exceeded"]
    from cim.db import connect
    from layers.land.followup import set_state

    with connect(settings) as c:
        set_state(c, height["id"], "核查属实", "inspector", "现场核实")
        set_state(c, _open_findings(conn, "P-FAR")["far_exceeded"]["id"], "已整改", "inspector", "")
    rows = [r for r in BUILDINGS if r[0] != "B-FAR"]  # demolished
    rows = [(*r[:6], 35.0, 0) if r[0] == "B-HGT" else r for r in rows]  # raised by 5 m
    rows = [(*r[:4], 70, 60, *r[6:]) if r[0] == "B-COV" else r for r in rows]  # grown by 600 m2
    rows.append(("B-IDLE-NEW", 8, 30, 30, 20, 20, 9.0, 3))  # built on the idle parcel
    path = _write(tmp_path / "b2.geojson", _buildings(rows))
    run_cim(settings, "import", "layer", path, "--name", "land_b2", "--no-grid-join", check=True)
    out = run_cim(settings, "land", "check", *_options("land_b2", "2026"), check=True).stdout
    assert "since 2024" in out
    changes = {
        (p, k, key)
        for p, k, key in conn.execute(
            "SELECT parcel_id, kind, key FROM land.changes WHERE parcels_layer = %s", (LAYER,)
        )
    }
    assert changes == {
        ("P-FAR", "demolished", "B-FAR"),
        ("P-HGT", "raised", "B-HGT"),
        ("P-COV", "grown", "B-COV"),
        ("P-IDLE", "new", "B-IDLE-NEW"),
    }
    changed = {
        p for (p,) in conn.execute("SELECT parcel_id FROM land.parcels WHERE parcels_layer = %s AND changed", (LAYER,))
    }
    assert changed == {"P-FAR", "P-HGT", "P-COV", "P-IDLE"}
    still = _open_findings(conn, "P-HGT")["height_exceeded"]
    assert still["id"] == height["id"] and still["state"] == "核查属实"  # kept across the re-check
    assert still["evidence"]["value"] == pytest.approx(35.0)
    assert "far_exceeded" not in _open_findings(conn, "P-FAR") and "idle" not in _open_findings(conn, "P-IDLE")
    closed = conn.execute(
        "SELECT f.state, h.event FROM land.findings f JOIN land.finding_history h ON h.finding_id = f.id "
        "WHERE f.parcels_layer = %s AND f.parcel_id = 'P-FAR' AND f.kind = 'far_exceeded' ORDER BY h.id",
        (LAYER,),
    ).fetchall()
    assert [e for _, e in closed] == ["opened", "state", "closed"] and closed[-1][0] == "已整改"
    verdict = conn.execute(
        "SELECT verdict FROM land.parcels WHERE parcels_layer = %s AND parcel_id = 'P-FAR'", (LAYER,)
    ).fetchone()
    assert verdict == ("合规",)


def test_one_parcel_is_rechecked_alone(checked, settings, conn):
    before = conn.execute("SELECT max(id) FROM land.runs").fetchone()[0]
    out = run_cim(settings, "land", "check", *_options("land_b2"), "--parcel", "P-OUT", check=True).stdout
    assert "1 checked" in out
    assert set(_open_findings(conn, "P-OUT")) == {"outside_parcel"}
    assert conn.execute("SELECT max(run_id) FROM land.parcels WHERE parcel_id = 'P-OUT'").fetchone()[0] > before
    others = conn.execute(
        "SELECT count(*) FROM land.parcels WHERE parcels_layer = %s AND run_id > %s", (LAYER, before)
    ).fetchone()
    assert others == (1,)
    # the unapproved building's finding is left as it was
    assert conn.execute(
        "SELECT count(*) FROM land.findings WHERE kind = 'unapproved_building' AND closed_at IS NULL "
        "AND parcels_layer = %s",
        (LAYER,),
    ).fetchone() == (1,)


def test_bad_parcels_are_named_and_skipped_and_missing_fields_are_one_line(settings, tmp_path, conn):
    frame = _parcels().iloc[:3].copy()
    frame.loc[frame.index[1], "start_deadline"] = "2021-13-45"
    frame.loc[frame.index[2], "parcel_id"] = None
    path = _write(tmp_path / "bad.geojson", frame)
    run_cim(settings, "import", "layer", path, "--name", "land_bad", "--no-grid-join", check=True)
    out = run_cim(settings, "land", "check", "--parcels", "land_bad", "--buildings", "land_b1", "--as-of", AS_OF)
    assert out.returncode == 0, out.stderr
    assert "2 checked, 1 skipped" in out.stdout and "no parcel_id" in out.stdout
    assert "2021-13-45" in out.stdout and "start_deadline" in out.stdout
    frame = _parcels().drop(columns=["approved_far", "height_limit"])
    path = _write(tmp_path / "thin.geojson", frame)
    run_cim(settings, "import", "layer", path, "--name", "land_thin", "--no-grid-join", check=True)
    out = run_cim(settings, "land", "check", "--parcels", "land_thin", "--buildings", "land_b1")
    error = (out.stderr + out.stdout).strip()
    assert out.returncode != 0
    assert "approved_far" in error and "height_limit" in error and "--fields" in error
    assert conn.execute("SELECT count(*) FROM land.parcels WHERE parcels_layer = 'land_thin'").fetchone() == (0,)
    renamed = _parcels().rename(columns={"approved_far": "RJL", "height_limit": "XG"})
    path = _write(tmp_path / "renamed.geojson", renamed)
    run_cim(settings, "import", "layer", path, "--name", "land_renamed", "--no-grid-join", check=True)
    out = run_cim(
        settings, "land", "check", "--parcels", "land_renamed", "--buildings", "land_b1", "--as-of", AS_OF,
        "--fields", "approved_far=RJL,height_limit=XG", "--farmland", "", "--forest", "", "--eco-redline", "",
    )  # fmt: skip
    assert out.returncode == 0 and "11 checked" in out.stdout


@pytest.fixture(scope="module")
def land_clients(in_process, tokens):
    return {role: client_of(in_process, tokens[role]) for role in ("viewer", "land_supervisor", "admin")}


def test_http_lists_filters_details_and_follow_up_by_role(checked, land_clients, conn):
    viewer, supervisor = land_clients["viewer"], land_clients["land_supervisor"]
    listed = viewer.get("/land/parcels", params={"parcels": LAYER, "verdict": "违规", "limit": 100}).json()
    ids = {p["parcel_id"] for p in listed["parcels"]}
    assert listed["numberMatched"] == len(ids) and "P-OUT" in ids and "P-OK" not in ids
    only = viewer.get("/land/parcels", params={"parcels": LAYER, "finding": "outside_parcel"}).json()
    assert [p["parcel_id"] for p in only["parcels"]] == ["P-OUT"]
    assert viewer.get("/land/parcels", params={"parcels": LAYER, "finding": "nonsense"}).status_code == 400
    detail = viewer.get("/land/parcels/P-OUT", params={"parcels": LAYER}).json()
    for key in ("parcel_id", "footprint_area", "floor_area", "far", "coverage", "max_height", "verdict", "findings"):
        assert key in detail, key
    finding = next(f for f in detail["findings"] if f["kind"] == "outside_parcel")
    assert finding["state"] == "待核查" and finding["evidence"]["buildings"][0]["id"] == "B-OUT"
    url = f"/land/findings/{finding['id']}"
    assert viewer.post(url, json={"state": "核查属实"}).status_code == 403
    assert supervisor.post(url, json={"state": "不存在"}).status_code == 400
    response = supervisor.post(url, json={"state": "核查属实", "note": "现场核实越界 2 米"})
    assert response.status_code == 200, response.text
    detail = viewer.get("/land/parcels/P-OUT", params={"parcels": LAYER}).json()
    finding = next(f for f in detail["findings"] if f["kind"] == "outside_parcel")
    assert finding["state"] == "核查属实" and finding["history"][-1]["note"] == "现场核实越界 2 米"
    assert conn.execute(
        "SELECT count(*) FROM cim.audit WHERE action = 'land.finding.state' AND object = %s", (str(finding["id"]),)
    ).fetchone() == (1,)
    stats = viewer.get("/land/stats", params={"parcels": LAYER, "level": "street"}).json()
    assert sum(a["parcels"] for a in stats["areas"]) == len(PARCELS)
    geo = viewer.get("/land/parcels", params={"parcels": LAYER, "format": "geojson"}).json()
    assert len(geo["features"]) == len(PARCELS)
    assert {f["properties"]["verdict"] for f in geo["features"]} == {"合规", "预警", "违规"}
    assert viewer.get("/land/parcels/NOPE", params={"parcels": LAYER}).status_code == 404
    assert viewer.post("/land/parcels/P-HGT/check", params={"parcels": LAYER}).status_code == 403
    response = supervisor.post("/land/parcels/P-HGT/check", params={"parcels": LAYER})
    assert response.status_code == 200, response.text
    assert response.json()["parcel_id"] == "P-HGT" and response.json()["findings"]["height_exceeded"] >= 1


def test_the_report_and_the_exports_through_http(checked, land_clients, tmp_path):
    import csv
    import io
    import subprocess

    import openpyxl

    viewer = land_clients["viewer"]
    detail = viewer.get("/land/parcels/P-OK", params={"parcels": LAYER}).json()
    response = viewer.get("/land/parcels/P-OK/report.pdf", params={"parcels": LAYER})
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    (tmp_path / "r.pdf").write_bytes(response.content)
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True)
    flat = "".join(text.stdout.split())
    assert "P-OK" in flat and "容积率" in flat and f"{detail['far']:.2f}" in flat
    listed = viewer.get("/land/parcels", params={"parcels": LAYER, "format": "csv", "limit": 1000})
    assert listed.status_code == 200 and "attachment" in listed.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(listed.content.decode("utf-8-sig"))))
    ids = [r[0] for r in rows[1:]]
    assert "P-OK" in ids and len(ids) == len(PARCELS)
    book = viewer.get("/land/parcels", params={"parcels": LAYER, "format": "xlsx", "limit": 1000})
    sheet = openpyxl.load_workbook(io.BytesIO(book.content)).worksheets[0]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    far = next(r for r in values if r[0] == "P-OK")
    assert any(isinstance(v, int | float) and abs(v - detail["far"]) < 1e-3 for v in far)
    assert viewer.get("/land/parcels", params={"parcels": LAYER, "format": "docx"}).status_code == 400
