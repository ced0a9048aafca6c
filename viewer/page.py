"""The viewer page: a shell around the pydeck deck, the layer panel and the
small JS that drives them (viewer/static/viewer.js; live overlays: live.js;
the land-supervision panel: land.js; city components, 城市部件: components.js;
imagery and terrain, 影像与地形: rasters.js).
Text is in Simplified Chinese by default; English is one click (or
``?lang=en``) away."""

from __future__ import annotations

import json
from collections.abc import Iterable

from layers.catalogue import LayerInfo
from layers.land.followup import MAX_NOTE
from layers.land.rules import EDITORS, KINDS, State, Verdict
from tiles.raster import TERRAIN_RGB_OFFSET, TERRAIN_RGB_STEP
from viewer.deck import PICK_SUFFIX, TilesetRef, deck, mvt_load_options
from viewer.styles import GROUPS, NO_STYLES, Style, ViewerStyles, group_of

#: the finding kinds' English titles (their Chinese ones are layers.land.rules.KINDS')
KIND_TITLES_EN: dict[str, str] = {
    "far_exceeded": "Floor area ratio exceeded",
    "coverage_exceeded": "Building coverage exceeded",
    "height_exceeded": "Height limit exceeded",
    "outside_parcel": "Building over the parcel line",
    "on_farmland": "On farmland",
    "on_forest": "On forest land",
    "on_eco_redline": "On the ecological red line",
    "idle": "Idle land",
    "overdue_completion": "Completion overdue",
    "unapproved_building": "Built without approval",
}

