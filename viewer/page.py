"""The viewer page. Until the pydeck viewer lands, a plain page listing the layers."""

from __future__ import annotations

import html
from collections.abc import Iterable

from layers.catalogue import LayerInfo


def layer_list_page(layers: Iterable[LayerInfo]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(layer.title)}</td><td><code>{html.escape(layer.name)}</code></td>"
        f"<td>{html.escape(layer.geometry_type)}</td><td>{layer.feature_count:,}</td>"
        f"<td><a href='/layers/{html.escape(layer.name)}/items?limit=10'>GeoJSON</a></td></tr>"
        for layer in layers)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>城市信息模型 CIM</title>
<style>body{{font-family:sans-serif;background:#10151c;color:#dde;margin:2em}}table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #334}}a{{color:#7bf}}</style></head>
<body><h1>城市信息模型 · 图层目录</h1>
<table><thead><tr><th>图层</th><th>名称</th><th>几何类型</th><th>要素数</th><th>数据</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p><a href="/docs">API 文档</a></p></body></html>"""
