"""The HTML a browser gets from the OGC API routes (``f=html``, or an Accept
header that asks for it): plain pages of links and tables, in Simplified
Chinese with the English beside, no script, nothing fetched from elsewhere."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request

_STYLE = """body{font:15px/1.5 "Noto Sans CJK SC",sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1d2733}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.5em}table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ccd3dd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#eef2f7}
a{color:#1f5fa8}.muted{color:#667}nav a{margin-right:1em}"""


def wants_html(request: Request, f: str | None) -> bool:
    """``f=html`` or ``f=json``; without it, what the Accept header prefers (a
    browser sends text/html first; GDAL, QGIS and scripts ask for JSON)."""
    if f:
        return f.lower() == "html"
    accept = request.headers.get("accept", "").lower()
    html_at, json_at = accept.find("text/html"), accept.find("json")
    return html_at >= 0 and (json_at < 0 or html_at < json_at)


def esc(value: Any) -> str:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return html.escape("" if value is None else str(value))


def link_list(links: Iterable[Mapping[str, Any]]) -> str:
    items = [
        f'<li><a href="{esc(link["href"])}">{esc(link.get("title") or link["href"])}</a> '
        f'<span class="muted">{esc(link.get("rel", ""))} · {esc(link.get("type", ""))}</span></li>'
        for link in links
        if not link.get("templated")
    ]
    return "<ul>" + "".join(items) + "</ul>"


def table(rows: Sequence[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return '<p class="muted">（无 · none）</p>'
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, *, json_href: str) -> str:
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{_STYLE}</style></head>
<body><nav><a href="/">首页 Home</a><a href="/collections">数据集 Collections</a><a href="/viewer">三维城市 Viewer</a>
<a href="/docs">接口文档 API</a><a href="{esc(json_href)}">JSON</a></nav>
<h1>{esc(title)}</h1>{body}</body></html>"""
