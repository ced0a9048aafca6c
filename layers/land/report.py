"""A printable one-page report of a checked parcel (土地批后监管核查报告), in
Simplified Chinese, as PDF bytes: the parcel's figures against its limits, a
vector map of the parcel and its buildings, the findings with their evidence,
the changes between survey epochs and the follow-up history.

Input: a parcel's JSON as :func:`layers.land.queries.parcel_query` builds it
(a dict); no database, no HTTP. The report is always one A4 page: long lists
are cut ("... 另有 N 项") until they fit.

Times are shown in the time zone of ``generated_at`` (the server's local zone
when it is naive). The Chinese text needs a CJK font with TrueType outlines
(reportlab cannot read the CFF outlines of the Noto CJK fonts): the first of
:data:`FONTS` found is embedded (as a subset), so the PDF reads offline.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.pathobject import PDFPathObject
from reportlab.platypus import Flowable, Frame, KeepInFrame, Paragraph, Table, TableStyle

from cim.errors import ConfigError
from layers.land.rules import CHANGES, KINDS, State, Verdict

Json = dict[str, Any]
Point = tuple[float, float]
Ring = list[Point]

#: CJK fonts with TrueType outlines, the first found is used: (path, index in a collection, Debian package)
FONTS: tuple[tuple[str, int, str], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0, "fonts-wqy-zenhei"),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0, "fonts-wqy-microhei"),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0, "fonts-arphic-uming"),
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0, "fonts-arphic-ukai"),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0, "fonts-droid-fallback"),
)
FONT = "CimLandCJK"
#: reportlab.pdfgen.canvas.FILL_EVEN_ODD (which its type stubs lack): holes stay holes
FILL_EVEN_ODD = 0

#: metres per degree of longitude at the equator and of latitude (the local equirectangular frame of the map)
M_PER_DEG_LON = 111_320.0
M_PER_DEG_LAT = 110_540.0

PAGE_W, PAGE_H = A4
MARGIN = 14 * mm
WIDTH = PAGE_W - 2 * MARGIN
MAP_W, MAP_H = 232.0, 206.0
FOOTER_H = 18.0

INK = colors.HexColor("#212121")
GREY = colors.HexColor("#757575")
RULE = colors.HexColor("#BDBDBD")
HEAD_BG = colors.HexColor("#EEEEEE")
ACCENT = colors.HexColor("#1A4F8B")
GREEN = colors.HexColor("#2E7D32")
AMBER = colors.HexColor("#F9A825")
DARK_AMBER = colors.HexColor("#B26A00")
RED = colors.HexColor("#C62828")
PARCEL_FILL = colors.HexColor("#E3F2FD")
PARCEL_LINE = colors.HexColor("#1565C0")
BUILDING_FILL = colors.HexColor("#B0BEC5")
BUILDING_LINE = colors.HexColor("#546E7A")
NEIGHBOUR_FILL = colors.HexColor("#E0E0E0")
MARKED_FILL = colors.HexColor("#EF5350")
MARKED_LINE = colors.HexColor("#B71C1C")

#: verdict -> badge fill, badge text
VERDICT_COLOURS: dict[str, tuple[colors.Color, colors.Color]] = {
    Verdict.compliant: (GREEN, colors.white),
    Verdict.warning: (AMBER, INK),
    Verdict.violation: (RED, colors.white),
}
SEVERITY_COLOURS: dict[str, colors.Color] = {"违规": RED, "预警": DARK_AMBER}
EVENTS = {"opened": "发现", "reopened": "再次发现", "closed": "关闭", "state": "状态变更"}
MORE = "... 另有 {} 项"
NOTE_CHARS = 60
#: no list starts longer than this (the page holds fewer rows anyway)
MAX_ROWS = 30

_font_lock = threading.Lock()


# ---------------------------------------------------------------- font


def font_path() -> tuple[str, int]:
    """The CJK TrueType font to embed: (path, index in its collection)."""
    for path, index, _package in FONTS:
        if os.path.isfile(path):
            return path, index
    raise ConfigError(
        "no Chinese TrueType font for the land reports (PDF): none of " + ", ".join(p for p, _, _ in FONTS),
        hint="install the Debian package fonts-wqy-zenhei (apt-get install fonts-wqy-zenhei; scripts/bootstrap.sh "
        "does); reportlab cannot read the OTF (CFF) Noto CJK fonts",
    )


def _font() -> str:
    """Registers the CJK font with reportlab once per process; returns its name."""
    with _font_lock:
        if FONT not in pdfmetrics.getRegisteredFontNames():
            path, index = font_path()
            pdfmetrics.registerFont(TTFont(FONT, path, subfontIndex=index))
            # <b>/<i> in paragraphs fall back to the same face (the font has no bold)
            pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT, italic=FONT, boldItalic=FONT)
    return FONT


def _style(size: float, colour: colors.Color = INK, **kw: Any) -> ParagraphStyle:
    return ParagraphStyle(
        f"land{size}", fontName=FONT, fontSize=size, leading=size * 1.25, textColor=colour, wordWrap="CJK", **kw
    )


CELL = _style(7.6)
CELL_GREY = _style(7.6, GREY)
HEADING = _style(10.5, ACCENT, spaceBefore=7, spaceAfter=3)
BODY = _style(8.2)


# ---------------------------------------------------------------- formatting


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, digits: int = 2, unit: str = "", scale: float = 1.0) -> str:
    if not _is_number(value):
        return "—"
    return f"{value * scale:,.{digits}f}{unit}"


def _pair(value: Any, limit: Any, digits: int, unit: str = "", scale: float = 1.0) -> tuple[str, str]:
    """A value and its limit with ``digits`` decimals, or more when that would hide their difference
    (7.183 against 7.18 prints 7.183 and 7.180, not 7.18 twice)."""
    if _is_number(value) and _is_number(limit) and value != limit:
        while digits < 6 and f"{value * scale:.{digits}f}" == f"{limit * scale:.{digits}f}":
            digits += 1
    return _num(value, digits, unit, scale), _num(limit, digits, unit, scale)


def _exceeds(value: Any, limit: Any) -> bool | None:
    """value > limit; None when either is missing."""
    if not (_is_number(value) and _is_number(limit)):
        return None
    return bool(value > limit)


def _time(value: Any, tz: dt.tzinfo) -> str:
    """An ISO timestamp as local minutes ("2026-11-30 03:04")."""
    if not value:
        return "—"
    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if t.tzinfo is not None:
        t = t.astimezone(tz)
    return t.strftime("%Y-%m-%d %H:%M")


def _date(value: Any) -> str:
    return str(value)[:10] if value else "—"


def _text(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _clip(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _fit(text: str, size: float, width: float) -> str:
    """Cuts a one-line text to ``width`` points (with "…")."""
    if pdfmetrics.stringWidth(text, FONT, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", FONT, size) > width:
        text = text[:-1]
    return text + "…"


def _hex(colour: colors.Color) -> str:
    return "#" + colour.hexval()[2:]


def _para(text: str, style: ParagraphStyle = CELL, colour: colors.Color | None = None) -> Paragraph:
    """A table cell or line of plain text (escaped: names and notes come from users)."""
    markup = escape(text)
    if colour is not None:
        markup = f'<font color="{_hex(colour)}">{markup}</font>'
    return Paragraph(markup, style)


# ---------------------------------------------------------------- findings and buildings


def _is_open(finding: Json) -> bool:
    """Counts for the verdict: not closed, not called a false positive."""
    return finding.get("closed_at") is None and finding.get("state") != State.false_positive


def _building_key(b: Json) -> tuple[Any, Any]:
    return (b.get("layer"), b.get("fid") if b.get("fid") is not None else b.get("id"))


def _numbering(parcel: Json) -> dict[tuple[Any, Any], int]:
    """The parcel's buildings numbered 1.. as on the map."""
    return {_building_key(b): i for i, b in enumerate(parcel.get("buildings") or [], 1)}


