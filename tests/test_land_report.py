"""The land reports and exports (no database): a parcel's one-page PDF report
read back with poppler's pdftotext/pdfinfo/pdffonts, and the parcel table as
CSV (csv module) and XLSX (openpyxl).

The parcel is tests/data/land_parcel.json: a real parcel JSON of the checks
(B103-0002 of the Futian sample, as GET /land/parcels/{id} returns it).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from cim.errors import ConfigError
from layers.land import report
from layers.land.export import COLUMNS, parcels_csv, parcels_xlsx
from layers.land.report import local_metres, parcel_report_pdf

PARCEL = Path(__file__).parent / "data" / "land_parcel.json"
CST = dt.timezone(dt.timedelta(hours=8))
AT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=CST)

poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")


@pytest.fixture
def parcel() -> dict[str, Any]:
    return json.loads(PARCEL.read_text(encoding="utf-8"))


def summary(parcel: dict[str, Any]) -> dict[str, Any]:
    """A parcel as the list returns it: no geometry or detail; findings: the open kinds."""
    s = {k: v for k, v in parcel.items() if k not in ("geometry", "buildings", "changes")}
    s["findings"] = sorted({f["kind"] for f in parcel["findings"] if f["closed_at"] is None and f["state"] != "误报"})
    return s


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text without blanks (pdftotext keeps some spaces and drops others: 第 1 页 reads 第1页)."""
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return "".join(text.split())


def has(text: str, expected: str) -> bool:
    return "".join(expected.split()) in text


def pdf_info(pdf: bytes, tool: str, tmp_path: Path) -> str:
    path = tmp_path / "info.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, str(path)], check=True, capture_output=True, text=True).stdout


# ---------------------------------------------------------------- PDF


@poppler
def test_the_report_is_one_a4_page_with_the_figures_verdict_and_findings(parcel, tmp_path):
    pdf = parcel_report_pdf(parcel, generated_at=AT, generated_by="zhang.san")
    assert pdf.startswith(b"%PDF-")
    info = pdf_info(pdf, "pdfinfo", tmp_path)
    assert "Pages:           1" in info and "(A4)" in info
    text = pdf_text(pdf, tmp_path)
    for expected in (
        "土地批后监管核查报告",
        "B103-0002",
        "居住用地",
        "福田街道",
        "容积率",
        "7.18",  # far 7.183 as printed
        "≤ 5.68",
        "49.88%",  # coverage as a percentage
        "违规",
        "容积率超标",
        "建筑密度超标",
        "逾期未竣工",
        "新洲雅居6栋",  # a building of the evidence
        "BLD000051",
        "督促记录",
        "2026-11-30 03:04",  # checked at 19:04 UTC, shown in the zone of generated_at
        "生成时间 2026-12-01 09:30 (UTC+08:00)",
        "zhang.san",
        "第 1 页",
    ):
        assert has(text, expected), expected
    assert "另有" not in text  # nothing was cut


@poppler
def test_the_font_is_embedded_so_the_report_reads_offline(parcel, tmp_path):
    fonts = pdf_info(parcel_report_pdf(parcel, generated_at=AT, generated_by=""), "pdffonts", tmp_path)
    rows = fonts.strip().splitlines()[2:]
    assert rows, fonts
    for row in rows:  # name type encoding emb sub uni ...: every font embedded (no Helvetica either)
        assert row.split()[-5] == "yes", fonts


@poppler
def test_long_lists_are_cut_to_keep_one_page(parcel, tmp_path):
    """A hundred follow-up events, changes of every kind, many buildings: one page, lists cut."""
    finding = parcel["findings"][0]
    finding["history"] += [
        {
            "at": f"2026-12-{d:02d}T08:00:00+00:00",
            "event": "state",
            "state": "核查属实",
            "actor": "李四",
            "note": "现场核查：建筑已加建两层，责令限期整改。" * 5,
        }
        for d in range(1, 29)
    ] * 4
    finding["evidence"]["buildings"] *= 15
    parcel["changes"] = [
        {
            "kind": kind,
            "layer": "buildings",
            "id": f"BLD{i:06d}",
            "name": f"测试楼{i}栋",
            "epoch_from": "2023",
            "epoch_to": "2024",
            "before": {"height": 30.0, "area_m2": 500.0},
            "after": {"height": 36.0, "area_m2": 620.0},
        }
        for kind in ("new", "raised", "grown", "demolished")
        for i in range(12)
    ]
    parcel["changed"] = True
    started = time.perf_counter()
    pdf = parcel_report_pdf(parcel, generated_at=AT, generated_by="王五")
    assert time.perf_counter() - started < 2.0
    assert "Pages:           1" in pdf_info(pdf, "pdfinfo", tmp_path)
    text = pdf_text(pdf, tmp_path)
    assert all(has(text, t) for t in ("... 另有", "两期变化", "测试楼0栋", "容积率超标", "第 1 页"))


@poppler
def test_a_compliant_parcel_without_geometry_or_findings(tmp_path):
    parcel = {"parcel_id": "X-1", "verdict": "合规", "findings": [], "changes": [], "buildings": []}
    text = pdf_text(parcel_report_pdf(parcel, generated_at=dt.datetime(2026, 1, 2, 3, 4), generated_by=""), tmp_path)
    assert all(has(text, t) for t in ("X-1", "合规", "未发现问题", "无宗地图形", "第 1 页"))


