"""The checked parcels as a table for spreadsheets: CSV (UTF-8 with a BOM, so
that Excel reads the Chinese) and XLSX (numbers as numbers, a frozen header,
column widths, an autofilter, and a second sheet 统计 with the parcels per
verdict and per finding kind).

Input: the parcel summaries of :func:`layers.land.queries.parcels_query` (a
list of dicts; a parcel's full JSON works too: its open findings count). One
row per parcel; headers "中文 (english)", the English being the JSON key.
Times are shown in ``tz`` (default: the server's local zone), without zone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from layers.land.rules import KINDS, State, Verdict

Json = dict[str, Any]

#: number formats of the XLSX columns, by the kind of figure
FORMATS = {
    "area": "#,##0.00",
    "far": "0.000",
    "ratio": "0.00",
    "percent": "0.00%",
    "metres": "0.00",
    "time": "yyyy-mm-dd hh:mm:ss",
}
#: spreadsheet programs run a text cell starting with one of these as a formula (CSV/formula injection)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SHEET = "宗地核查"
STATS_SHEET = "统计"

_HEAD_FONT = Font(bold=True)
_HEAD_FILL = PatternFill("solid", fgColor="EEEEEE")
_VERDICT_FILLS = {
    Verdict.compliant: PatternFill("solid", fgColor="E8F5E9"),
    Verdict.warning: PatternFill("solid", fgColor="FFF8E1"),
    Verdict.violation: PatternFill("solid", fgColor="FFEBEE"),
}


@dataclass(frozen=True)
class Column:
    key: str  # the JSON key (limits are flattened: approved_far, coverage_limit, height_limit)
    title: str  # Chinese header
    figure: str = ""  # a key of FORMATS: a number column

    @property
    def header(self) -> str:
        return f"{self.title} ({self.key})"


COLUMNS: tuple[Column, ...] = (
    Column("parcel_id", "宗地编号"),
    Column("use", "用地性质"),
    Column("street", "街道"),
    Column("community", "社区"),
    Column("grid", "网格"),
    Column("area_m2", "宗地面积 m²", "area"),
    Column("footprint_area", "建筑基底面积 m²", "area"),
    Column("floor_area", "总建筑面积 m²", "area"),
    Column("far", "容积率", "far"),
    Column("approved_far", "批准容积率", "ratio"),
    Column("coverage", "建筑密度", "percent"),
    Column("coverage_limit", "建筑密度上限", "percent"),
    Column("max_height", "最高建筑 m", "metres"),
    Column("height_limit", "限高 m", "metres"),
    Column("verdict", "核查结论"),
    Column("findings", "问题"),
    Column("changed", "两期变化"),
    Column("checked_at", "核查时间", "time"),
)


# ---------------------------------------------------------------- values


def _number(value: Any) -> float | int | None:
    """A finite number, else None (an empty cell)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _time(value: Any, tz: dt.tzinfo | None) -> dt.datetime | None:
    """An ISO timestamp as a naive local time (spreadsheets have no time zones)."""
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(tz).replace(tzinfo=None)
    return t.replace(microsecond=0)


def _finding_kinds(parcel: Json) -> list[str]:
    """The parcel's open finding kinds: a summary lists them; a full parcel has them as objects."""
    kinds: list[str] = []
    for f in parcel.get("findings") or []:
        if isinstance(f, str):
            kinds.append(f)
        elif isinstance(f, dict) and f.get("closed_at") is None and f.get("state") != State.false_positive:
            kinds.append(str(f.get("kind", "")))
    return list(dict.fromkeys(kinds))


def _title(kind: str) -> str:
    return KINDS[kind][1] if kind in KINDS else kind


def _changed(value: Any) -> str | None:
    return None if value is None else ("是" if value else "否")


def _row(parcel: Json, tz: dt.tzinfo | None) -> list[Any]:
    """The parcel's cells, in the order of :data:`COLUMNS` (numbers as numbers, times as datetimes)."""
    limits = parcel.get("limits") or {}
    flat = {
        **parcel,
        "approved_far": limits.get("approved_far"),
        "coverage_limit": limits.get("coverage"),
        "height_limit": limits.get("height_limit"),
    }
    cells: list[Any] = []
    for column in COLUMNS:
        value = flat.get(column.key)
        if column.key == "findings":
            cells.append("、".join(_title(k) for k in _finding_kinds(parcel)) or None)
        elif column.key == "changed":
            cells.append(_changed(value))
        elif column.figure == "time":
            cells.append(_time(value, tz))
        elif column.figure:
            cells.append(_number(value))
        else:
            cells.append(None if value is None else str(value))
    return cells


def _safe_text(text: str) -> str:
    """Text a spreadsheet shows as text: no formula, no control characters."""
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    return "'" + text if text.startswith(FORMULA_START) else text


# ---------------------------------------------------------------- CSV


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return _safe_text(value)
    return value