def _marked(parcel: Json) -> set[tuple[Any, Any]]:
    """The buildings named in an open finding's evidence."""
    return {
        _building_key(b)
        for f in parcel.get("findings") or []
        if _is_open(f)
        for b in (f.get("evidence") or {}).get("buildings") or []
    }


def _building_name(b: Json, numbers: dict[tuple[Any, Any], int]) -> str:
    number = numbers.get(_building_key(b))
    name, ident = b.get("name"), b.get("id")
    label = f"{name} ({ident})" if name and ident and name != ident else _text(name or ident or b.get("fid"))
    return f"#{number} {label}" if number else label


def _building_figure(kind: str, b: Json) -> str:
    """What a building adds to a finding: its height, its part outside, its overlap."""
    if kind == "height_exceeded":
        return _num(b.get("height"), 1, " m")
    if kind == "outside_parcel":
        return "越界 " + _num(b.get("outside_m2"), 1, " m²")
    if "overlap_m2" in b:
        return "占用 " + _num(b.get("overlap_m2"), 1, " m²")
    return ""


def _evidence_text(finding: Json) -> str:
    """The key figures of a finding's evidence: value against limit."""
    kind, e = finding.get("kind", ""), finding.get("evidence") or {}
    value, limit = e.get("value"), e.get("limit")
    if kind == "far_exceeded":
        v, lim = _pair(value, limit, 2)
        return (
            f"容积率 {v} > 限值 {lim}（总建筑面积 {_num(e.get('floor_area_m2'), 1)} m² / "
            f"宗地面积 {_num(e.get('parcel_area_m2'), 1)} m²）"
        )
    if kind == "coverage_exceeded":
        v, lim = _pair(value, limit, 2, "%", 100)
        return (
            f"建筑密度 {v} > 限值 {lim}（基底面积 {_num(e.get('footprint_area_m2'), 1)} m² / "
            f"宗地面积 {_num(e.get('parcel_area_m2'), 1)} m²）"
        )
    if kind == "height_exceeded":
        v, lim = _pair(value, limit, 2, " m")
        return f"最高建筑 {v} > 限高 {lim}"
    if kind == "outside_parcel":
        return f"越出红线 {_num(value, 2)} m²（起算 {_num(limit, 0)} m²）"
    if kind in ("on_farmland", "on_forest", "on_eco_redline"):
        zones = [z for b in e.get("buildings") or [] for z in b.get("features") or []]
        names = (_text(z.get("name") or z.get("code")) for z in zones)
        features = "、".join(dict.fromkeys(names))  # each once, in order
        where = f"；图斑 {_clip(features, 40)}" if features else ""
        return f"占用 {_num(value, 2)} m² > 起算 {_num(limit, 0)} m²（{_text(e.get('layer'))}{where}）"
    if kind == "idle":
        return f"开工期限 {_date(e.get('start_deadline'))} 后 {_text(e.get('days'))} 天无建筑（> {_text(limit)} 天）"
    if kind == "overdue_completion":
        deadline, status = _date(e.get("completion_deadline")), _text(e.get("status"))
        return f"竣工期限 {deadline} 已逾 {_text(value)} 天（状态：{status}）"
    unit = {"m2": " m²", "m": " m", "d": " 天"}.get(str(e.get("unit", "")), "")
    v, lim = _pair(value, limit, 2, unit)
    return f"{v} > 限值 {lim}"