I18N = {
    "zh": {
        "title": "城市信息模型 · 三维城市",
        "layers": "图层",
        "opacity": "透明度",
        "flyTo": "定位",
        "group_base": "基础底图",
        "group_planning": "规划与土地",
        "group_models": "三维模型",
        "group_operations": "城市运行",
        "legend": "图例",
        "language": "English",
        "features": "个要素",
        "noLayers": "尚无图层：请先导入数据",
        "tileset": "三维模型",
        "storeys": "楼层",
        "classes": "构件类型",
        "search": "搜索构件（名称或 GlobalId）",
        "noResults": "没有找到构件",
        "live": "实时监测",
        "liveConnected": "实时连接正常",
        "liveReconnecting": "实时连接中断，正在重连…",
        "counts": "分区统计",
        "street": "街道",
        "community": "社区",
        "grid": "网格",
        "area": "区域",
        "sensors": "设备",
        "alarms": "报警",
        "offline": "离线",
        "openTickets": "在办工单",
        "overdue": "超时",
        "camera": "视频监控",
        "noStream": "该摄像头没有可播放的视频流",
        "close": "关闭",
        "stage_acknowledge": "待签收",
        "stage_contact": "待联系",
        "stage_resolve": "办理中",
        "stage_closed": "已办结",
        "status_none": "无数据",
        "status_normal": "正常",
        "status_alarm": "报警",
        "status_fault": "故障",
        "status_offline": "离线",
        "value": "读数",
        "time": "时间",
        "due": "时限",
        # land supervision (土地监管): the panel of viewer/static/land.js
        "land": "土地监管",
        "landNotChecked": "尚未核查（请先运行 cim land check）",
        "landLoading": "正在加载…",
        "landFailed": "加载失败",
        "landTotal": "共 {n} 宗",
        "landShown": "列出 {shown} / {n} 宗",
        "landMore": "另有 {n} 宗未列出，请缩小筛选范围",
        "landAllVerdicts": "全部结论",
        "landAllFindings": "全部问题",
        "landAllStreets": "全部街道",
        "landExport": "导出",
        "landReport": "打印报告",
        "landNone": "没有符合条件的宗地",
        "landValue": "实测",
        "landLimit": "限值",
        "landFar": "容积率",
        "landCoverage": "建筑密度",
        "landHeight": "最高建筑",
        "landBuildingCount": "建筑数量",
        "landArea": "用地面积",
        "landUse": "用途",
        "landStatus": "建设状态",
        "landDates": "批准 / 开工期限 / 竣工期限",
        "landFindings": "问题",
        "landNoFindings": "未发现问题",
        "landClosed": "已关闭",
        "landBuildings": "涉及建筑",
        "landAndMore": "等 {n} 栋",
        "landNote": "备注",
        "landSave": "保存",
        "landSaving": "正在保存…",
        "landSaved": "已保存",
        "landNeedRole": "需要土地监管角色",
        "landSignIn": "登录",
        "landUser": "当前用户",
        "landAnonymous": "未登录",
        "landHistory": "处理记录",
        "verdict_compliant": "合规",
        "verdict_warning": "预警",
        "verdict_violation": "违规",
        "state_pending": "待核查",
        "state_confirmed": "核查属实",
        "state_rectified": "已整改",
        "state_false_positive": "误报",
        "event_opened": "发现",
        "event_state": "变更状态",
        "event_closed": "关闭",
        "event_reopened": "再次发现",
        "unit_m": "米",
        "unit_m2": "平方米",
        "unit_d": "天",
        # city components (城市部件): the panel of viewer/static/components.js
        "components": "城市部件",
        "compLoading": "正在加载…",
        "compFailed": "加载失败",
        "compTotal": "共 {n} 个",
        "compSearch": "输入部件标识码",
        "compFind": "查找",
        "compFinding": "正在查找…",
        "compNotFound": "未找到部件 {id}",
        "compNoLayer": "没有部件图层 {name}",
        "compAll": "全部类别",
        "compModels": "三维模型",
        "compId": "部件标识码",
        "compClass": "类别",
        "compMajor": "大类",
        "compStatus": "状态",
        "compDepartment": "主管部门",
        "compHeading": "朝向",
        "compPosition": "坐标",
        "compAttributes": "属性",
        "compSensors": "关联设备",
        "compTickets": "相关工单",
        "compNone": "无",
        "compLinked": "已关联",
        "compNearby": "附近 {d} 米",
        "compWithin": "附近：{r} 米以内",
        "compAlarms": "报警记录",
        "compCleared": "已解除",
        "compOpenAlarm": "未解除",
        "compNoState": "暂无读数",
        "compChannel": "来源",
        "compStage_created": "立案",
        "compStage_acknowledged": "签收",
        "compStage_contacted": "联系",
        "compStage_resolved": "办结",
        # imagery and terrain (影像与地形): the group of viewer/static/rasters.js
        "rasters": "影像与地形",
        "basemap": "影像底图",
        "imagery": "影像",
        "terrain": "地形",
        "swipe": "卷帘对比",
        "swipeLeft": "左",
        "swipeRight": "右",
        "swipeHandle": "拖动对比",
        "rasterResolution": "{r} 米/像素",
        "rasterFailed": "影像加载失败",
        **{f"kind_{kind}": title for kind, (_, title) in KINDS.items()},
    },
    "en": {
        "title": "City information model · 3D city",
        "layers": "Layers",
        "opacity": "Opacity",
        "flyTo": "Zoom to",
        "group_base": "Base map",
        "group_planning": "Planning and land",
        "group_models": "3D models",
        "group_operations": "City operations",
        "legend": "Legend",
        "language": "中文",
        "features": "features",
        "noLayers": "No layers yet: import some data first",
        "tileset": "3D model",
        "storeys": "Storeys",
        "classes": "Element classes",
        "search": "Find an element (name or GlobalId)",
        "noResults": "No element found",
        "live": "Live",
        "liveConnected": "Live connection up",
        "liveReconnecting": "Live connection lost, reconnecting…",
        "counts": "Counts by area",
        "street": "Street",
        "community": "Community",
        "grid": "Grid",
        "area": "Area",
        "sensors": "Sensors",
        "alarms": "Alarms",
        "offline": "Offline",
        "openTickets": "Open tickets",
        "overdue": "Overdue",
        "camera": "Camera",
        "noStream": "This camera has no playable stream",
        "close": "Close",
        "stage_acknowledge": "To acknowledge",
        "stage_contact": "To contact",
        "stage_resolve": "Being resolved",
        "stage_closed": "Closed",
        "status_none": "No data",
        "status_normal": "Normal",
        "status_alarm": "Alarm",
        "status_fault": "Fault",
        "status_offline": "Offline",
        "value": "Value",
        "time": "Time",
        "due": "Due",
        "land": "Land supervision",
        "landNotChecked": "Not checked yet (run cim land check first)",
        "landLoading": "Loading…",
        "landFailed": "Could not load",
        "landTotal": "{n} parcels",
        "landShown": "{shown} of {n} parcels listed",
        "landMore": "{n} more not listed: narrow the filters",
        "landAllVerdicts": "All verdicts",
        "landAllFindings": "All findings",
        "landAllStreets": "All streets",
        "landExport": "Export",
        "landReport": "Print report",
        "landNone": "No parcel matches",
        "landValue": "Measured",
        "landLimit": "Limit",
        "landFar": "Floor area ratio",
        "landCoverage": "Building coverage",
        "landHeight": "Tallest building",
        "landBuildingCount": "Buildings",
        "landArea": "Parcel area",
        "landUse": "Use",
        "landStatus": "Construction status",
        "landDates": "Approved / start by / complete by",
        "landFindings": "Findings",
        "landNoFindings": "No findings",
        "landClosed": "Closed",
        "landBuildings": "Buildings",
        "landAndMore": "and {n} more",
        "landNote": "Note",
        "landSave": "Save",
        "landSaving": "Saving…",
        "landSaved": "Saved",
        "landNeedRole": "Requires the land supervisor role",
        "landSignIn": "Sign in",
        "landUser": "Signed in as",
        "landAnonymous": "Not signed in",
        "landHistory": "History",
        "verdict_compliant": "Compliant",
        "verdict_warning": "Warning",
        "verdict_violation": "Violation",
        "state_pending": "To verify",
        "state_confirmed": "Confirmed",
        "state_rectified": "Rectified",
        "state_false_positive": "False positive",
        "event_opened": "Found",
        "event_state": "State changed",
        "event_closed": "Closed",
        "event_reopened": "Found again",
        "unit_m": "m",
        "unit_m2": "m²",
        "unit_d": "days",
        "components": "City components",
        "compLoading": "Loading…",
        "compFailed": "Could not load",
        "compTotal": "{n} in all",
        "compSearch": "Component id",
        "compFind": "Find",
        "compFinding": "Searching…",
        "compNotFound": "No component {id}",
        "compNoLayer": "No component layer {name}",
        "compAll": "All classes",
        "compModels": "3D models",
        "compId": "Component id",
        "compClass": "Class",
        "compMajor": "Group",
        "compStatus": "Status",
        "compDepartment": "Department",
        "compHeading": "Heading",
        "compPosition": "Position",
        "compAttributes": "Attributes",
        "compSensors": "Sensors",
        "compTickets": "Tickets",
        "compNone": "None",
        "compLinked": "Linked",
        "compNearby": "{d} m away",
        "compWithin": "Nearby: within {r} m",
        "compAlarms": "Alarms",
        "compCleared": "cleared",
        "compOpenAlarm": "open",
        "compNoState": "No reading yet",
        "compChannel": "Channel",
        "compStage_created": "Filed",
        "compStage_acknowledged": "Acknowledged",
        "compStage_contacted": "Contacted",
        "compStage_resolved": "Resolved",
        "rasters": "Imagery and terrain",
        "basemap": "Imagery basemap",
        "imagery": "Imagery",
        "terrain": "Terrain",
        "swipe": "Swipe compare",
        "swipeLeft": "Left",
        "swipeRight": "Right",
        "swipeHandle": "Drag to compare",
        "rasterResolution": "{r} m/pixel",
        "rasterFailed": "Could not load the imagery",
        **{f"kind_{kind}": title for kind, title in KIND_TITLES_EN.items()},
    },
}