def parcels_csv(parcels: list[dict[str, Any]], *, tz: dt.tzinfo | None = None) -> bytes:
    """The parcels as CSV: UTF-8 with a BOM, a header row, one row per parcel."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([c.header for c in COLUMNS])
    for parcel in parcels:
        writer.writerow([_csv_cell(v) for v in _row(parcel, tz)])
    return out.getvalue().encode("utf-8-sig")


# ---------------------------------------------------------------- XLSX


def _display_width(value: Any) -> int:
    """Roughly how many character widths a cell takes (a CJK character takes two)."""
    if isinstance(value, dt.datetime):
        return 19
    if isinstance(value, float):
        return len(f"{value:,.2f}")
    text = str(value)
    return len(text) + sum(1 for ch in text if ord(ch) > 0x2E80)


def _set(ws: Worksheet, row: int, column: int, value: Any) -> Any:
    """Writes a cell; text stays text (openpyxl would take "=..." for a formula)."""
    cell = ws.cell(row=row, column=column)
    if isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"
    else:
        cell.value = value
    return cell


def _header(ws: Worksheet, row: int, titles: Sequence[str]) -> None:
    for i, title in enumerate(titles, 1):
        cell = _set(ws, row, i, title)
        cell.font, cell.fill = _HEAD_FONT, _HEAD_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")


def _widths(ws: Worksheet, rows: Iterable[Sequence[Any]], headers: Sequence[str], sample: int = 500) -> None:
    """Column widths from the headers (their longer line) and the first ``sample`` rows."""
    widest = [max(_display_width(part) for part in h.split("\n")) for h in headers]
    for n, row in enumerate(rows):
        if n >= sample:
            break
        widest = [max(w, _display_width(v)) if v is not None else w for w, v in zip(widest, row)]
    for i, w in enumerate(widest, 1):
        ws.column_dimensions[get_column_letter(i)].width = min(max(w + 2, 8), 50)


def _write_parcels(ws: Worksheet, parcels: Sequence[Json], tz: dt.tzinfo | None) -> None:
    headers = [f"{c.title}\n({c.key})" for c in COLUMNS]
    _header(ws, 1, headers)
    ws.row_dimensions[1].height = 32
    rows = [_row(p, tz) for p in parcels]
    formats = [FORMATS.get(c.figure) for c in COLUMNS]
    verdict_at = [c.key for c in COLUMNS].index("verdict")
    for r, cells in enumerate(rows, 2):
        for i, value in enumerate(cells):
            cell = _set(ws, r, i + 1, value)
            if value is not None and formats[i]:
                cell.number_format = formats[i]
        fill = _VERDICT_FILLS.get(cells[verdict_at])
        if fill is not None:
            ws.cell(row=r, column=verdict_at + 1).fill = fill
    ws.freeze_panes = "B2"  # the header and the parcel id stay in view
    ws.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{len(rows) + 1}"
    _widths(ws, rows, headers)


def _write_stats(ws: Worksheet, parcels: Sequence[Json]) -> None:
    """Parcels per verdict, and parcels with an open finding of each kind."""
    total = len(parcels)
    verdicts = Counter(str(p.get("verdict") or "(未核查)") for p in parcels)
    kinds = Counter(k for p in parcels for k in _finding_kinds(p))
    _header(ws, 1, ["核查结论 (verdict)", "宗地数 (parcels)", "占比 (share)"])
    names = [v.value for v in Verdict] + sorted(set(verdicts) - {v.value for v in Verdict})
    rows: list[list[Any]] = [[name, verdicts[name], verdicts[name] / total if total else None] for name in names]
    rows.append(["合计", total, 1.0 if total else None])
    for r, row in enumerate(rows, 2):
        for i, value in enumerate(row, 1):
            _set(ws, r, i, value)
        ws.cell(row=r, column=3).number_format = FORMATS["percent"]
        if row[0] in _VERDICT_FILLS:
            ws.cell(row=r, column=1).fill = _VERDICT_FILLS[row[0]]
    ws.cell(row=len(rows) + 1, column=1).font = _HEAD_FONT

    start = len(rows) + 3
    _header(ws, start, ["问题 (finding)", "类型 (kind)", "等级 (severity)", "宗地数 (parcels)", "占比 (share)"])
    listed = [k for k in KINDS if k != "unapproved_building" or kinds[k]]  # 未批先建 is on no parcel
    listed += sorted(set(kinds) - set(KINDS))
    for r, kind in enumerate(listed, start + 1):
        severity = KINDS[kind][0].value if kind in KINDS else None
        for i, value in enumerate([_title(kind), kind, severity, kinds[kind], kinds[kind] / total if total else None]):
            _set(ws, r, i + 1, value)
        ws.cell(row=r, column=5).number_format = FORMATS["percent"]
    for letter, width in zip("ABCDE", (22, 22, 16, 16, 14)):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"


def parcels_xlsx(parcels: list[dict[str, Any]], *, tz: dt.tzinfo | None = None) -> bytes:
    """The parcels as an Excel workbook: sheet 宗地核查 (one row per parcel) and sheet 统计 (counts)."""
    wb = Workbook()
    ws = wb.worksheets[0]
    ws.title = SHEET
    _write_parcels(ws, parcels, tz)
    _write_stats(wb.create_sheet(STATS_SHEET), parcels)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