def _buildings_text(finding: Json, numbers: dict[tuple[Any, Any], int], cap: int) -> str:
    kind, buildings = finding.get("kind", ""), (finding.get("evidence") or {}).get("buildings") or []
    parts = []
    for b in buildings[:cap]:
        figure = _building_figure(kind, b)
        parts.append(_building_name(b, numbers) + (f" {figure}" if figure else ""))
    if len(buildings) > cap:
        parts.append(MORE.format(len(buildings) - cap))
    return "；".join(parts) if parts else "—"


def _state_text(finding: Json, tz: dt.tzinfo) -> str:
    state = _text(finding.get("state"))
    if finding.get("state_by"):
        state += f"（{finding['state_by']}）"
    if finding.get("closed_at"):
        state += f" · 已关闭 {_time(finding['closed_at'], tz)[:10]}"
    return state


def _ordered_findings(parcel: Json) -> list[Json]:
    """Open ones first (violations before warnings), then closed or false positives."""
    findings = list(parcel.get("findings") or [])
    return sorted(findings, key=lambda f: (not _is_open(f), f.get("severity") != "违规"))


def _history(parcel: Json) -> list[tuple[str, Json]]:
    """Every finding's follow-up events, the latest first: (finding title, event)."""
    events = [
        (_title(f), h) for f in parcel.get("findings") or [] for h in f.get("history") or [] if isinstance(h, dict)
    ]
    return sorted(events, key=lambda e: _sort_time(e[1].get("at")), reverse=True)


def _sort_time(value: Any) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _title(finding: Json) -> str:
    kind = finding.get("kind", "")
    return str(finding.get("title") or (KINDS[kind][1] if kind in KINDS else kind))


# ---------------------------------------------------------------- tables


def _table(rows: list[list[Any]], widths: Sequence[float], extra: Iterable[tuple[Any, ...]] = ()) -> Table:
    table = Table(rows, colWidths=list(widths), hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 7.6, 9.5),
                ("TEXTCOLOR", (0, 0), (-1, -1), INK),
                ("BACKGROUND", (0, 0), (-1, 0), HEAD_BG),
                ("GRID", (0, 0), (-1, -1), 0.3, RULE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.8),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.2),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                *extra,
            ]
        )
    )
    return table


def _capped(rows: list[list[Any]], total: int, cap: int, columns: int) -> tuple[list[list[Any]], list[tuple]]:
    """Rows cut to ``cap`` with a last row "... 另有 N 项" across the table."""
    if total <= cap:
        return rows, []
    more: list[Any] = [_para(MORE.format(total - cap), CELL_GREY)] + [""] * (columns - 1)
    last = len(rows)  # the header is row 0
    return [*rows, more], [("SPAN", (0, last), (-1, last))]