def _entries(layers: list[LayerInfo], tilesets: list[TilesetRef], styles: ViewerStyles) -> list[dict]:
    """Panel entries: one per layer; a layer's tileset is switched with it."""
    by_layer = {t.layer: t for t in tilesets if t.layer}
    entries = []
    # the panel lists what is drawn on top last: 3D and planning layers first, live points at the end
    for layer in sorted(layers, key=lambda info: (styles.style_of(info.name, info.geometry_type).order, info.name)):
        tileset = by_layer.get(layer.name)
        style = styles.style_of(layer.name, layer.geometry_type, tileset.kind if tileset else "")
        if tileset is not None and tileset.storeys:
            ids = tileset.layer_ids()
        elif tileset is not None:
            ids = [layer.name + PICK_SUFFIX if tileset.has_pick_layer else layer.name, *tileset.layer_ids()]
        else:
            ids = [layer.name]
        kind = tileset.kind if tileset else None
        entries.append(
            {
                "key": layer.name,
                "ids": ids,
                "title": {"zh": layer.title, "en": style.en or layer.name},
                "geometry": layer.geometry_type,
                "count": layer.feature_count,
                "bbox": list(layer.bbox),
                "visible": style.visible,
                "color": list(style.line if style.line[3] else style.fill),
                "group": group_of(style, layer.geometry_type, kind, layer.name in LIVE_LAYERS),
                "kind": kind,  # of its tileset (oblique, components, ...), None without one
                "legend": _legend(style, layer.geometry_type, kind, bool(tileset and tileset.storeys)),
                "tileset": bool(tileset),
                "bim": {
                    "storeys": [{"name": name, "id": layer_id} for (name, _), layer_id in zip(tileset.storeys, ids)]
                }
                if tileset and tileset.storeys
                else None,
            }
        )
    for t in tilesets:
        if not t.layer:
            entries.append(
                {
                    "key": f"tileset:{t.name}",
                    "ids": t.layer_ids(),
                    "bim": None,
                    "title": {"zh": t.name, "en": t.name},
                    "geometry": "3D Tiles",
                    "count": None,
                    "bbox": None,
                    "visible": True,
                    "color": [230, 235, 245, 255],
                    "group": "models",
                    "kind": t.kind or None,
                    "legend": {"symbol": "model", "fill": [230, 235, 245, 255], "line": [0, 0, 0, 0], "width": 0},
                    "tileset": True,
                }
            )
    return entries