@poppler
def test_user_text_is_printed_as_text(parcel, tmp_path):
    """Names and notes are not markup: <, > and & print as they are."""
    parcel["findings"][0]["history"][0]["note"] = "<b>复核</b> & 整改"
    text = pdf_text(parcel_report_pdf(parcel, generated_at=AT, generated_by="a<b>"), tmp_path)
    assert has(text, "<b>复核</b> & 整改") and has(text, "生成人 a<b>")


def test_a_report_takes_well_under_two_seconds(parcel):
    parcel_report_pdf(parcel, generated_at=AT, generated_by="")  # the font is read once per process
    started = time.perf_counter()
    parcel_report_pdf(parcel, generated_at=AT, generated_by="")
    assert time.perf_counter() - started < 2.0


def test_the_map_frame_is_metres_around_the_centre():
    x, y = local_metres(114.0566377, 22.5268739, (114.0556377, 22.5258739))
    assert x == pytest.approx(0.001 * 111_320 * math.cos(math.radians(22.5258739)))
    assert y == pytest.approx(110.54)


def test_no_font_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(report, "FONTS", (("/nonexistent/font.ttc", 0, "fonts-wqy-zenhei"),))
    with pytest.raises(ConfigError, match="fonts-wqy-zenhei"):
        report.font_path()


# ---------------------------------------------------------------- CSV and XLSX


def two_parcels(parcel: dict[str, Any]) -> list[dict[str, Any]]:
    """The fixture's summary and a compliant one whose id looks like a formula."""
    other = copy.deepcopy(summary(parcel))
    other.update(parcel_id="=1+1", verdict="合规", findings=[], changed=True, far=None, max_height=12)
    return [summary(parcel), other]


def test_csv_opens_with_the_csv_module_with_the_right_numbers(parcel):
    data = parcels_csv(two_parcels(parcel))
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][0] == "宗地编号 (parcel_id)" and len(rows[0]) == len(COLUMNS) == 18
    first = dict(zip([c.key for c in COLUMNS], rows[1]))
    assert first["parcel_id"] == "B103-0002" and first["use"] == "居住用地" and first["grid"] == "440304003006008"
    assert float(first["far"]) == 7.183 and float(first["approved_far"]) == 5.68
    assert float(first["coverage"]) == 0.4988 and float(first["coverage_limit"]) == 0.35
    assert float(first["area_m2"]) == 5549.58 and float(first["floor_area"]) == 39860.74
    assert float(first["max_height"]) == 55.5 and float(first["height_limit"]) == 120
    assert first["verdict"] == "违规" and first["changed"] == "否"
    assert first["findings"] == "建筑密度超标、容积率超标、建筑越出宗地红线、逾期未竣工"
    assert first["checked_at"].startswith("2026-11-") and len(first["checked_at"]) == 19
    second = dict(zip([c.key for c in COLUMNS], rows[2]))
    assert second["parcel_id"] == "'=1+1"  # not a formula in a spreadsheet
    assert second["far"] == "" and second["findings"] == "" and second["changed"] == "是"


def test_xlsx_opens_with_openpyxl_with_the_right_values_and_types():
    parcels = two_parcels(json.loads(PARCEL.read_text(encoding="utf-8")))
    wb = load_workbook(io.BytesIO(parcels_xlsx(parcels, tz=CST)))
    assert wb.sheetnames == ["宗地核查", "统计"]
    ws = wb["宗地核查"]
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref == "A1:R3"
    assert ws["A1"].value == "宗地编号\n(parcel_id)" and ws["I1"].value == "容积率\n(far)"
    assert ws.column_dimensions["A"].width >= 10 and ws.column_dimensions["P"].width > 20
    row = {c.key: ws.cell(row=2, column=i).value for i, c in enumerate(COLUMNS, 1)}
    assert row["parcel_id"] == "B103-0002" and row["grid"] == "440304003006008"  # text stays text
    assert row["far"] == 7.183 and isinstance(row["far"], float) and ws["I2"].number_format == "0.000"
    assert row["coverage"] == 0.4988 and ws["K2"].number_format == "0.00%"
    assert row["height_limit"] == 120 and isinstance(row["height_limit"], int)
    assert row["area_m2"] == 5549.58 and ws["F2"].number_format == "#,##0.00"
    assert row["checked_at"] == dt.datetime(2026, 11, 30, 3, 4, 56)  # 19:04:56 UTC in UTC+8
    assert row["verdict"] == "违规" and row["changed"] == "否" and row["findings"].startswith("建筑密度超标、")
    assert ws["A3"].value == "=1+1" and ws["A3"].data_type == "s"  # a string, not a formula
    assert ws["I3"].value is None and ws["M3"].value == 12

    stats = wb["统计"]
    verdicts = {r[0]: r[1:3] for r in stats.iter_rows(min_row=2, max_row=5, values_only=True)}
    assert verdicts == {"合规": (1, 0.5), "预警": (0, 0), "违规": (1, 0.5), "合计": (2, 1)}
    kinds = {r[1]: r[3] for r in stats.iter_rows(min_row=8, values_only=True) if r[1]}
    assert kinds["far_exceeded"] == 1 and kinds["overdue_completion"] == 1 and kinds["idle"] == 0
    assert "unapproved_building" not in kinds  # on no parcel


def test_empty_exports():
    assert parcels_csv([]).decode("utf-8-sig").count("\n") == 1
    wb = load_workbook(io.BytesIO(parcels_xlsx([])))
    assert wb["宗地核查"].max_row == 1 and wb["统计"]["B5"].value == 0