@dataclass(frozen=True)
class _Context:
    parcel: Json
    tz: dt.tzinfo
    numbers: dict[tuple[Any, Any], int]


def _limit_row(label: str, value: Any, limit: Any, texts: tuple[str, str]) -> tuple[str, str, str, str, bool]:
    """A figure against its limit: (label, value, limit, judgement, exceeded)."""
    exceeded = _exceeds(value, limit)
    judgement = "未设限" if exceeded is None else "超标" if exceeded else "符合"
    return label, texts[0], f"≤ {texts[1]}" if _is_number(limit) else "—", judgement, bool(exceeded)


def _figures_table(ctx: _Context, width: float) -> Table:
    """The parcel's figures against its limits, dates and status; exceeded ones in red."""
    p, limits, dates = ctx.parcel, ctx.parcel.get("limits") or {}, ctx.parcel.get("dates") or {}
    far, cov, height = p.get("far"), p.get("coverage"), p.get("max_height")
    far_limit, cov_limit, height_limit = limits.get("approved_far"), limits.get("coverage"), limits.get("height_limit")
    open_kinds = {f.get("kind") for f in p.get("findings") or [] if _is_open(f)}
    idle, overdue = "idle" in open_kinds, "overdue_completion" in open_kinds
    rows: list[tuple[str, str, str, str, bool]] = [
        ("宗地面积", _num(p.get("area_m2"), 2, " m²"), "", "", False),
        ("建筑基底面积", _num(p.get("footprint_area"), 2, " m²"), "", "", False),
        ("总建筑面积", _num(p.get("floor_area"), 2, " m²"), "", "", False),
        _limit_row("容积率", far, far_limit, _pair(far, far_limit, 2)),
        _limit_row("建筑密度", cov, cov_limit, _pair(cov, cov_limit, 2, "%", 100)),
        _limit_row("最高建筑", height, height_limit, _pair(height, height_limit, 2, " m")),
        ("建筑数量", _num(p.get("building_count"), 0, " 栋"), "", "", False),
        ("批准日期", _date(dates.get("approval_date")), "", "", False),
        ("开工期限", _date(dates.get("start_deadline")), "", "闲置" if idle else "", idle),
        ("竣工期限", _date(dates.get("completion_deadline")), "", "逾期" if overdue else "", overdue),
        ("土地状态", _fit(_text(p.get("status")), 8.2, width * 0.31 - 6), "", "", False),
        ("核查时间", _time(p.get("checked_at"), ctx.tz), "", "", False),
        ("两期变化", "有" if p.get("changed") else "无", "", "", False),
    ]
    extra: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, -1), FONT, 8.2, 10.2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.6),
        ("ALIGN", (1, 1), (2, -1), "RIGHT"),
        ("ALIGN", (3, 0), (3, -1), "CENTER"),
    ]
    for r, (_, _, _, judgement, alert) in enumerate(rows, 1):
        if alert:
            extra += [("TEXTCOLOR", (1, r), (1, r), RED), ("TEXTCOLOR", (3, r), (3, r), RED)]
        elif judgement:
            extra.append(("TEXTCOLOR", (3, r), (3, r), GREEN if judgement == "符合" else GREY))
    widths = (width * 0.27, width * 0.31, width * 0.24, width * 0.18)
    return _table([["指标", "核查值", "限值", "判定"], *[list(row[:4]) for row in rows]], widths, extra)


def _findings_table(ctx: _Context, caps: _Caps) -> Table:
    findings = _ordered_findings(ctx.parcel)
    header = ["问题", "等级", "状态", "核查值 / 限值", "涉及建筑（编号见图）"]
    rows: list[list[Any]] = [header]
    for f in findings[: caps.findings]:
        grey = None if _is_open(f) else GREY
        severity = _text(f.get("severity"))
        rows.append(
            [
                _para(_title(f), CELL, grey),
                _para(severity, CELL, grey or SEVERITY_COLOURS.get(severity)),
                _para(_state_text(f, ctx.tz), CELL, grey),
                _para(_evidence_text(f), CELL, grey),
                _para(_buildings_text(f, ctx.numbers, caps.buildings), CELL, grey),
            ]
        )
    rows, extra = _capped(rows, len(findings), caps.findings, len(header))
    return _table(rows, [WIDTH * w for w in (0.13, 0.06, 0.12, 0.30, 0.39)], extra)


def _change_figures(figures: Any) -> str:
    if not isinstance(figures, dict):
        return "—"
    return f"高 {_num(figures.get('height'), 1, ' m')} · 基底 {_num(figures.get('area_m2'), 1, ' m²')}"