def _legend(style: Style, geometry_type: str, tileset_kind: str | None, bim: bool) -> dict:
    """How the layer tree's legend draws a layer: its symbol (polygon, line, point, model, bim, oblique)
    in its own fill, outline and line width."""
    if bim:
        symbol = "bim"
    elif tileset_kind == "oblique":
        symbol = "oblique"
    elif tileset_kind is not None and tileset_kind != "components":
        symbol = "model"
    elif "Point" in geometry_type:
        symbol = "point"
    elif "LineString" in geometry_type:
        symbol = "line"
    else:
        symbol = "polygon"
    return {"symbol": symbol, "fill": list(style.fill), "line": list(style.line), "width": style.line_width_px}


#: layers the live hub draws itself (latest state, pushed) instead of their vector tiles
LIVE_LAYERS = ("sensors", "cameras", "tickets")


def viewer_config(
    layers: Iterable[LayerInfo],
    tilesets: Iterable[TilesetRef] = (),
    *,
    base_url: str = "",
    styles: ViewerStyles | None = None,
    embed_origins: Iterable[str] = (),
    ground: bool = False,
) -> dict:
    """What the page is built from; ``styles``: a viewer file's (none: the defaults);
    ``embed_origins``: the dashboards that may drive it by postMessage (besides its own origin);
    ``ground``: the newest DOM and DEM on as it opens (``CIM_VIEWER_GROUND``)."""
    layers, tilesets = list(layers), list(tilesets)
    styles = NO_STYLES if styles is None else styles
    entries = _entries(layers, tilesets, styles)
    deck_json = json.loads(deck(layers, tilesets, base_url=base_url, styles=styles).to_json())
    components = component_layers(layers, tilesets)
    # a component layer is drawn by components.js (points by class, models by 大类), never twice
    by_panel = {layer_id for e in entries if e["key"] in components for layer_id in e["ids"]}
    deck_json["layers"] = [layer for layer in deck_json["layers"] if layer.get("id") not in by_panel]
    return {
        "live": [layer.name for layer in layers if layer.name in LIVE_LAYERS],
        "deck": deck_json,
        "entries": entries,
        "fields": {name: {"zh": zh, "en": en} for name, (zh, en) in styles.field_labels().items()},
        "i18n": I18N,
        "land": land_config(),
        "components": {"layers": components, "base": base_url, "loadOptions": mvt_load_options(base_url)},
        "rasters": rasters_config(base_url, ground=ground),
        "embedOrigins": sorted(set(embed_origins)),
        "groups": list(GROUPS),
    }


#: the kind of an instanced component tileset (tiles.instances writes it in asset.extras)
COMPONENTS_KIND = "components"


def component_layers(layers: Iterable[LayerInfo], tilesets: Iterable[TilesetRef]) -> list[str]:
    """The component layers (城市部件): those whose own tileset is an instanced component one;
    viewer/static/components.js gives each its panel and draws it."""
    names = {layer.name for layer in layers}
    return sorted({t.layer for t in tilesets if t.kind == COMPONENTS_KIND and t.layer in names})


def rasters_config(base_url: str = "", *, ground: bool = False) -> dict:
    """What rasters.js needs besides ``GET /rasters``: the server's base, how a Terrain-RGB tile's
    colour is a height (tiles.raster's encoding, as deck.gl's TerrainLayer ``elevationDecoder``),
    the terrain loader's worker, served here (loaders.gl would fetch it from a CDN), and whether the
    newest DOM and DEM are on as the page opens without ``layers=`` (``ground``)."""
    step = TERRAIN_RGB_STEP
    decoder = {"rScaler": 65536 * step, "gScaler": 256 * step, "bScaler": step, "offset": TERRAIN_RGB_OFFSET}
    return {
        "base": base_url,
        "elevationDecoder": decoder,
        "loadOptions": {"terrain": {"workerUrl": f"{base_url}/viewer/vendor/terrain-worker.js"}},
        "ground": ground,
    }


def land_config() -> dict:
    """What the land panel (viewer/static/land.js) needs of the rules: the API's verdicts and
    states by their keys (for colours and labels), the finding kinds in order, the roles
    that may change a finding's state and the longest note."""
    return {
        "verdicts": {v.value: v.name for v in Verdict},
        "states": {s.value: s.name for s in State},
        "kinds": list(KINDS),
        "editors": sorted(EDITORS),
        "maxNote": MAX_NOTE,
    }


def viewer_page(config: dict) -> str:
    # inside <script>, no "<", ">" or "&" may appear as such: a title like "<!--<script>" would
    # otherwise keep the block from closing and blank the page
    data = (
        json.dumps(config, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{I18N["zh"]["title"]}</title>
<link rel="stylesheet" href="/viewer/static/viewer.css">
<link rel="stylesheet" href="/viewer/static/tools.css">
<link rel="stylesheet" href="/viewer/static/search.css">
<link rel="stylesheet" href="/viewer/static/screen.css">
</head>
<body>
<div id="map"></div>
<div id="slot-top-center" class="slot"></div><div id="slot-top-right" class="slot"></div>
<div id="slot-bottom-left" class="slot"></div>
<aside id="panel"><header><h1 id="title"></h1><button id="lang" type="button"></button></header>
<h2 id="layers-title"></h2><section id="rasters" hidden></section><ul id="layer-list"></ul>
<section id="legend" hidden></section>
<section id="live" hidden><h2 id="live-title"></h2><div id="live-status"></div>
<label id="counts-label"></label> <select id="counts-level"></select>
<table id="counts"><thead></thead><tbody></tbody></table></section>
<section id="land"><h2><label><input type="checkbox" id="land-toggle"> <span id="land-title"></span></label>
<span id="land-counts"></span></h2><div id="land-body" hidden><p id="land-status"></p><div id="land-tools" hidden>
<select id="land-verdict"></select><select id="land-finding"></select><select id="land-street"></select>
<p id="land-export"><span id="land-export-label"></span> <a id="land-xlsx" download>Excel</a> ·
<a id="land-csv" download>CSV</a></p>
<p id="land-shown"></p><ul id="land-list"></ul></div></div></section>
<section id="components" hidden></section></aside>
<aside id="land-detail" hidden></aside>
<aside id="component-file" hidden></aside>
<aside id="camera" hidden><header><h1 id="camera-title"></h1><button id="camera-close" type="button"></button></header>
<video id="camera-video" muted playsinline controls></video><p id="camera-note"></p></aside>
<script id="cim-config" type="application/json">{data}</script>
<script src="/viewer/vendor/deck.gl.js"></script>
<script>window.__deckCore = window.deck;</script>
<script src="/viewer/vendor/deck-json.js"></script>
<script>window.deck = Object.assign({{}}, window.__deckCore, window.deck);</script>
<script src="/viewer/vendor/loaders-3d-tiles.js"></script>
<script src="/viewer/vendor/hls.js"></script>
<script src="/viewer/static/settled.js"></script>
<script src="/viewer/static/viewer.js"></script>
<script src="/viewer/static/live.js"></script>
<script src="/viewer/static/land.js"></script>
<script src="/viewer/static/components.js"></script>
<script src="/viewer/static/swipe.js"></script>
<script src="/viewer/static/rasters.js"></script>
<script src="/viewer/static/models.js"></script>
<script src="/viewer/static/search.js"></script>
<script src="/viewer/static/tools.js"></script>
<script src="/viewer/static/screen.js"></script>
</body>
</html>"""