def _changes_table(ctx: _Context, caps: _Caps) -> Table:
    changes = list(ctx.parcel.get("changes") or [])
    header = ["变化", "建筑", "变化前", "变化后", "期次"]
    rows: list[list[Any]] = [header]
    for c in changes[: caps.changes]:
        kind = str(c.get("kind", ""))
        rows.append(
            [
                _para(CHANGES.get(kind, kind)),
                _para(_building_name(c, ctx.numbers)),
                _para(_change_figures(c.get("before"))),
                _para(_change_figures(c.get("after"))),
                _para(f"{_text(c.get('epoch_from'))} → {_text(c.get('epoch_to'))}"),
            ]
        )
    rows, extra = _capped(rows, len(changes), caps.changes, len(header))
    return _table(rows, [WIDTH * w for w in (0.08, 0.32, 0.2, 0.2, 0.2)], extra)


def _history_table(ctx: _Context, caps: _Caps) -> Table:
    events = _history(ctx.parcel)
    header = ["时间", "问题", "事件", "状态", "操作人", "备注"]
    rows: list[list[Any]] = [header]
    for title, h in events[: caps.history]:
        event = str(h.get("event", ""))
        rows.append(
            [
                _para(_time(h.get("at"), ctx.tz)),
                _para(title),
                _para(EVENTS.get(event, event)),
                _para(_text(h.get("state"))),
                _para(_clip(_text(h.get("actor")), 30)),
                _para(_clip(str(h.get("note") or ""), NOTE_CHARS)),
            ]
        )
    rows, extra = _capped(rows, len(events), caps.history, len(header))
    return _table(rows, [WIDTH * w for w in (0.15, 0.14, 0.08, 0.09, 0.12, 0.42)], extra)


# ---------------------------------------------------------------- fitting the lists on the page


@dataclass(frozen=True)
class _Caps:
    """How many rows of each list are shown."""

    findings: int
    buildings: int  # per finding
    changes: int
    history: int


#: the order in which lists are cut when the page is full: (list, down to)
_CUTS = (
    ("history", 6),
    ("buildings", 6),
    ("changes", 4),
    ("history", 3),
    ("buildings", 3),
    ("changes", 2),
    ("history", 1),
    ("buildings", 2),
    ("changes", 1),
    ("findings", 4),
    ("buildings", 1),
    ("history", 0),
    ("changes", 0),
    ("findings", 1),
)


def _sections(ctx: _Context, caps: _Caps) -> list[Flowable]:
    story: list[Flowable] = [_para("核查发现", HEADING)]
    if ctx.parcel.get("findings"):
        story.append(_findings_table(ctx, caps))
    else:
        story.append(_para("未发现问题。", BODY, GREEN))
    if ctx.parcel.get("changes"):
        story += [_para("两期变化", HEADING), _changes_table(ctx, caps)]
    story.append(_para("督促记录", HEADING))
    if _history(ctx.parcel):
        story.append(_history_table(ctx, caps))
    else:
        story.append(_para("无督促记录。", BODY, GREY))
    return story


def _height(story: Sequence[Flowable], width: float) -> float:
    total = 0.0
    for f in story:
        _, h = f.wrap(width, 10_000)
        total += h + f.getSpaceBefore() + f.getSpaceAfter()
    return total


def _fitted(ctx: _Context, height: float) -> list[Flowable]:
    """The lists, cut until they fit ``height`` points."""
    findings = ctx.parcel.get("findings") or []
    most_buildings = max((len((f.get("evidence") or {}).get("buildings") or []) for f in findings), default=0)
    caps = _Caps(
        findings=min(len(findings), MAX_ROWS),
        buildings=min(most_buildings, MAX_ROWS),
        changes=min(len(ctx.parcel.get("changes") or []), MAX_ROWS),
        history=min(len(_history(ctx.parcel)), MAX_ROWS),
    )
    full, story = caps, _sections(ctx, caps)
    for name, floor in _CUTS:
        while getattr(caps, name) > floor and _height(story, WIDTH) > height:
            caps = replace(caps, **{name: max(floor, int(getattr(caps, name) * 0.7))})
            story = _sections(ctx, caps)
    # the cuts are coarse: give rows back while they fit, the most important lists first
    for name in ("findings", "buildings", "changes", "history"):
        while getattr(caps, name) < getattr(full, name):
            more = replace(caps, **{name: getattr(caps, name) + 1})
            longer = _sections(ctx, more)
            if _height(longer, WIDTH) > height:
                break
            caps, story = more, longer
    return story


# ---------------------------------------------------------------- map


def _polygons(geometry: Any) -> list[list[Sequence[Sequence[float]]]]:
    """A GeoJSON geometry's polygons (each: its rings of positions)."""
    if not isinstance(geometry, dict):
        return []
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return [coords]
    if kind == "MultiPolygon":
        return list(coords)
    if kind == "GeometryCollection":
        return [p for g in geometry.get("geometries") or [] for p in _polygons(g)]
    return []


def _origin(parcel: Json) -> Point:
    """The parcel's centre (lon, lat): its ``centre``, else the middle of its ``bbox``, else of its vertices."""
    centre, bbox = parcel.get("centre"), parcel.get("bbox")
    if isinstance(centre, list | tuple) and len(centre) >= 2 and all(map(_is_number, centre[:2])):
        return float(centre[0]), float(centre[1])
    if isinstance(bbox, list | tuple) and len(bbox) >= 4 and all(map(_is_number, bbox[:4])):
        return (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    points = [pos for poly in _polygons(parcel.get("geometry")) for ring in poly for pos in ring]
    if not points:
        return 0.0, 0.0
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def local_metres(lon: float, lat: float, origin: Point) -> Point:
    """lon/lat to metres east and north of ``origin`` (local equirectangular frame)."""
    lon0, lat0 = origin
    return (lon - lon0) * math.cos(math.radians(lat0)) * M_PER_DEG_LON, (lat - lat0) * M_PER_DEG_LAT


def _rings(geometry: Any, origin: Point) -> list[Ring]:
    """Every ring of a geometry in local metres (holes included: drawn with the even-odd rule)."""
    return [
        [local_metres(float(pos[0]), float(pos[1]), origin) for pos in ring]
        for poly in _polygons(geometry)
        for ring in poly
        if len(ring) >= 3
    ]


def _label_point(rings: list[Ring]) -> Point | None:
    """The area centroid of the largest ring (where a building's number goes)."""
    best: tuple[float, Point] | None = None
    for ring in rings:
        a = cx = cy = 0.0
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]):
            cross = x0 * y1 - x1 * y0
            a, cx, cy = a + cross, cx + (x0 + x1) * cross, cy + (y0 + y1) * cross
        if a != 0 and (best is None or abs(a) > best[0]):
            best = (abs(a), (cx / (3 * a), cy / (3 * a)))
    return best[1] if best else None


def _nice_length(metres: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``metres``."""
    base = 10 ** math.floor(math.log10(max(metres, 1e-3)))
    return max(n * base for n in (1, 2, 5) if n * base <= metres)


@dataclass(frozen=True)
class _View:
    """Local metres to page points inside the map box."""

    x: float
    y: float
    scale: float  # points per metre

    def __call__(self, p: Point) -> Point:
        return self.x + p[0] * self.scale, self.y + p[1] * self.scale


def _view(rings: Iterable[Ring], box: tuple[float, float, float, float], pad: float = 16.0) -> _View | None:
    xs = [p[0] for ring in rings for p in ring]
    ys = [p[1] for ring in rings for p in ring]
    if not xs:
        return None
    x, y, w, h = box
    dx, dy = max(max(xs) - min(xs), 1.0), max(max(ys) - min(ys), 1.0)
    scale = min((w - 2 * pad) / dx, (h - 2 * pad) / dy)
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return _View(x + w / 2 - mx * scale, y + h / 2 - my * scale, scale)


def _path(c: Canvas, rings: Iterable[Ring], view: Callable[[Point], Point]) -> PDFPathObject:
    path = c.beginPath()
    for ring in rings:
        points = [view(p) for p in ring]
        path.moveTo(*points[0])
        for p in points[1:]:
            path.lineTo(*p)
        path.close()
    return path


def _draw_shape(
    c: Canvas, rings: list[Ring], view: _View, fill: colors.Color | None, line: colors.Color, width: float
) -> None:
    if not rings:
        return
    c.setStrokeColor(line)
    c.setLineWidth(width)
    if fill is not None:
        c.setFillColor(fill)
    c.drawPath(_path(c, rings, view), stroke=1, fill=int(fill is not None), fillMode=FILL_EVEN_ODD)


def _draw_map(c: Canvas, ctx: _Context, box: tuple[float, float, float, float]) -> None:
    """The parcel (outline), its buildings (filled; those of open findings red, numbered), a scale bar, north."""
    x, y, w, h = box
    origin = _origin(ctx.parcel)
    parcel_rings = _rings(ctx.parcel.get("geometry"), origin)
    buildings = [(b, _rings(b.get("geometry"), origin)) for b in ctx.parcel.get("buildings") or []]
    marked = _marked(ctx.parcel)
    c.saveState()
    c.setStrokeColor(RULE)
    c.setFillColor(colors.HexColor("#FAFAFA"))
    c.rect(x, y, w, h, stroke=1, fill=1)
    view = _view([*parcel_rings, *(r for _, rings in buildings for r in rings)], box)
    if view is None:
        c.setFillColor(GREY)
        c.setFont(FONT, 9)
        c.drawCentredString(x + w / 2, y + h / 2, "无宗地图形")
        c.restoreState()
        return
    clip = c.beginPath()
    clip.rect(x, y, w, h)
    c.clipPath(clip, stroke=0, fill=0)
    _draw_shape(c, parcel_rings, view, PARCEL_FILL, PARCEL_FILL, 0.1)
    for b, rings in buildings:
        if _building_key(b) in marked:
            _draw_shape(c, rings, view, MARKED_FILL, MARKED_LINE, 0.6)
        elif b.get("home") is False:  # mostly on another parcel
            _draw_shape(c, rings, view, NEIGHBOUR_FILL, BUILDING_LINE, 0.4)
        else:
            _draw_shape(c, rings, view, BUILDING_FILL, BUILDING_LINE, 0.4)
    c.setDash(4, 2)
    _draw_shape(c, parcel_rings, view, None, PARCEL_LINE, 1.3)
    c.setDash()
    _draw_numbers(c, ctx, buildings, marked, view)
    c.restoreState()
    _draw_scale_bar(c, view.scale, x + 8, y + 8, w)
    _draw_north(c, x + w - 16, y + h - 34)


def _draw_numbers(
    c: Canvas, ctx: _Context, buildings: list[tuple[Json, list[Ring]]], marked: set[tuple[Any, Any]], view: _View
) -> None:
    c.setFont(FONT, 6)
    for b, rings in buildings:
        number, where = ctx.numbers.get(_building_key(b)), _label_point(rings)
        if number is None or where is None:
            continue
        px, py = view(where)
        c.setFillColor(colors.white if _building_key(b) in marked else INK)
        c.drawCentredString(px, py - 2, str(number))


def _draw_scale_bar(c: Canvas, scale: float, x: float, y: float, map_w: float) -> None:
    metres = _nice_length(map_w * 0.3 / scale)
    length = metres * scale
    c.saveState()
    c.setLineWidth(0.5)
    c.setStrokeColor(INK)
    for i, fill in enumerate((INK, colors.white)):
        c.setFillColor(fill)
        c.rect(x + i * length / 2, y, length / 2, 3.5, stroke=1, fill=1)
    c.setFillColor(INK)
    c.setFont(FONT, 6.5)
    c.drawString(x, y + 6, "0")
    c.drawRightString(x + length + 4, y + 6, f"{metres:g} m")
    c.restoreState()


def _draw_north(c: Canvas, x: float, y: float) -> None:
    """A north arrow: the local frame's y axis points north."""
    c.saveState()
    c.setStrokeColor(INK)
    c.setLineWidth(0.6)
    left, right = c.beginPath(), c.beginPath()
    left.moveTo(x, y + 18)
    left.lineTo(x - 5, y)
    left.lineTo(x, y + 4)
    left.close()
    right.moveTo(x, y + 18)
    right.lineTo(x + 5, y)
    right.lineTo(x, y + 4)
    right.close()
    c.setFillColor(INK)
    c.drawPath(left, stroke=1, fill=1)
    c.setFillColor(colors.white)
    c.drawPath(right, stroke=1, fill=1)
    c.setFillColor(INK)
    c.setFont(FONT, 8)
    c.drawCentredString(x, y + 21, "N")
    c.restoreState()


def _draw_legend(c: Canvas, x: float, y: float) -> None:
    items = (
        (PARCEL_FILL, PARCEL_LINE, "宗地"),
        (BUILDING_FILL, BUILDING_LINE, "建筑"),
        (NEIGHBOUR_FILL, BUILDING_LINE, "主要在他宗的建筑"),
        (MARKED_FILL, MARKED_LINE, "问题建筑"),
    )
    c.saveState()
    c.setFont(FONT, 6.8)
    c.setLineWidth(0.5)
    for fill, line, label in items:
        c.setFillColor(fill)
        c.setStrokeColor(line)
        c.rect(x, y, 9, 6, stroke=1, fill=1)
        c.setFillColor(INK)
        c.drawString(x + 12, y + 0.5, label)
        x += 12 + pdfmetrics.stringWidth(label, FONT, 6.8) + 10
    c.restoreState()


# ---------------------------------------------------------------- page


def _bold(c: Canvas, x: float, y: float, text: str, size: float, colour: colors.Color = INK) -> None:
    """Text drawn filled and stroked (the CJK font has no bold face)."""
    c.saveState()
    c.setFillColor(colour)
    c.setStrokeColor(colour)
    c.setLineWidth(size * 0.035)
    t = c.beginText(x, y)
    t.setTextRenderMode(2)
    t.setFont(FONT, size)
    t.textOut(text)
    c.drawText(t)
    c.restoreState()


def _draw_header(c: Canvas, parcel: Json, top: float) -> float:
    """Title, parcel, place and the verdict badge; returns the y below."""
    verdict = _text(parcel.get("verdict"))
    fill, ink = VERDICT_COLOURS.get(verdict, (GREY, colors.white))
    badge_w, badge_h = 74.0, 32.0
    room = WIDTH - badge_w - 12
    _bold(c, MARGIN, top - 17, "土地批后监管核查报告", 17, ACCENT)
    subject = f"宗地 {_text(parcel.get('parcel_id'))} · {_text(parcel.get('use'))}"
    _bold(c, MARGIN, top - 37, _fit(subject, 12.5, room), 12.5)
    place = " · ".join(
        f"{label}{parcel[key]}"
        for key, label in (("street", ""), ("community", ""), ("grid", "网格 "), ("parcels_layer", "图层 "))
        if parcel.get(key)
    )
    c.setFont(FONT, 9)
    c.setFillColor(GREY)
    c.drawString(MARGIN, top - 52, _fit(place or "—", 9, room))
    bx, by = PAGE_W - MARGIN - badge_w, top - 40
    c.drawCentredString(bx + badge_w / 2, by + badge_h + 4, "核查结论")
    c.setFillColor(fill)
    c.roundRect(bx, by, badge_w, badge_h, 5, stroke=0, fill=1)
    _bold(c, bx + badge_w / 2 - pdfmetrics.stringWidth(verdict, FONT, 17) / 2, by + 10, verdict, 17, ink)
    c.setStrokeColor(ACCENT)
    c.setLineWidth(1)
    c.line(MARGIN, top - 60, PAGE_W - MARGIN, top - 60)
    return top - 68


def _draw_footer(c: Canvas, generated_at: dt.datetime, generated_by: str) -> None:
    c.saveState()
    c.setStrokeColor(RULE)
    c.setLineWidth(0.5)
    c.line(MARGIN, MARGIN + 11, PAGE_W - MARGIN, MARGIN + 11)
    c.setFont(FONT, 7.5)
    c.setFillColor(GREY)
    offset = generated_at.strftime("%z")
    zone = f" (UTC{offset[:3]}:{offset[3:]})" if offset else ""
    who = generated_by.strip() or "—"
    line = f"生成时间 {generated_at:%Y-%m-%d %H:%M}{zone} · 生成人 {who}"
    c.drawString(MARGIN, MARGIN + 2, _fit(line, 7.5, WIDTH - 60))
    c.drawRightString(PAGE_W - MARGIN, MARGIN + 2, "第 1 页")
    c.restoreState()


def parcel_report_pdf(parcel: dict[str, Any], *, generated_at: dt.datetime, generated_by: str) -> bytes:
    """The one-page A4 PDF report of a checked parcel (its JSON from :func:`layers.land.queries.parcel_query`)."""
    _font()
    if generated_at.tzinfo is None:
        generated_at = generated_at.astimezone()  # naive: the server's local time
    tz = generated_at.tzinfo or dt.UTC
    ctx = _Context(parcel, tz, _numbering(parcel))
    buffer = io.BytesIO()
    # no Helvetica (a font not embedded) in the PDF at all; types-reportlab types initialFontName as float
    c = Canvas(buffer, pagesize=A4, initialFontName=FONT, initialFontSize=9)  # type: ignore[arg-type]
    c.setTitle(f"土地批后监管核查报告 {_text(parcel.get('parcel_id'))}")
    c.setSubject("土地批后监管核查报告")
    c.setAuthor(generated_by or "cim-twin")
    c.setCreator("cim-twin layers.land.report")

    y = _draw_header(c, parcel, PAGE_H - MARGIN)
    _draw_map(c, ctx, (MARGIN, y - MAP_H, MAP_W, MAP_H))
    _draw_legend(c, MARGIN, y - MAP_H - 11)
    side = WIDTH - MAP_W - 12
    figures = _figures_table(ctx, side)
    _, fh = figures.wrap(side, MAP_H + 14)
    figures.drawOn(c, MARGIN + MAP_W + 12, y - fh)
    y -= max(MAP_H + 20, fh + 6)

    bottom = MARGIN + FOOTER_H
    story = _fitted(ctx, y - bottom)
    frame = Frame(MARGIN, bottom, WIDTH, y - bottom, 0, 0, 0, 0)
    frame.addFromList([KeepInFrame(WIDTH, y - bottom, story, mode="shrink")], c)
    _draw_footer(c, generated_at, generated_by)
    c.showPage()
    c.save()
    return buffer.getvalue()
